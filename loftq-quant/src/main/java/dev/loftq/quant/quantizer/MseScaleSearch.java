package dev.loftq.quant.quantizer;

import dev.loftq.core.tensor.BucketTable;
import dev.loftq.core.tensor.ScaleMode;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.codebook.Codebook;

/**
 * MSE-optimal block scales for codebook quantization: per block, the scale s that makes
 * {@code Σ (x − s·t[code(x / s)])²} small, values beyond s clipping to the end codes. The stored
 * scale still dequantizes as {@code code value × scale}, so a bitsandbytes loader reads it as an
 * absmax.
 *
 * <p>Two stages, both cheaper than a full grid per block. (Warm-starting the Lloyd iterations from
 * the previous LoftQ step's scales was tried: it halves the cost but loses a third of the gain at
 * 2 bits on all-MiniLM-L6-v2, so every call starts cold.)
 * <ol>
 *   <li>A common clipping ratio r* = s / absmax: the best of a grid of ratios on a strided sample
 *       of at most {@value #SAMPLE_BLOCKS} blocks, evaluated on the host.</li>
 *   <li>Lloyd iterations per block from s = r*·absmax and from two starts 0.15 either side of it:
 *       encode with s, then s ← Σ x·t / Σ t²
 *       (the least-squares scale for those codes). Each iteration lowers the block's error for a
 *       nearest-value encoder and is a few whole-tensor SPI operations, one fitting pass over the
 *       tensor for all starts; the block errors come free from the same sums, so each block keeps
 *       the best of its starts, or its absmax scale unless a fit is strictly better (so the error
 *       is never above absmax quantization's).</li>
 * </ol>
 */
final class MseScaleSearch {
    /** Clipping ratios tried for r*: 0.30, 0.35, …, 1.00. */
    private static final float[] RATIOS = ratios(0.30f, 1.00f, 0.05f);
    /** Blocks of the host sample for r*. */
    static final int SAMPLE_BLOCKS = 512;
    /** Lloyd iterations from each cold start. */
    static final int COLD_ITERATIONS = 2;
    /** Cold starts around the common ratio r*: per block, the best of their Lloyd fits is kept. */
    private static final float[] START_OFFSETS = {0f, -0.15f, 0.15f};
    /** The smallest clipping ratio a cold start uses. */
    private static final float MIN_RATIO = 0.2f;

    private MseScaleSearch() {}

    /**
     * The scales, FLOAT32 [nb], owned by {@code scope}.
     *
     * @param flat the tensor flattened, FLOAT32 [n], finite
     * @param absmax its block absmax, FLOAT32 [nb], with the host copy {@code hostAbsmax}
     */
    static Tensor search(TensorScope scope, Tensor flat, int blockSize, Tensor absmax,
            float[] hostAbsmax, BucketTable encoder, ScaleMode mode, Codebook codebook) {
        int n = (int) flat.numel();
        Fit fit = new Fit(flat, blockSize, encoder, mode,
                scope.fromHost(codebook.values(), codebook.size()));
        float ratio = commonRatio(scope.toFloatArray(flat), n, blockSize, hostAbsmax, encoder, mode,
                codebook.values());
        Tensor[] s = new Tensor[START_OFFSETS.length];
        for (int j = 0; j < s.length; j++) {
            s[j] = scope.mul(absmax, Math.max(MIN_RATIO, Math.min(1f, ratio + START_OFFSETS[j])));
        }
        // Lloyd iterations of all starts share one fitting pass over the tensor per iteration;
        // the first pass also fits absmax, the fallback every block is compared against.
        Tensor[] error = new Tensor[s.length];
        Tensor absmaxError = null;
        for (int it = 0; it < COLD_ITERATIONS; it++) {
            try (TensorScope tmp = scope.newChild()) {
                Tensor[] sets = s;
                if (it == 0) {
                    sets = new Tensor[s.length + 1];
                    sets[0] = absmax;
                    System.arraycopy(s, 0, sets, 1, s.length);
                }
                Tensor[][] st = fit.statistics(tmp, sets);
                int first = sets.length - s.length;
                if (it == 0) {
                    absmaxError = scope.keep(Fit.squaredError(tmp, st[0], absmax));
                }
                for (int j = 0; j < s.length; j++) {
                    Tensor[] step = Fit.lloydStep(tmp, st[first + j], s[j]);
                    s[j] = scope.keep(step[0]);
                    error[j] = scope.keep(step[1]);
                }
            }
        }
        Tensor best = s[0];
        Tensor bestError = error[0];
        for (int j = 1; j < s.length; j++) {
            Tensor better = scope.lt(error[j], bestError);
            best = scope.where(better, s[j], best);
            bestError = scope.where(better, error[j], bestError);
        }
        // Per block, absmax wins unless a fit is strictly better: never worse than absmax scales.
        try (TensorScope tmp = scope.newChild()) {
            return scope.keep(tmp.where(tmp.lt(bestError, absmaxError), best, absmax));
        }
    }

    /** Block statistics of the codebook fit at given scales, through one coarse SPI operation. */
    private record Fit(Tensor flat, int blockSize, BucketTable encoder, ScaleMode mode,
            Tensor values) {

        /**
         * Per scale set ([nb] each), the columns Σx·t, Σt², Σx² of
         * {@link TensorScope#blockCodebookFit}, each [nb]: all sets in one pass over the tensor.
         */
        Tensor[][] statistics(TensorScope tmp, Tensor[] sets) {
            int nb = sets[0].dim(0);
            Tensor[] rows = new Tensor[sets.length];
            for (int j = 0; j < sets.length; j++) {
                rows[j] = tmp.reshape(sets[j], 1, nb);
            }
            Tensor stats = tmp.blockCodebookFit(flat, tmp.concat(0, rows), blockSize, mode,
                    encoder, values);
            Tensor[][] out = new Tensor[sets.length][];
            for (int j = 0; j < sets.length; j++) {
                Tensor set = tmp.reshape(tmp.sliceRows(stats, j, j + 1), nb, 3);
                out[j] = new Tensor[] {tmp.reshape(tmp.sliceColumns(set, 0, 1), nb),
                    tmp.reshape(tmp.sliceColumns(set, 1, 2), nb),
                    tmp.reshape(tmp.sliceColumns(set, 2, 3), nb)};
            }
            return out;
        }

        /** Σx² − 2s·Σx·t + s²·Σt² at s with its own codes: the exact block errors. */
        static Tensor squaredError(TensorScope tmp, Tensor[] st, Tensor s) {
            return tmp.add(tmp.sub(st[2], tmp.mul(tmp.mul(st[0], s), 2f)),
                    tmp.mul(tmp.mul(st[1], s), s));
        }

        /**
         * One Lloyd iteration from {@code s} with the statistics {@code st} of its codes:
         * s ← Σx·t / Σt². Returns the new scales and an upper bound of each block's squared error
         * at them, {@code Σx² − (Σx·t)² / Σt²} for the codes of {@code s} (the new scale's own
         * codes can only do better).
         */
        static Tensor[] lloydStep(TensorScope tmp, Tensor[] st, Tensor s) {
            Tensor fitted = tmp.div(st[0], st[1]);
            // Keep s where the fit is undefined (0/0: an all-zero block) or not positive.
            Tensor valid = tmp.gt(fitted, tmp.full(0f, 1));
            Tensor next = tmp.where(valid, fitted, s);
            Tensor fittedError = tmp.sub(st[2], tmp.mul(st[0], fitted));
            return new Tensor[] {next, tmp.where(valid, fittedError, squaredError(tmp, st, next))};
        }
    }

    /** The ratio of {@link #RATIOS} with the least squared error over a strided block sample. */
    private static float commonRatio(float[] x, int n, int blockSize, float[] absmax,
            BucketTable encoder, ScaleMode mode, float[] values) {
        int nb = absmax.length;
        int stride = Math.max(1, nb / SAMPLE_BLOCKS);
        double[] error = new double[RATIOS.length];
        for (int b = 0; b < nb; b += stride) {
            int from = b * blockSize;
            int to = Math.min(n, from + blockSize);
            for (int j = 0; j < RATIOS.length; j++) {
                float s = absmax[b] * RATIOS[j];
                if (!(s > 0f)) {
                    continue;
                }
                float r = 1f / s;
                double e = 0;
                for (int i = from; i < to; i++) {
                    float xn = mode == ScaleMode.MULTIPLY_RECIPROCAL ? x[i] * r : x[i] / s;
                    double d = x[i] - values[encoder.encode(xn)] * s;
                    e += d * d;
                }
                error[j] += e;
            }
        }
        int best = RATIOS.length - 1;
        for (int j = 0; j < RATIOS.length; j++) {
            if (error[j] < error[best]) {
                best = j;
            }
        }
        return RATIOS[best];
    }

    private static float[] ratios(float from, float to, float step) {
        int count = Math.round((to - from) / step) + 1;
        float[] r = new float[count];
        for (int i = 0; i < count; i++) {
            r[i] = i == count - 1 ? to : from + i * step;
        }
        return r;
    }
}
