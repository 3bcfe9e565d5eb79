package dev.loftq.bench;

import dev.loftq.core.linalg.LowRankOptions;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.HostRandom;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.quant.loftq.Loftq;
import dev.loftq.quant.loftq.LoftqConfig;
import dev.loftq.quant.quantizer.CodebookQuantizer;

/**
 * A quick timing of LoftQ NF4 r16 T5 on {@link LoftqBenchmark}'s weight (Gaussian, 1 % planted
 * outliers), published preset with the fast low-rank path and default, best of N runs in one JVM,
 * for before/after pairs: run it with the jars of two commits in alternating JVMs (RESULTS.md,
 * "Round 3"). Arguments: out, in, runs. Prints one {@code RESULT} line.
 */
public final class LoftqTiming {
    private LoftqTiming() {}

    public static void main(String[] args) {
        int out = Integer.parseInt(args[0]);
        int in = Integer.parseInt(args[1]);
        int runs = Integer.parseInt(args[2]);
        float[] data = HostRandom.normal(3, 0f, 0.02f, out * in);
        for (int i = 0; i < data.length; i += 97) {
            data[i] *= 8;
        }
        CodebookQuantizer nf4 = CodebookQuantizer.bitsandbytesNf4();
        LoftqConfig published = LoftqConfig.published(nf4, 16).toBuilder()
                .lowRank(LowRankOptions.fastDefaults()).build();
        LoftqConfig standard = LoftqConfig.builder(nf4).rank(16).build();
        Backend backend = DjlBackend.cpu();
        try (TensorScope scope = backend.newScope()) {
            Tensor w = scope.fromHost(data, out, in);
            double bestPublished = Double.POSITIVE_INFINITY;
            double bestDefault = Double.POSITIVE_INFINITY;
            double errorPublished = Double.NaN;
            double errorDefault = Double.NaN;
            for (int r = 0; r < runs; r++) { // alternating, so both see the same conditions
                long start = System.nanoTime();
                errorPublished = run(scope, w, published);
                bestPublished = Math.min(bestPublished, (System.nanoTime() - start) / 1e6);
                start = System.nanoTime();
                errorDefault = run(scope, w, standard);
                bestDefault = Math.min(bestDefault, (System.nanoTime() - start) / 1e6);
            }
            System.out.printf("RESULT %dx%d published %.0f ms (err %.5f) default %.0f ms (err %.5f)"
                    + " ratio %.2f%n", out, in, bestPublished, errorPublished, bestDefault,
                    errorDefault, bestDefault / bestPublished);
        }
    }

    private static double run(TensorScope scope, Tensor w, LoftqConfig config) {
        try (TensorScope step = scope.newChild()) {
            return Loftq.initialize(step, w, "w", config).error();
        }
    }
}
