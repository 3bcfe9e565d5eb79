package dev.loftq.djl.apiq;

import ai.djl.ndarray.NDManager;
import ai.djl.nn.Block;
import dev.loftq.core.Checks;
import dev.loftq.core.io.TensorData;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.block.QuantizedLoraLinear;
import dev.loftq.djl.io.LazySafetensorsFile;
import dev.loftq.djl.io.SafetensorsStreamWriter;
import dev.loftq.djl.model.BertModelBlock;
import dev.loftq.djl.model.BlockPaths;
import dev.loftq.quant.apiq.Apiq;
import dev.loftq.quant.apiq.ApiqConfig;
import dev.loftq.quant.apiq.ApiqResult;
import dev.loftq.quant.apiq.ApiqSample;
import dev.loftq.quant.apiq.ApiqTarget;
import dev.loftq.quant.apiq.LearnableClipCodebookQuantizer;
import dev.loftq.quant.apiq.LearnableClipQuantizer;
import dev.loftq.quant.apiq.LinearTarget;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * ApiQ on a BERT encoder (all-MiniLM-L6-v2's {@link BertModelBlock}), in model order with error
 * propagation: each target is fed the inputs that the already-quantized earlier targets produce,
 * and is fitted to the full-precision model's outputs on its own inputs.
 * <ul>
 *   <li>{@link #layerwise} (ApiQ-lw): each of the 6·L Linears is a target.</li>
 *   <li>{@link #blockwise} (ApiQ-bw): each encoder layer is a target, its six Linears trained
 *       jointly ({@link BertLayerTarget}).</li>
 * </ul>
 * Both rewrite a second copy of the model in place: every Linear of the encoder becomes a
 * {@link QuantizedLoraLinear} with the learned Q (int-k, or NF-k, with learned clipping), A and
 * B, which trains and merges like the layers the LoRA wrapper makes, and keeps its dequantized weight
 * cached (an fp32 copy: the captures of later targets run it once per sentence). The
 * full-precision tree is only read.
 *
 * <p>Calibration: each sentence is one sample (its own token rows, no padding); the last
 * {@link ApiqConfig#holdOut()} of them are held out for model selection. Captures are streamed per
 * layer: host memory holds one encoder layer's inputs for all sentences (about
 * {@code 4·tokens·(3H + I)} bytes for ApiQ-lw, {@code 8·tokens·H} for ApiQ-bw).
 *
 * <p>Resume: with a directory, each finished target is written there as {@code <path>.safetensors}
 * (its clipping logits, A, B and report); a later run over the same model, sentences and settings
 * reads finished targets instead of training them, so it gives the same model as an uninterrupted
 * run. Not thread-safe.
 */
public final class BertApiq {
    private static final Logger LOG = LoggerFactory.getLogger(BertApiq.class);

    private final DjlBackend backend;
    private final ApiqConfig config;
    private final Path resumeDirectory;
    private final Consumer<TargetReport> listener;
    private final int maxLayers;

    private BertApiq(Builder b) {
        this.maxLayers = b.maxLayers;
        this.backend = b.backend;
        this.config = b.config;
        this.resumeDirectory = b.resumeDirectory;
        this.listener = b.listener;
    }

    /** A driver on {@code backend} (which must have autograd) with {@code config}. */
    public static Builder builder(DjlBackend backend, ApiqConfig config) {
        return new Builder(backend, config);
    }

    /** The LoRA-wrapped model an ApiQ run produced, with one report per target. */
    public static final class Result implements AutoCloseable {
        private final Map<String, QuantizedLoraLinear> layers;
        private final List<TargetReport> reports;

        Result(Map<String, QuantizedLoraLinear> layers, List<TargetReport> reports) {
            this.layers = layers;
            this.reports = reports;
        }

        /** The quantized LoRA layers by path, in model order (they are in the rewritten tree). */
        public Map<String, QuantizedLoraLinear> layers() {
            return java.util.Collections.unmodifiableMap(layers);
        }

        /** One report per target, in model order. */
        public List<TargetReport> reports() {
            return List.copyOf(reports);
        }

        /** Frees the layers' native memory; the rewritten tree must not run afterwards. */
        @Override
        public void close() {
            layers.values().forEach(QuantizedLoraLinear::close);
        }
    }

    /**
     * ApiQ-lw over every Linear of the encoder.
     *
     * @param fp the full-precision model; only read
     * @param target a second copy of the same model, rewritten in place
     * @param calibration token ids per sentence (special tokens included), at least one
     * @throws IllegalArgumentException for an empty calibration set or mismatched models
     * @throws dev.loftq.quant.apiq.ApiqDivergedException if a target's loss diverges
     */
    public Result layerwise(BertModelBlock fp, BertModelBlock target, List<long[]> calibration) {
        return run(fp, target, calibration, false);
    }

    /**
     * ApiQ-bw over the encoder layers.
     *
     * @see #layerwise
     */
    public Result blockwise(BertModelBlock fp, BertModelBlock target, List<long[]> calibration) {
        return run(fp, target, calibration, true);
    }

    private Result run(BertModelBlock fp, BertModelBlock target, List<long[]> ids,
            boolean blockwise) {
        Checks.notNull("fp", fp);
        Checks.notNull("target", target);
        if (ids == null || ids.isEmpty()) {
            throw new IllegalArgumentException("calibration sentences must not be empty, got "
                    + (ids == null ? "null" : "0 sentences"));
        }
        if (fp == target || !fp.config().equals(target.config())) {
            throw new IllegalArgumentException("fp and target must be two copies of one model, got "
                    + (fp == target ? "the same tree twice" : fp.config() + " and " + target.config()));
        }
        Map<String, QuantizedLoraLinear> layers = new LinkedHashMap<>();
        List<TargetReport> reports = new ArrayList<>();
        try (TensorScope captureScope = backend.newScope()) {
            NDManager manager = DjlBackend.manager(captureScope);
            for (int i = 0; i < Math.min(maxLayers, fp.config().numLayers()); i++) {
                String layer = "encoder.layer." + i;
                if (blockwise) {
                    Map<String, Capture.Record> fpRec = Capture.run(fp, manager, ids,
                            List.of(layer), true);
                    unit(fp, target, layer, ids, fpRec.get(layer), layers, reports, manager, true);
                } else {
                    List<String> paths = new ArrayList<>();
                    for (String l : BertLayerTarget.LINEARS) {
                        paths.add(layer + "." + l);
                    }
                    Map<String, Capture.Record> fpRec = Capture.run(fp, manager, ids, paths, false);
                    for (String p : paths) {
                        unit(fp, target, p, ids, fpRec.get(p), layers, reports, manager, false);
                    }
                }
            }
        } catch (RuntimeException e) {
            layers.values().forEach(QuantizedLoraLinear::close);
            throw e;
        }
        return new Result(layers, reports);
    }

    /** One target: resume or train it, then install its layers in the target tree. */
    private void unit(BertModelBlock fp, BertModelBlock tree, String path, List<long[]> ids,
            Capture.Record fpRec, Map<String, QuantizedLoraLinear> layers,
            List<TargetReport> reports, NDManager manager, boolean blockwise) {
        long t0 = System.nanoTime();
        try (TensorScope results = backend.newScope(); TensorScope work = backend.newScope()) {
            ApiqTarget target = blockwise
                    ? new BertLayerTarget(fp, path, fp.config(), work)
                    : linearTarget(fp, path, work);
            Map<String, ApiqResult.Weight> weights;
            TargetReport report;
            Path file = resumeDirectory == null ? null : resumeDirectory.resolve(path + ".safetensors");
            if (file != null && Files.exists(file)) {
                weights = new LinkedHashMap<>();
                report = read(file, path, target, results, weights);
            } else {
                Capture.Record qRec = Capture.run(tree, manager, ids, List.of(path), false).get(path);
                List<ApiqSample> samples = new ArrayList<>();
                for (int s = 0; s < ids.size(); s++) {
                    Tensor xq = work.fromHost(qRec.inputs().get(s), qRec.inputShapes().get(s));
                    Tensor y = blockwise
                            ? work.fromHost(fpRec.outputs().get(s), fpRec.outputShapes().get(s))
                            : target.forward(work, work.fromHost(fpRec.inputs().get(s),
                                    fpRec.inputShapes().get(s)), target.weights());
                    samples.add(new ApiqSample(xq, y));
                }
                ApiqResult r = Apiq.optimize(results, target, samples, config);
                weights = r.weights();
                report = new TargetReport(path, r.startError(), r.calibrationError(),
                        r.heldOutStartError(), r.heldOutError(), r.trainLoss(), r.evalLoss(),
                        r.evalSteps(), r.bestStep(), (System.nanoTime() - t0) / 1e9, false);
                if (file != null) {
                    write(file, report, weights, results);
                }
            }
            for (Map.Entry<String, ApiqResult.Weight> e : weights.entrySet()) {
                String linearPath = blockwise ? path + "." + e.getKey() : path;
                layers.put(linearPath, install(fp, tree, linearPath, e.getValue()));
            }
            reports.add(report);
            LOG.info("ApiQ {}", report);
            if (listener != null) {
                listener.accept(report);
            }
        }
    }

    private static LinearTarget linearTarget(Block fp, String path, TensorScope work) {
        Block linear = BlockPaths.byPath(fp).get(path);
        return new LinearTarget(path, BertLayerTarget.frozen(work, linear, "weight"),
                BertLayerTarget.frozen(work, linear, "bias"));
    }

    /** A QuantizedLoraLinear with the learned weight and the fp bias, put at {@code path}. */
    private QuantizedLoraLinear install(Block fp, Block tree, String path, ApiqResult.Weight w) {
        TensorScope own = backend.newScope();
        try {
            QuantizedTensor q = w.quantized().keep(own);
            Tensor bias = own.mul(BertLayerTarget.frozen(own, BlockPaths.byPath(fp).get(path), "bias"), 1f);
            QuantizedLoraLinear layer = QuantizedLoraLinear.loraBuilder()
                    .setQuantized(own, q)
                    .setLora(w.loraA(), w.loraB())
                    .setScaling(config.scaling())
                    .optBias(bias)
                    .optCacheDequantized(true) // later targets' captures run it once per sentence
                    .optName(path)
                    .build();
            BlockPaths.replace(tree, path, layer);
            return layer;
        } catch (RuntimeException e) {
            own.close();
            throw e;
        }
    }

    /**
     * The per-Linear output error of a quantized copy of a model: for every Linear path of
     * {@code fp} that is also a block in {@code quantized}, {@code Σ‖Y_q − Y_fp‖² / Σ‖Y_fp‖²} over
     * the tokens of {@code ids}, where Y_q is the quantized model's output of that layer on its own
     * (propagated) inputs. {@value Capture#BATCH} sentences at a time, so memory holds one such
     * batch's activations.
     *
     * @param fp the full-precision model
     * @param quantized the rewritten copy (ApiQ, LoftQ or QLoRA wrapped)
     * @param ids token ids per sentence, at least one
     * @return relative error by path, in model order
     */
    public static Map<String, Double> linearOutputErrors(BertModelBlock fp, BertModelBlock quantized,
            List<long[]> ids, DjlBackend backend) {
        if (ids == null || ids.isEmpty()) {
            throw new IllegalArgumentException("sentences must not be empty, got "
                    + (ids == null ? "null" : "0 sentences"));
        }
        List<String> paths = new ArrayList<>();
        for (int i = 0; i < fp.config().numLayers(); i++) {
            for (String l : BertLayerTarget.LINEARS) {
                paths.add("encoder.layer." + i + "." + l);
            }
        }
        double[] num = new double[paths.size()];
        double[] den = new double[paths.size()];
        try (TensorScope scope = backend.newScope()) {
            NDManager manager = DjlBackend.manager(scope);
            for (int start = 0; start < ids.size(); start += Capture.BATCH) {
                List<long[]> chunk = ids.subList(start, Math.min(ids.size(), start + Capture.BATCH));
                Map<String, Capture.Record> a = Capture.run(fp, manager, chunk, paths, true);
                Map<String, Capture.Record> b = Capture.run(quantized, manager, chunk, paths, true);
                for (int k = 0; k < paths.size(); k++) {
                    for (int i = 0; i < chunk.size(); i++) {
                        float[] y = a.get(paths.get(k)).outputs().get(i);
                        float[] yq = b.get(paths.get(k)).outputs().get(i);
                        for (int j = 0; j < y.length; j++) {
                            double d = (double) yq[j] - y[j];
                            num[k] += d * d;
                            den[k] += (double) y[j] * y[j];
                        }
                    }
                }
            }
        }
        Map<String, Double> out = new LinkedHashMap<>();
        for (int k = 0; k < paths.size(); k++) {
            out.put(paths.get(k), num[k] / den[k]);
        }
        return out;
    }

    // ---- resume files -------------------------------------------------------------------------

    private static void write(Path file, TargetReport r, Map<String, ApiqResult.Weight> weights,
            TensorScope scope) {
        Map<String, TensorData> t = new LinkedHashMap<>();
        weights.forEach((name, w) -> {
            t.put(name + ".gamma", floats(scope, w.gamma()));
            if (w.beta() != null) {
                t.put(name + ".beta", floats(scope, w.beta()));
            }
            t.put(name + ".lora_A", floats(scope, w.loraA()));
            t.put(name + ".lora_B", floats(scope, w.loraB()));
        });
        t.put("report.errors", TensorData.ofDoubles(new double[] {r.startError(),
            r.calibrationError(), r.heldOutStartError(), r.heldOutError(), r.bestStep(),
            r.seconds()}, 6));
        t.put("report.train_loss", TensorData.ofDoubles(r.trainLoss(), r.trainLoss().length));
        t.put("report.eval_loss", TensorData.ofDoubles(r.evalLoss(), r.evalLoss().length));
        t.put("report.eval_steps", TensorData.ofInts(r.evalSteps(), r.evalSteps().length));
        try {
            Files.createDirectories(file.getParent());
            SafetensorsStreamWriter.writeAll(file, t, Map.of("format", "loftq-apiq-target-1"));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the ApiQ resume file " + file, e);
        }
    }

    private static TensorData floats(TensorScope scope, Tensor t) {
        return TensorData.ofFloats(scope.toFloatArray(t), t.shape());
    }

    /** Reads a finished target: Q is made again from W and the stored logits (deterministic). */
    private TargetReport read(Path file, String path, ApiqTarget target, TensorScope scope,
            Map<String, ApiqResult.Weight> out) {
        try (LazySafetensorsFile f = LazySafetensorsFile.open(file)) {
            for (Map.Entry<String, Tensor> e : target.weights().entrySet()) {
                String n = e.getKey();
                Tensor gamma = tensor(scope, f, n + ".gamma");
                Tensor beta = config.normalFloat() ? null : tensor(scope, f, n + ".beta");
                Tensor a = tensor(scope, f, n + ".lora_A");
                Tensor b = tensor(scope, f, n + ".lora_B");
                QuantizedTensor q = config.normalFloat()
                        ? new LearnableClipCodebookQuantizer(config.codebookQuantizer())
                                .quantize(scope, e.getValue(), path + "." + n, gamma)
                        : new LearnableClipQuantizer(config.quantizer(), config.groupSize())
                                .quantize(scope, e.getValue(), path + "." + n, gamma, beta);
                out.put(n, new ApiqResult.Weight(q, a, b, gamma, beta));
            }
            double[] r = f.read("report.errors").doubles();
            return new TargetReport(path, r[0], r[1], r[2], r[3],
                    f.read("report.train_loss").doubles(), f.read("report.eval_loss").doubles(),
                    f.read("report.eval_steps").ints(), (int) r[4], 0, true);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the ApiQ resume file " + file, e);
        }
    }

    private static Tensor tensor(TensorScope scope, LazySafetensorsFile f, String name)
            throws IOException {
        TensorData d = f.read(name);
        return scope.fromHost(d.floats(), d.shape());
    }

    /** Configures a {@link BertApiq}. */
    public static final class Builder {
        private final DjlBackend backend;
        private final ApiqConfig config;
        private Path resumeDirectory;
        private Consumer<TargetReport> listener;
        private int maxLayers = Integer.MAX_VALUE;

        private Builder(DjlBackend backend, ApiqConfig config) {
            this.backend = Checks.notNull("backend", backend);
            this.config = Checks.notNull("config", config);
        }

        /** Where finished targets are stored and read back from. Default: none (no resume). */
        public Builder optResumeDirectory(Path directory) {
            this.resumeDirectory = Checks.notNull("directory", directory);
            return this;
        }

        /** Called after each target, in model order (progress). Default: none. */
        public Builder optListener(Consumer<TargetReport> listener) {
            this.listener = Checks.notNull("listener", listener);
            return this;
        }

        /**
         * Quantize only the first {@code layers} encoder layers (the others keep their
         * full-precision Linears). Default: all.
         */
        public Builder optLayers(int layers) {
            this.maxLayers = Checks.inRange("layers", layers, 1, 1 << 16);
            return this;
        }

        /** The driver. */
        public BertApiq build() {
            return new BertApiq(this);
        }
    }
}
