package dev.loftq.djl.checkpoint;

import dev.loftq.core.Checks;
import dev.loftq.core.io.FloatConversions;
import dev.loftq.core.io.SafetensorsDType;
import dev.loftq.core.io.SafetensorsHeader.TensorInfo;
import dev.loftq.core.io.SafetensorsHeader.TensorSpec;
import dev.loftq.core.io.TensorData;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.Parallel;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.io.AtomicFiles;
import dev.loftq.djl.io.Bnb4bitWeight;
import dev.loftq.djl.io.BnbCheckpointWriter;
import dev.loftq.djl.io.BnbQuantizationConfig;
import dev.loftq.djl.io.CheckpointFormatException;
import dev.loftq.djl.io.LazySafetensorsFile;
import dev.loftq.djl.io.LoraWeights;
import dev.loftq.djl.io.PeftAdapter;
import dev.loftq.djl.io.PeftAdapterConfig;
import dev.loftq.djl.io.PeftAdapterWriter;
import dev.loftq.djl.io.PythonJson;
import dev.loftq.djl.io.SafetensorsCheckpoint;
import dev.loftq.djl.io.SafetensorsStreamWriter;
import dev.loftq.quant.loftq.Loftq;
import dev.loftq.quant.loftq.LoftqConfig;
import dev.loftq.quant.loftq.LoftqPolicy;
import dev.loftq.quant.loftq.LoftqResult;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * LoftQ over every target layer of a Hugging Face safetensors checkpoint, streaming: tensors are
 * read one at a time ({@link SafetensorsCheckpoint}), processed in parallel on a {@link Backend}
 * up to a memory budget, and written to an output directory that Python loads unchanged:
 *
 * <ul>
 *   <li>the backbone, with the same shard files (and a rewritten index): 4-bit targets as
 *       transformers + bitsandbytes NF4 weights with double quantization
 *       ({@link BnbCheckpointWriter}); 2- and 3-bit targets, which bitsandbytes cannot store, as
 *       the dequantized weight in the original dtype (as the official LoftQ code does); every
 *       other tensor copied byte for byte. {@code config.json} gains a
 *       {@code quantization_config} when there are 4-bit layers, whose
 *       {@code llm_int8_skip_modules} lists every other 2-D weight's module so that it loads
 *       unquantized. Other files of the model directory (tokenizer, …) are copied.</li>
 *   <li>{@code loftq_init/}: the peft adapter of the LoftQ factors ({@link PeftAdapterWriter}),
 *       {@code init_lora_weights: true}, {@code rank_pattern} for per-layer ranks.</li>
 *   <li>{@code loftq_report.json}: per layer, the QLoRA and LoftQ errors and the decision.</li>
 * </ul>
 *
 * <p><b>Targets.</b> A tensor {@code <module>.weight} is a target when it is 2-D floating point
 * (F32, F16, BF16) and the module path equals a target name or ends with {@code "." + name}
 * (peft's rule); defaults {@link #DEFAULT_TARGETS}. Bits and rank come from the
 * {@link LoftqPolicy}. Each layer runs {@link Loftq#initialize} with
 * {@link LoftqConfig}'s defaults (fast low-rank mode, keep-best, MSE-optimal scales) and the
 * given rank, T, alpha, rsLoRA and seed; a {@link LayerCallback} may roll a layer back.
 *
 * <p><b>Resumable.</b> Each finished layer is saved at once in {@code <out>/.loftq-work/}, with
 * the run's configuration in {@code run.json}. A run killed at any point and started again with
 * the same arguments skips finished layers and produces byte-identical output; the work folder is
 * removed at the end. A different configuration is refused.
 *
 * <p><b>No partial output.</b> Arguments and input are validated before anything is written; a
 * failure during the run (a malformed or non-finite tensor, a full disk) removes what the run
 * wrote, including the output directory if the run created it. Every file is written to a
 * temporary name and moved into place.
 *
 * <p><b>Memory.</b> A layer reserves about {@code 56 · numel} bytes of the budget before it is
 * loaded (host copy, device matrices, output; measured), so the resident set stays around the
 * budget plus the JVM and engine overhead, whatever the model size. A layer larger than the whole
 * budget runs alone.
 */
public final class CheckpointQuantizer {
    /** LLaMA/Mistral projection names. */
    public static final List<String> LLAMA_TARGETS = List.of("q_proj", "k_proj", "v_proj",
            "o_proj", "gate_proj", "up_proj", "down_proj");
    /** BERT Linear names. */
    public static final List<String> BERT_TARGETS = List.of("query", "key", "value", "dense");
    /** The default targets: LLaMA/Mistral and BERT names. */
    public static final List<String> DEFAULT_TARGETS;
    /** The adapter directory inside the output. */
    public static final String ADAPTER_DIR = "loftq_init";
    /** The report file inside the output. */
    public static final String REPORT = "loftq_report.json";
    /** The work folder of an unfinished run inside the output. */
    public static final String WORK_DIR = ".loftq-work";

    static {
        List<String> all = new ArrayList<>(LLAMA_TARGETS);
        all.addAll(BERT_TARGETS);
        DEFAULT_TARGETS = List.copyOf(all);
    }

    private static final Logger LOG = LoggerFactory.getLogger(CheckpointQuantizer.class);
    private static final CodebookQuantizer BNB_NF4 = CodebookQuantizer.bitsandbytesNf4DoubleQuant();
    private static final String RUN_FILE = "run.json";
    private static final String LORA_A = "lora_A";
    private static final String LORA_B = "lora_B";
    /**
     * Resident bytes per weight element while a layer is in flight: measured ~55 on a 4096×11008
     * bf16 layer (host float copy, the backend's matrices during LoftQ, packed output), so 56.
     */
    private static final long BYTES_PER_ELEMENT_ESTIMATE = 56;

    private final Builder b;

    private CheckpointQuantizer(Builder b) {
        this.b = b;
    }

    /**
     * A run from {@code model} (a checkpoint directory or a {@code .safetensors} file) into
     * {@code output}.
     */
    public static Builder builder(Path model, Path output) {
        return new Builder(model, output);
    }

    /** One target layer's plan. */
    private record Target(String module, String tensor, TensorInfo info, LoftqConfig config) {
        int bits() {
            return config.quantizer().bits();
        }

        int rank() {
            return config.rank();
        }

        long bytes() {
            return info.byteLength();
        }

        String torchDtype() {
            return switch (info.dtype()) {
                case BF16 -> "bfloat16";
                case F16 -> "float16";
                default -> "float32";
            };
        }
    }

    /**
     * Runs (or resumes) the job.
     *
     * @throws IllegalArgumentException for targets matching no weight or a rank above a layer's
     *     min(out, in) — before anything is written
     * @throws IOException for a missing or malformed input (naming file and tensor, a
     *     {@code SafetensorsFormatException} or {@link CheckpointFormatException}), a non-finite
     *     weight, an output directory that is not empty (without a run to resume) or not writable,
     *     or a failed write; nothing the run wrote is left behind
     */
    public QuantizationResult run() throws IOException {
        long start = System.nanoTime();
        Path out = b.output.toAbsolutePath().normalize();
        try (SafetensorsCheckpoint ckpt = SafetensorsCheckpoint.open(b.model)) {
            Path modelDir = ckpt.directory().toAbsolutePath().normalize();
            if (out.equals(modelDir)) {
                throw new IllegalArgumentException("output directory must differ from the model "
                        + "directory, got " + out);
            }
            List<Target> targets = plan(ckpt);
            Map<String, Object> runConfig = runConfig(ckpt, targets);
            boolean createdOut = !Files.exists(out);
            Path work = out.resolve(WORK_DIR);
            boolean resuming = prepareOutput(out, work, runConfig);
            List<Path> written = new ArrayList<>();
            try {
                Processed processed = process(ckpt, targets, work);
                Map<String, LayerReport> reports = processed.reports();
                b.listener.assembling();
                long bytesOut = assemble(ckpt, modelDir, targets, work, out, reports, written);
                deleteTree(work);
                List<LayerReport> layers = new ArrayList<>(reports.values());
                return new QuantizationResult(out, layers, processed.resumed(), ckpt.totalBytes(),
                        bytesOut, (System.nanoTime() - start) / 1e9, resuming);
            } catch (IOException | RuntimeException | Error e) {
                cleanUp(out, work, createdOut, written, e);
                throw e;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                IOException io = new java.io.InterruptedIOException("interrupted; " + out
                        + " was removed");
                cleanUp(out, work, createdOut, written, io);
                throw io;
            }
        }
    }

    /** The reports of all targets (sorted by module) and how many an earlier run had finished. */
    private record Processed(Map<String, LayerReport> reports, int resumed) {}

    private List<Target> plan(SafetensorsCheckpoint ckpt) {
        LoftqConfig base = LoftqConfig.builder(LoftqPolicy.quantizerForBits(b.bits)).rank(b.rank)
                .iterations(b.iterations).loraAlpha(b.alpha()).rsLora(b.rsLora).seed(b.seed)
                .build();
        List<Target> out = new ArrayList<>();
        for (String name : ckpt.names()) {
            if (!name.endsWith(".weight")) {
                continue;
            }
            TensorInfo info = ckpt.info(name);
            String module = name.substring(0, name.length() - ".weight".length());
            boolean floating = info.dtype() == SafetensorsDType.F32
                    || info.dtype() == SafetensorsDType.F16 || info.dtype() == SafetensorsDType.BF16;
            if (info.shape().length != 2 || !floating || !isTarget(module)) {
                continue;
            }
            LoftqConfig config = b.mixed.configFor(module, base);
            int bits = config.quantizer().bits();
            int rank = config.rank();
            if (bits == 4 && !config.quantizer().equals(BNB_NF4)) {
                throw new IllegalArgumentException("module " + module + ": 4-bit layers are "
                        + "stored in bitsandbytes NF4 format, which needs quantizer "
                        + BNB_NF4.description() + ", got " + config.quantizer().description());
            }
            int[] s = info.shape();
            if (rank > Math.min(s[0], s[1])) {
                throw new IllegalArgumentException("rank must be in [1, " + Math.min(s[0], s[1])
                        + "] for tensor " + name + " " + Arrays.toString(s) + " in "
                        + ckpt.fileOf(name).path() + ", got " + rank);
            }
            if (bits != 4 && ((long) s[0] * s[1]) % CodebookQuantizer.DEFAULT_BLOCK_SIZE != 0) {
                throw new IllegalArgumentException("tensor " + name + " " + Arrays.toString(s)
                        + " has a size that is not a multiple of 64, which " + bits
                        + "-bit LoftQ (native NF" + bits + ") requires; use 4 bits for it");
            }
            out.add(new Target(module, name, info, config));
        }
        if (out.isEmpty()) {
            List<String> seen = new ArrayList<>();
            for (String name : ckpt.names()) {
                if (name.endsWith(".weight") && ckpt.info(name).shape().length == 2) {
                    seen.add(name.substring(0, name.length() - 7));
                }
            }
            throw new IllegalArgumentException("targets " + b.targets + " match no 2-D floating "
                    + "point weight in " + ckpt.directory() + " (2-D weights: "
                    + (seen.size() > 8 ? seen.subList(0, 8) + " and " + (seen.size() - 8)
                            + " more" : seen) + ")");
        }
        return out;
    }

    private boolean isTarget(String module) {
        for (String t : b.targets) {
            if (module.equals(t) || module.endsWith("." + t)) {
                return true;
            }
        }
        return false;
    }

    private Map<String, Object> runConfig(SafetensorsCheckpoint ckpt, List<Target> targets)
            throws IOException {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("format", "loftq-run");
        m.put("version", 1);
        m.put("bits", b.bits);
        m.put("rank", b.rank);
        m.put("iterations", b.iterations);
        m.put("lora_alpha", (double) b.alpha());
        m.put("use_rslora", b.rsLora);
        m.put("seed", b.seed);
        m.put("targets", new ArrayList<Object>(b.targets));
        m.put("mixed", b.mixed.toString());
        Map<String, Object> files = new TreeMap<>();
        for (Map.Entry<String, LazySafetensorsFile> e : ckpt.shards().entrySet()) {
            files.put(e.getKey(), Files.size(e.getValue().path()));
        }
        m.put("input_files", files);
        m.put("target_count", targets.size());
        return m;
    }

    /** Creates the output and work folders; returns true when resuming an earlier run. */
    private boolean prepareOutput(Path out, Path work, Map<String, Object> runConfig)
            throws IOException {
        String runJson = PythonJson.dumps(runConfig, 2, false) + "\n";
        if (Files.exists(out) && !Files.isDirectory(out)) {
            throw new java.nio.file.FileAlreadyExistsException(out.toString(), null,
                    "output must be a directory, but a file exists there");
        }
        if (Files.isDirectory(work) && Files.isRegularFile(work.resolve(RUN_FILE))) {
            String previous = Files.readString(work.resolve(RUN_FILE), StandardCharsets.UTF_8);
            if (!previous.equals(runJson)) {
                throw new IOException(out + " holds an unfinished run with a different "
                        + "configuration (" + work.resolve(RUN_FILE) + "); use the same arguments "
                        + "to resume it, or remove the directory");
            }
            checkWritable(out);
            return true;
        }
        if (Files.isDirectory(out)) {
            try (Stream<Path> s = Files.list(out)) {
                List<Path> entries = s.filter(p -> !p.getFileName().toString().equals(WORK_DIR))
                        .limit(3).toList();
                if (!entries.isEmpty()) {
                    throw new java.nio.file.DirectoryNotEmptyException(out + " (output directory "
                            + "is not empty and holds no unfinished run to resume; e.g. "
                            + entries.get(0).getFileName() + ")");
                }
            }
        } else {
            Path parent = out.getParent();
            if (parent != null && Files.isDirectory(parent) && !Files.isWritable(parent)) {
                throw new AccessDeniedException(out.toString(), null,
                        "cannot create the output directory: " + parent + " is not writable");
            }
            try {
                Files.createDirectories(out);
            } catch (java.nio.file.FileSystemException e) {
                throw new AccessDeniedException(out.toString(), null,
                        "cannot create the output directory: " + (e.getReason() != null
                                ? e.getReason() : e.getClass().getSimpleName()));
            }
        }
        checkWritable(out);
        Files.createDirectories(work);
        AtomicFiles.writeString(work.resolve(RUN_FILE), runJson);
        return false;
    }

    private static void checkWritable(Path out) throws IOException {
        if (!Files.isWritable(out)) {
            throw new AccessDeniedException(out.toString(), null,
                    "output directory is not writable");
        }
    }

    private static String workFileName(String module) {
        return module.replaceAll("[^A-Za-z0-9._-]", "_") + ".safetensors";
    }

    /** Runs every unfinished target; returns the reports of all targets, sorted by module. */
    private Processed process(SafetensorsCheckpoint ckpt, List<Target> targets,
            Path work) throws IOException, InterruptedException {
        Map<String, LayerReport> reports = new TreeMap<>();
        List<Target> todo = new ArrayList<>();
        long totalBytes = 0;
        for (Target t : targets) {
            totalBytes += t.bytes();
            Path f = work.resolve(workFileName(t.module));
            LayerReport done = Files.isRegularFile(f) ? finished(f) : null;
            if (done != null) {
                reports.put(t.module, done);
            } else {
                todo.add(t);
            }
        }
        int resumed = reports.size();
        b.listener.started(targets.size(), totalBytes, resumed);
        for (Target t : targets) {
            if (reports.containsKey(t.module)) {
                b.listener.tensorDone(t.module, t.bytes(), true);
            }
        }
        // Largest first, so that the big ones overlap with small ones rather than trail at the end.
        todo.sort(Comparator.comparingLong(Target::bytes).reversed()
                .thenComparing(Target::module));
        MemoryBudget budget = new MemoryBudget(b.memoryBudget);
        // Layers that can run at once: the threads, unless the budget admits fewer of even the
        // smallest layer (a budget can serialise any number of threads).
        long smallest = Long.MAX_VALUE;
        for (Target t : todo) {
            smallest = Math.min(smallest, Math.min(t.info.numel() * BYTES_PER_ELEMENT_ESTIMATE,
                    b.memoryBudget));
        }
        int concurrent = todo.isEmpty() ? 1
                : (int) Math.min(b.threads, Math.max(1, b.memoryBudget / smallest));
        // Several layers at once on a CPU: each PyTorch operation gets its share of the cores, not
        // all of them, or threads x cores threads wait on each other (restored afterwards).
        int torchThreads = -1;
        if (concurrent > 1 && b.backend instanceof DjlBackend djl && !djl.djlDevice().isGpu()) {
            torchThreads = DjlBackend.cpuOperationThreads();
            DjlBackend.cpuOperationThreads(Math.max(1, torchThreads / concurrent));
        }
        boolean serialKernels = concurrent > 1;
        LOG.debug("{} layers at once ({} threads, budget {} MB); PyTorch threads per operation {}",
                concurrent, b.threads, b.memoryBudget >> 20,
                torchThreads > 0 ? DjlBackend.cpuOperationThreads() : "unchanged");
        ExecutorService pool = Executors.newFixedThreadPool(b.threads, r -> {
            Thread th = new Thread(r, "loftq-worker");
            th.setDaemon(true);
            return th;
        });
        try {
            List<Future<LayerReport>> futures = new ArrayList<>();
            for (Target t : todo) {
                futures.add(pool.submit(() -> {
                    long reserved = budget.acquire(t.info.numel() * BYTES_PER_ELEMENT_ESTIMATE);
                    try {
                        // Each worker keeps one core busy: its host kernels stay on its thread.
                        LayerReport r = serialKernels
                                ? Parallel.serially(() -> processOne(ckpt, t, work))
                                : processOne(ckpt, t, work);
                        b.listener.tensorDone(t.module, t.bytes(), false);
                        return r;
                    } finally {
                        budget.release(reserved);
                    }
                }));
            }
            for (int i = 0; i < futures.size(); i++) {
                try {
                    LayerReport r = futures.get(i).get();
                    reports.put(r.module(), r);
                } catch (ExecutionException e) {
                    for (Future<LayerReport> f : futures) {
                        f.cancel(true);
                    }
                    Throwable c = e.getCause();
                    if (c instanceof IOException io) {
                        throw io;
                    }
                    if (c instanceof RuntimeException re) {
                        throw re;
                    }
                    if (c instanceof Error er) {
                        throw er;
                    }
                    throw new IOException(c);
                }
            }
        } finally {
            pool.shutdownNow();
            pool.awaitTermination(1, java.util.concurrent.TimeUnit.MINUTES);
            if (torchThreads > 0) {
                DjlBackend.cpuOperationThreads(torchThreads);
            }
        }
        return new Processed(reports, resumed);
    }

    /** The report of a finished work file, or null if it is unreadable (then it is redone). */
    private static LayerReport finished(Path f) {
        try (LazySafetensorsFile w = LazySafetensorsFile.open(f)) {
            String json = w.header().metadata().get("report");
            return json == null ? null : LayerReport.parse(f.toString(), json);
        } catch (IOException e) {
            LOG.warn("work file {} is unreadable ({}); redoing its layer", f, e.getMessage());
            return null;
        }
    }

    private LayerReport processOne(SafetensorsCheckpoint ckpt, Target t, Path work)
            throws IOException {
        LazySafetensorsFile file = ckpt.fileOf(t.tensor);
        float[] w = file.floats(t.tensor);
        int bad = Checks.firstNonFinite(w);
        if (bad >= 0) {
            int cols = t.info.shape()[1];
            throw new CheckpointFormatException(file.path() + ": tensor '" + t.tensor + "' has "
                    + w[bad] + " at [" + bad / cols + ", " + bad % cols + "] (flat index " + bad
                    + "); LoftQ needs finite weights");
        }
        int[] shape = t.info.shape();
        LoftqConfig config = t.config();
        Map<String, TensorData> result = new LinkedHashMap<>();
        LayerReport report;
        try (TensorScope scope = b.backend.newScope()) {
            Tensor weight = scope.fromHost(w, shape);
            w = null; // let the host copy go while LoftQ runs
            LoftqResult r = Loftq.initialize(scope, weight, t.tensor, config);
            LayerOutcome outcome = new LayerOutcome(t.module, shape, t.bits(), t.rank(),
                    r.qloraError(), r.errors(), r.returnedStep());
            boolean accepted = b.callback.accept(outcome);
            QuantizedTensor q;
            LoraWeights lora;
            if (accepted) {
                q = r.quantized();
                lora = LoraWeights.of(scope, r.loraA(), r.loraB());
            } else {
                q = config.quantizer().quantize(scope, weight, t.tensor);
                lora = qloraInit(t, shape);
            }
            String storage;
            if (t.bits() == 4) {
                result.putAll(BnbCheckpointWriter.tensors(scope,
                        new Bnb4bitWeight(t.module, q, t.torchDtype())));
                storage = "bnb-nf4";
            } else {
                float[] deq = scope.toFloatArray(q.dequantize(scope));
                ByteBuffer bytes = ByteBuffer.allocate(Math.toIntExact(t.bytes()))
                        .order(ByteOrder.LITTLE_ENDIAN);
                FloatConversions.encode(t.info.dtype(), deq, 0, deq.length, bytes);
                result.put(t.tensor, TensorData.wrap(t.info.dtype(), bytes.flip(), shape));
                storage = "dequantized-" + (config.quantizer() instanceof CodebookQuantizer c
                        ? c.codebook().name() : t.bits() + "bit");
            }
            result.put(LORA_A, lora.loraA());
            result.put(LORA_B, lora.loraB());
            report = new LayerReport(t.module, shape, t.torchDtype(), t.bits(), t.rank(), storage,
                    r.qloraError(), r.errors(), r.returnedStep(), accepted);
        }
        SafetensorsStreamWriter.writeAll(work.resolve(workFileName(t.module)), result,
                Map.of("report", PythonJson.dumps(report.toMap())));
        LOG.debug("{}: {} bits, rank {}, error {} (QLoRA {}), accepted {}", t.module, t.bits(),
                t.rank(), report.error(), report.qloraError(), report.accepted());
        return report;
    }

    /** QLoRA's start: A Kaiming-uniform (bound 1/√in, seeded by the module), B = 0. */
    private LoraWeights qloraInit(Target t, int[] shape) {
        int out = shape[0];
        int in = shape[1];
        SplittableRandom rnd = new SplittableRandom(b.seed * 31 + t.module.hashCode());
        float bound = (float) (1 / Math.sqrt(in));
        float[] a = new float[t.rank() * in];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) ((rnd.nextDouble() * 2 - 1) * bound);
        }
        return new LoraWeights(TensorData.ofFloats(a, t.rank(), in),
                TensorData.ofFloats(new float[out * t.rank()], out, t.rank()));
    }

    /** Writes the shards, index, config, other files, adapter and report; returns bytes written. */
    private long assemble(SafetensorsCheckpoint ckpt, Path modelDir, List<Target> targets,
            Path work, Path out, Map<String, LayerReport> reports, List<Path> written)
            throws IOException {
        Map<String, Target> byTensor = new LinkedHashMap<>();
        for (Target t : targets) {
            byTensor.put(t.tensor, t);
        }
        long bytesOut = 0;
        Map<String, Object> weightMap = new TreeMap<>();
        long totalSize = 0;
        Map<String, LoraWeights> lora = new LinkedHashMap<>();
        for (Map.Entry<String, LazySafetensorsFile> shard : ckpt.shards().entrySet()) {
            LazySafetensorsFile in = shard.getValue();
            Map<String, TensorSpec> specs = new LinkedHashMap<>();
            Map<String, LazySafetensorsFile> sourceOf = new LinkedHashMap<>();
            List<LazySafetensorsFile> opened = new ArrayList<>();
            try {
                for (TensorInfo info : in.header().tensors().values()) {
                    Target t = byTensor.get(info.name());
                    if (t == null) {
                        specs.put(info.name(), new TensorSpec(info.dtype(), info.shape()));
                        sourceOf.put(info.name(), in);
                        continue;
                    }
                    LazySafetensorsFile wf = LazySafetensorsFile.open(
                            work.resolve(workFileName(t.module)));
                    opened.add(wf);
                    for (TensorInfo r : wf.header().tensors().values()) {
                        if (r.name().equals(LORA_A) || r.name().equals(LORA_B)) {
                            continue;
                        }
                        specs.put(r.name(), new TensorSpec(r.dtype(), r.shape()));
                        sourceOf.put(r.name(), wf);
                    }
                    lora.put(t.module, new LoraWeights(wf.read(LORA_A), wf.read(LORA_B)));
                }
                // A lone input file (whatever its name) becomes model.safetensors, which
                // from_pretrained looks for; shards keep their names, as the index lists them.
                String outName = ckpt.isSharded() ? shard.getKey() : SafetensorsCheckpoint.SINGLE;
                Path target = out.resolve(outName);
                try (SafetensorsStreamWriter w = SafetensorsStreamWriter.create(target, specs,
                        in.header().metadata().isEmpty() ? BnbCheckpointWriter.METADATA
                                : in.header().metadata(), b.sinks)) {
                    for (String name : specs.keySet()) {
                        sourceOf.get(name).copyTo(name, w);
                    }
                    w.commit();
                    written.add(target);
                    bytesOut += w.layout().fileSize();
                    totalSize += w.layout().dataLength();
                }
                for (String name : specs.keySet()) {
                    weightMap.put(name, outName);
                }
            } finally {
                for (LazySafetensorsFile f : opened) {
                    f.close();
                }
            }
        }
        if (ckpt.isSharded()) {
            Map<String, Object> index = new LinkedHashMap<>();
            Map<String, Object> meta = new LinkedHashMap<>(ckpt.indexMetadata());
            meta.put("total_size", totalSize);
            index.put("metadata", meta);
            index.put("weight_map", weightMap);
            Path p = out.resolve(SafetensorsCheckpoint.INDEX);
            AtomicFiles.writeString(p, PythonJson.dumps(index, 2, true) + "\n");
            written.add(p);
        }
        boolean fromDirectory = Files.isDirectory(b.model);
        Map<String, Object> config = fromDirectory ? readConfig(modelDir) : null;
        boolean any4 = targets.stream().anyMatch(t -> t.bits() == 4);
        if (config != null || any4) {
            Map<String, Object> base = config == null ? new LinkedHashMap<>() : config;
            Path p = out.resolve("config.json");
            if (any4) {
                AtomicFiles.writeString(p, BnbCheckpointWriter.configJson(base,
                        new BnbQuantizationConfig("nf4", true, computeDtype(targets),
                                skipModules(ckpt, targets))));
            } else {
                AtomicFiles.writeString(p, PythonJson.dumps(base, 2, true) + "\n");
            }
            written.add(p);
        }
        if (fromDirectory) {
            copyOtherFiles(modelDir, out, ckpt, written);
        }
        PeftAdapterConfig.Builder ab = PeftAdapterConfig.builder(b.rank, b.alpha())
                .targetModules(matchedTargetNames(targets)).useRslora(b.rsLora)
                .baseModelNameOrPath("..").taskType(taskType(config));
        for (Target t : targets) {
            if (t.rank() != b.rank) {
                ab.rankPattern(t.module, t.rank());
            }
        }
        Path adapterDir = out.resolve(ADAPTER_DIR);
        written.add(adapterDir);
        PeftAdapterWriter.write(adapterDir, new PeftAdapter(ab.build(), lora));
        Path report = out.resolve(REPORT);
        AtomicFiles.writeString(report, PythonJson.dumps(reportJson(reports), 2, false) + "\n");
        written.add(report);
        return bytesOut;
    }

    private Map<String, Object> reportJson(Map<String, LayerReport> reports) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("format", "loftq-report");
        m.put("version", 1);
        Map<String, Object> cfg = new LinkedHashMap<>();
        cfg.put("bits", b.bits);
        cfg.put("rank", b.rank);
        cfg.put("iterations", b.iterations);
        cfg.put("lora_alpha", (double) b.alpha());
        cfg.put("use_rslora", b.rsLora);
        cfg.put("seed", b.seed);
        cfg.put("targets", new ArrayList<Object>(b.targets));
        cfg.put("mixed", b.mixed.toString());
        cfg.put("low_rank", "fast");
        m.put("config", cfg);
        double q = 0;
        double e = 0;
        int rolled = 0;
        List<Object> layers = new ArrayList<>();
        for (LayerReport r : reports.values()) {
            layers.add(r.toMap());
            q += r.qloraError();
            e += r.error();
            rolled += r.accepted() ? 0 : 1;
        }
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("layers", reports.size());
        summary.put("rolled_back", rolled);
        summary.put("mean_qlora_error", q / reports.size());
        summary.put("mean_error", e / reports.size());
        m.put("summary", summary);
        m.put("layers", layers);
        return m;
    }

    private List<String> matchedTargetNames(List<Target> targets) {
        List<String> out = new ArrayList<>();
        for (String name : b.targets) {
            for (Target t : targets) {
                if (t.module.equals(name) || t.module.endsWith("." + name)) {
                    out.add(name);
                    break;
                }
            }
        }
        return out;
    }

    private static String taskType(Map<String, Object> config) {
        if (config != null && config.get("architectures") instanceof List<?> l) {
            for (Object o : l) {
                if (o instanceof String s && s.endsWith("ForCausalLM")) {
                    return "CAUSAL_LM";
                }
            }
        }
        return null;
    }

    private static String computeDtype(List<Target> targets) {
        return targets.stream().filter(t -> t.bits() == 4).findFirst().get().torchDtype();
    }

    /** Modules of every 2-D floating weight that is not a 4-bit target: loaded unquantized. */
    private static List<String> skipModules(SafetensorsCheckpoint ckpt, List<Target> targets) {
        TreeSet<String> four = new TreeSet<>();
        for (Target t : targets) {
            if (t.bits() == 4) {
                four.add(t.tensor);
            }
        }
        List<String> skip = new ArrayList<>();
        for (String name : ckpt.names()) {
            TensorInfo i = ckpt.info(name);
            if (name.endsWith(".weight") && i.shape().length == 2 && i.dtype().isFloatingPoint()
                    && !four.contains(name)) {
                skip.add(name.substring(0, name.length() - ".weight".length()));
            }
        }
        return skip;
    }

    private static Map<String, Object> readConfig(Path modelDir) throws IOException {
        Path p = modelDir.resolve("config.json");
        if (!Files.isRegularFile(p)) {
            return null;
        }
        Object v = PythonJson.parse(p.toString(), Files.readString(p, StandardCharsets.UTF_8));
        if (!(v instanceof Map<?, ?> m)) {
            throw new CheckpointFormatException(p + ": must hold a JSON object");
        }
        Map<String, Object> out = new LinkedHashMap<>();
        m.forEach((k, val) -> out.put((String) k, val));
        return out;
    }

    private static void copyOtherFiles(Path modelDir, Path out, SafetensorsCheckpoint ckpt,
            List<Path> written) throws IOException {
        try (Stream<Path> s = Files.list(modelDir)) {
            for (Path p : s.sorted().toList()) {
                String n = p.getFileName().toString();
                if (!Files.isRegularFile(p) || n.startsWith(".") || n.endsWith(".safetensors")
                        || n.equals(SafetensorsCheckpoint.INDEX) || n.equals("config.json")
                        || ckpt.shards().containsKey(n)) {
                    continue;
                }
                Path target = out.resolve(n);
                AtomicFiles.write(target, Files.readAllBytes(p));
                written.add(target);
            }
        }
    }

    private static void cleanUp(Path out, Path work, boolean createdOut, List<Path> written,
            Throwable failure) {
        List<Path> doomed = new ArrayList<>(written);
        doomed.add(work);
        if (createdOut) {
            doomed.add(out);
        }
        for (Path p : doomed) {
            try {
                deleteTree(p);
            } catch (IOException e) {
                failure.addSuppressed(e);
            }
        }
    }

    private static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root)) {
            return;
        }
        List<Path> all;
        try (Stream<Path> s = Files.walk(root)) {
            all = s.sorted(Comparator.reverseOrder()).toList();
        }
        // run.json last, so that a kill during deletion still leaves a resumable folder
        for (Path p : all) {
            if (!p.getFileName().toString().equals(RUN_FILE)) {
                if (!Files.isDirectory(p)) {
                    Files.deleteIfExists(p);
                }
            }
        }
        for (Path p : all) {
            Files.deleteIfExists(p);
        }
    }

    /** Configures a run; {@link #build()} validates. */
    public static final class Builder {
        private final Path model;
        private final Path output;
        private int bits = 4;
        private int rank = 16;
        private int iterations = 5;
        private float loraAlpha = Float.NaN;
        private boolean rsLora;
        private long seed;
        private List<String> targets = DEFAULT_TARGETS;
        private LoftqPolicy mixed = LoftqPolicy.UNIFORM;
        private Backend backend;
        private int threads = 1;
        private long memoryBudget = 3L << 30;
        private LayerCallback callback = LayerCallback.ACCEPT_ALL;
        private ProgressListener listener = ProgressListener.NONE;
        private SafetensorsStreamWriter.SinkFactory sinks = SafetensorsStreamWriter.FILES;

        private Builder(Path model, Path output) {
            this.model = Checks.notNull("model", model);
            this.output = Checks.notNull("output", output);
        }

        /** Default bits for targets: 2, 3 or 4. Default 4. */
        public Builder bits(int bits) {
            this.bits = Checks.oneOf("bits", bits, 2, 3, 4);
            return this;
        }

        /** Default LoRA rank, [1, 4096]. Default 16. */
        public Builder rank(int rank) {
            this.rank = Checks.inRange("rank", rank, 1, 4096);
            return this;
        }

        /** LoftQ steps T, [1, 1000]. Default 5. */
        public Builder iterations(int iterations) {
            this.iterations = Checks.inRange("iterations", iterations, 1, 1000);
            return this;
        }

        /** lora_alpha > 0. Default: the rank (s = 1, what peft's own LoftQ assumes). */
        public Builder loraAlpha(float loraAlpha) {
            this.loraAlpha = Checks.positive("loraAlpha", loraAlpha);
            return this;
        }

        /** rsLoRA scaling. Default false. */
        public Builder rsLora(boolean rsLora) {
            this.rsLora = rsLora;
            return this;
        }

        /** Seed of the randomized low-rank sketches and of rolled-back A. Default 0. */
        public Builder seed(long seed) {
            this.seed = seed;
            return this;
        }

        /** Target module names (peft's rule); non-empty. Default {@link #DEFAULT_TARGETS}. */
        public Builder targets(List<String> targets) {
            Checks.notNull("targets", targets);
            if (targets.isEmpty() || targets.stream().anyMatch(t -> t == null || t.isBlank())) {
                throw new IllegalArgumentException("targets must be non-empty names, got "
                        + targets);
            }
            this.targets = List.copyOf(targets);
            return this;
        }

        /**
         * Per-module quantizer and rank (e.g. {@code LoftqPolicy.parse("layers\\.[0-3]\\.=4,.*=2")}).
         * 4-bit rules must use bitsandbytes NF4 with double quantization, the format the backbone
         * is stored in; 2- and 3-bit layers are stored dequantized. Default: uniform.
         */
        public Builder mixed(LoftqPolicy mixed) {
            this.mixed = Checks.notNull("mixed", mixed);
            return this;
        }

        /** Where LoftQ runs. Default {@code DjlBackend.cpu()}. */
        public Builder backend(Backend backend) {
            this.backend = Checks.notNull("backend", backend);
            return this;
        }

        /** Layers processed at once, [1, 256]. Default 1. */
        public Builder threads(int threads) {
            this.threads = Checks.inRange("threads", threads, 1, 256);
            return this;
        }

        /** Bytes that concurrent layers may reserve, >= 1 MiB. Default 3 GiB. */
        public Builder memoryBudget(long bytes) {
            if (bytes < (1 << 20)) {
                throw new IllegalArgumentException("memoryBudget must be >= 1048576 bytes, got "
                        + bytes);
            }
            this.memoryBudget = bytes;
            return this;
        }

        /** Accepts or rolls back each layer. Default {@link LayerCallback#ACCEPT_ALL}. */
        public Builder callback(LayerCallback callback) {
            this.callback = Checks.notNull("callback", callback);
            return this;
        }

        /** Progress events. Default none. */
        public Builder listener(ProgressListener listener) {
            this.listener = Checks.notNull("listener", listener);
            return this;
        }

        /** Opens output shard sinks (tests simulate a full disk). Default files. */
        public Builder sinks(SafetensorsStreamWriter.SinkFactory sinks) {
            this.sinks = Checks.notNull("sinks", sinks);
            return this;
        }

        float alpha() {
            return Float.isNaN(loraAlpha) ? rank : loraAlpha;
        }

        /** The configured run. */
        public CheckpointQuantizer build() {
            if (backend == null) {
                backend = DjlBackend.cpu();
            }
            return new CheckpointQuantizer(this);
        }
    }
}
