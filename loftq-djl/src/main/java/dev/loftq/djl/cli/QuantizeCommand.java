package dev.loftq.djl.cli;

import ai.djl.Device;
import dev.loftq.core.tensor.Backend;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.checkpoint.CheckpointQuantizer;
import dev.loftq.djl.checkpoint.LayerReport;
import dev.loftq.quant.loftq.LoftqPolicy;
import dev.loftq.djl.checkpoint.ProgressListener;
import dev.loftq.djl.checkpoint.QuantizationResult;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code loftq quantize}: LoftQ over a checkpoint (see {@link CheckpointQuantizer}). */
@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = {"LoftQ over every target layer of a safetensors checkpoint (single file or "
                + "sharded). Writes a transformers + bitsandbytes 4-bit checkpoint (or, for 2/3 "
                + "bits, the dequantized backbone in the original dtype), loftq_init/ (a peft "
                + "adapter) and loftq_report.json. A killed run resumes when restarted with the "
                + "same arguments."})
final class QuantizeCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR",
            description = "Checkpoint directory (model.safetensors or an index with shards), or "
                    + "a .safetensors file.")
    Path model;

    @Option(names = "--out", required = true, paramLabel = "DIR",
            description = "Output directory: must be empty or absent, or hold an unfinished run "
                    + "of the same arguments (which is resumed).")
    Path out;

    @Option(names = "--bits", defaultValue = "4", description = "Bits of target layers: 4 "
            + "(bitsandbytes NF4 + double quantization), 3 or 2 (LoftQ NF3/NF2, stored "
            + "dequantized). Default: ${DEFAULT-VALUE}.")
    int bits;

    @Option(names = "--rank", defaultValue = "16", description = "LoRA rank r. Default: "
            + "${DEFAULT-VALUE}.")
    int rank;

    @Option(names = "--iters", defaultValue = "5", description = "LoftQ alternating steps T. "
            + "Default: ${DEFAULT-VALUE}.")
    int iters;

    @Option(names = "--alpha", description = "lora_alpha (default: the rank, so s = 1).")
    Float alpha;

    @Option(names = "--rslora", description = "rsLoRA scaling alpha / sqrt(r).")
    boolean rsLora;

    @Option(names = "--targets", split = ",", paramLabel = "NAME",
            description = "Target module names, comma-separated (a module matches when its path "
                    + "equals a name or ends with '.' + name). Default: q_proj,k_proj,v_proj,"
                    + "o_proj,gate_proj,up_proj,down_proj,query,key,value,dense.")
    List<String> targets;

    @Option(names = "--mixed", paramLabel = "RULES",
            description = "Per-layer bits[:rank] by regex, first match wins, e.g. "
                    + "'layers.[0-3]\\..*=4,.*=2' or 'down_proj=4:32'.")
    String mixed;

    @Option(names = "--device", defaultValue = "cpu", description = "cpu or gpu (needs a "
            + "pytorch-native-cuXXX artifact). Default: ${DEFAULT-VALUE}.")
    String device;

    @Option(names = "--threads", defaultValue = "1", description = "Layers processed in "
            + "parallel (within the memory budget). Default: ${DEFAULT-VALUE}.")
    int threads;

    @Option(names = "--memory", defaultValue = "3g", paramLabel = "SIZE",
            description = "Memory budget for layers in flight, e.g. 2g, 512m. Default: "
                    + "${DEFAULT-VALUE}.")
    String memory;

    @Option(names = "--seed", defaultValue = "0", description = "Seed of the randomized SVD. "
            + "Default: ${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--no-progress", description = "Do not draw the progress bar.")
    boolean noProgress;

    @Option(names = "--layers", description = "Print one summary line per layer instead of per "
            + "projection kind.")
    boolean perLayer;

    @Override
    public Integer call() throws Exception {
        PrintWriter err = spec.commandLine().getErr();
        PrintWriter o = spec.commandLine().getOut();
        CheckpointQuantizer.Builder b = CheckpointQuantizer.builder(model, out).bits(bits)
                .rank(rank).iterations(iters).rsLora(rsLora).seed(seed).threads(threads)
                .memoryBudget(parseSize(memory)).backend(backend(device));
        if (alpha != null) {
            b.loraAlpha(alpha);
        }
        if (targets != null) {
            b.targets(targets);
        }
        if (mixed != null) {
            b.mixed(LoftqPolicy.parse(mixed));
        }
        Progress progress = new Progress(err, !noProgress);
        QuantizationResult r;
        try {
            r = b.listener(progress).build().run();
        } finally {
            progress.close();
        }
        summary(o, r);
        return LoftqCli.OK;
    }

    static Backend backend(String device) {
        return switch (device.toLowerCase(Locale.ROOT)) {
            case "cpu" -> DjlBackend.cpu();
            case "gpu", "cuda" -> DjlBackend.on(Device.gpu());
            default -> throw new IllegalArgumentException("--device must be cpu or gpu, got '"
                    + device + "'");
        };
    }

    static long parseSize(String s) {
        String t = s.trim().toLowerCase(Locale.ROOT);
        long unit = 1;
        if (t.endsWith("g") || t.endsWith("m") || t.endsWith("k")) {
            unit = t.endsWith("g") ? 1L << 30 : t.endsWith("m") ? 1L << 20 : 1L << 10;
            t = t.substring(0, t.length() - 1);
        }
        try {
            double v = Double.parseDouble(t);
            if (!(v > 0) || Double.isInfinite(v)) {
                throw new NumberFormatException();
            }
            return (long) (v * unit);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--memory must be a positive size such as 3g, "
                    + "512m or 1048576, got '" + s + "'");
        }
    }

    private void summary(PrintWriter o, QuantizationResult r) {
        Map<String, double[]> groups = new TreeMap<>(); // count, qlora, error, rolled, bits, rank
        for (LayerReport l : r.layers()) {
            String key = perLayer ? l.module() : kind(l.module());
            double[] g = groups.computeIfAbsent(key, k -> new double[6]);
            g[0]++;
            g[1] += l.qloraError();
            g[2] += l.error();
            g[3] += l.accepted() ? 0 : 1;
            g[4] = l.bits();
            g[5] = l.rank();
        }
        int width = Math.max(12, groups.keySet().stream().mapToInt(String::length).max().orElse(0));
        String fmt = "%-" + width + "s %6s %4s %5s %12s %12s %9s %8s%n";
        o.printf(Locale.ROOT, fmt, perLayer ? "layer" : "kind", "layers", "bits", "rank",
                "QLoRA err", "LoftQ err", "gain", "rolled");
        for (Map.Entry<String, double[]> e : groups.entrySet()) {
            double[] g = e.getValue();
            o.printf(Locale.ROOT, fmt, e.getKey(), (int) g[0], (int) g[4], (int) g[5],
                    String.format(Locale.ROOT, "%.5f", g[1] / g[0]),
                    String.format(Locale.ROOT, "%.5f", g[2] / g[0]),
                    String.format(Locale.ROOT, "%.1f%%", 100 * (1 - g[2] / g[1])), (int) g[3]);
        }
        o.printf(Locale.ROOT, "%d layers (%d resumed), mean error %.5f (QLoRA %.5f); "
                + "%.1f s, %.1f MB in, %.1f MB out; written to %s%n", r.layers().size(),
                r.resumed(), r.meanError(), r.meanQloraError(), r.seconds(), r.bytesIn() / 1e6,
                r.bytesOut() / 1e6, r.output());
    }

    /** The last path component (q_proj, …) or the module without its layer index. */
    private static String kind(String module) {
        return module.replaceAll("\\.\\d+\\.", ".N.");
    }

    /** Draws the bar: tensors done, MB processed, MB/s and ETA. */
    static final class Progress implements ProgressListener, AutoCloseable {
        private final PrintWriter err;
        private final boolean draw;
        private ProgressBar bar;
        private int total;
        private int done;

        Progress(PrintWriter err, boolean draw) {
            this.err = err;
            this.draw = draw;
        }

        @Override
        public synchronized void started(int targets, long targetBytes, int resumed) {
            total = targets;
            if (resumed > 0) {
                err.println("resuming: " + resumed + " of " + targets + " layers were finished");
            }
            if (draw) {
                // Counted in KiB (shown in MiB), so small tensors still move the bar.
                bar = new ProgressBarBuilder().setTaskName("LoftQ").setInitialMax(
                        Math.max(1, targetBytes >> 10)).setUnit(" MB", 1024).showSpeed()
                        .setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(500)
                        .setConsumer(new ConsoleProgressBarConsumer(new java.io.PrintStream(
                                new WriterOutputStream(err), true))).build();
                bar.setExtraMessage(" 0/" + targets + " tensors");
            }
        }

        @Override
        public synchronized void tensorDone(String module, long bytes, boolean skipped) {
            done++;
            if (bar != null) {
                bar.stepBy(bytes >> 10);
                bar.setExtraMessage(" " + done + "/" + total + " tensors");
            }
        }

        @Override
        public synchronized void assembling() {
            if (bar != null) {
                bar.setExtraMessage(" " + done + "/" + total + " tensors, writing");
            }
        }

        @Override
        public synchronized void close() {
            if (bar != null) {
                bar.close();
                bar = null;
            }
        }
    }

    /** Bytes to a PrintWriter (UTF-8), for the progress bar's console. */
    static final class WriterOutputStream extends java.io.OutputStream {
        private final PrintWriter w;
        private final java.io.ByteArrayOutputStream line = new java.io.ByteArrayOutputStream();

        WriterOutputStream(PrintWriter w) {
            this.w = w;
        }

        @Override
        public synchronized void write(int b) {
            line.write(b);
        }

        @Override
        public synchronized void flush() {
            w.print(line.toString(java.nio.charset.StandardCharsets.UTF_8));
            w.flush();
            line.reset();
        }
    }
}
