package dev.loftq.bench;

import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.checkpoint.CheckpointQuantizer;
import dev.loftq.djl.checkpoint.ProgressListener;
import dev.loftq.djl.checkpoint.QuantizationResult;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * The scale benchmark: a synthetic LLaMA-2-7B-shaped bf16 checkpoint ({@link
 * SyntheticLlamaCheckpoint}, the number of layers a parameter) through {@link CheckpointQuantizer}
 * with NF4, r = 16, T = 5; reports wall time (generation excluded) and the process's peak
 * resident set ({@code VmHWM} of /proc/self/status, JVM heap and native engine memory together).
 *
 * <p>Usage: {@code benchmarks/scale.sh LAYERS [THREADS] [MEMORY_BUDGET_MB]} (see
 * benchmarks/RESULTS.md). Arguments of {@link #main}: work directory, layers, threads, memory
 * budget in MB, and {@code --record} to append the figures to {@code benchmarks/results/scale.json}.
 */
public final class ScaleBenchmark {
    /** What one run measured. */
    public record Measurement(int layers, int tensors, double generateSeconds, double seconds,
            long peakRssBytes, double meanError, double meanQloraError, long bytesIn) {}

    private ScaleBenchmark() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: ScaleBenchmark WORK_DIR LAYERS [THREADS] [BUDGET_MB] "
                    + "[--record]");
            System.exit(2);
        }
        Path work = Path.of(args[0]);
        int layers = Integer.parseInt(args[1]);
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        long budget = (args.length > 3 ? Long.parseLong(args[3]) : 1536) << 20;
        boolean record = List.of(args).contains("--record");
        Measurement m = run(work, SyntheticLlamaCheckpoint.Shape.llama2_7b(layers), threads,
                budget, new ProgressListener() {
                    private int done;

                    @Override
                    public synchronized void tensorDone(String module, long bytes,
                            boolean skipped) {
                        done++;
                        System.err.printf("  %d  %s%n", done, module);
                    }
                });
        System.out.printf("| layers | tensors | wall time (s) | peak RSS (MB) | mean error | "
                + "QLoRA error | generate (s) |%n|---|---|---|---|---|---|---|%n");
        System.out.printf("| %d | %d | %.1f | %.0f | %.5f | %.5f | %.1f |%n", m.layers(),
                m.tensors(), m.seconds(), m.peakRssBytes() / 1048576.0, m.meanError(),
                m.meanQloraError(), m.generateSeconds());
        System.out.println("machine: " + ResultsLog.machine() + ", threads " + threads
                + ", budget " + (budget >> 20) + " MB");
        if (record) {
            String cmd = "benchmarks/scale.sh " + layers + " " + threads + " " + (budget >> 20);
            new ResultsLog(Path.of("benchmarks/results"), "scale", cmd).append(List.of(
                    Figure.of("scale.nf4_r16_t5.layers" + layers + ".wall", m.seconds(), "s", Double.NaN),
                    Figure.of("scale.nf4_r16_t5.layers" + layers + ".peak_rss",
                            m.peakRssBytes() / 1048576.0, "MB", Double.NaN)));
        }
    }

    /**
     * Generates the checkpoint under {@code work/model} (reused if complete), quantizes it into
     * {@code work/out} (removed first) and measures.
     */
    public static Measurement run(Path work, SyntheticLlamaCheckpoint.Shape shape, int threads,
            long budgetBytes, ProgressListener listener) throws IOException {
        Path model = work.resolve("model-" + shape.layers() + "x" + shape.hidden());
        Path out = work.resolve("out");
        long t0 = System.nanoTime();
        if (!Files.isRegularFile(model.resolve("config.json"))) {
            SyntheticLlamaCheckpoint.write(model, shape, 10_000_000_000L, 1);
        }
        double generate = (System.nanoTime() - t0) / 1e9;
        deleteTree(out);
        QuantizationResult r = CheckpointQuantizer.builder(model, out).bits(4).rank(16)
                .iterations(5).threads(threads).memoryBudget(budgetBytes)
                .backend(DjlBackend.cpu()).listener(listener).build().run();
        return new Measurement(shape.layers(), r.layers().size(), generate, r.seconds(),
                peakRss(), r.meanError(), r.meanQloraError(), r.bytesIn());
    }

    /** VmHWM of this process in bytes, or -1 where /proc is unavailable. */
    public static long peakRss() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    String[] p = line.trim().split("\\s+");
                    return Long.parseLong(p[1]) * 1024;
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    private static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root)) {
            return;
        }
        List<Path> all = new ArrayList<>();
        try (Stream<Path> s = Files.walk(root)) {
            s.sorted(Comparator.reverseOrder()).forEach(all::add);
        }
        for (Path p : all) {
            Files.delete(p);
        }
    }
}
