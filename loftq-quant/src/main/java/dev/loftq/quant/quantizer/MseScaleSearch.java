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
 *       nearest-value encoder and is a few whole-tensor SPI operations; the block errors come free
 *       from the same sums, so each block keeps the best of its starts, or its absmax scale
 *       unless a fit is strictly better (so the error is never above absmax quantization's).</li>
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
        Fit fit = new Fit(scope, flat, blockSize, encoder, mode,
                scope.fromHost(codebook.values(), codebook.size()));
        float ratio = commonRatio(scope.toFloatArray(flat), n, blockSize, hostAbsmax, encoder, mode,
                codebook.values());
        Tensor best = null;
        Tensor bestError = null;
        for (float offset : START_OFFSETS) {
            float r = Math.max(MIN_RATIO, Math.min(1f, ratio + offset));
            Tensor[] lloyd = fit.lloyd(scope.mul(absmax, r), COLD_ITERATIONS);
            if (best == null) {
                best = lloyd[0];
                bestError = lloyd[1];
            } else {
                Tensor better = scope.lt(lloyd[1], bestError);
                best = scope.where(better, lloyd[0], best);
                bestError = scope.where(better, lloyd[1], bestError);
            }
        }
        // Per block, absmax wins unless a fit is strictly better: never worse than absmax scales.
        try (TensorScope tmp = scope.newChild()) {
            Tensor absmaxError = fit.errorAt(tmp, absmax);
            return scope.keep(tmp.where(tmp.lt(bestError, absmaxError), best, absmax));
        }
    }

    /** Block statistics of the codebook fit at given scales, through one coarse SPI operation. */
    private record Fit(TensorScope scope, Tensor flat, int blockSize, BucketTable encoder,
            ScaleMode mode, Tensor values) {

        /** Columns Σx·t, Σt², Σx² of {@link TensorScope#blockCodebookFit}, each [nb]. */
        Tensor[] statistics(TensorScope tmp, Tensor s) {
            Tensor stats = tmp.blockCodebookFit(flat, s, blockSize, mode, encoder, values);
            int nb = stats.dim(0);
            return new Tensor[] {tmp.reshape(tmp.sliceColumns(stats, 0, 1), nb),
                    tmp.reshape(tmp.sliceColumns(stats, 1, 2), nb),
                    tmp.reshape(tmp.sliceColumns(stats, 2, 3), nb)};
        }

        /** Σx² − 2s·Σx·t + s²·Σt² at s with its own codes: the exact block errors. */
        Tensor errorAt(TensorScope tmp, Tensor s) {
            Tensor[] st = statistics(tmp, s);
            return squaredError(tmp, st, s);
        }

        private static Tensor squaredError(TensorScope tmp, Tensor[] st, Tensor s) {
            return tmp.add(tmp.sub(st[2], tmp.mul(tmp.mul(st[0], s), 2f)),
                    tmp.mul(tmp.mul(st[1], s), s));
        }

        /**
         * Lloyd iterations from {@code s}: s ← Σx·t / Σt² for the codes of s. Returns the scales
         * and an upper bound of each block's squared error at them, {@code Σx² − (Σx·t)² / Σt²}
         * for the codes of the last encoding (the final scale's own codes can only do better).
         */
        Tensor[] lloyd(Tensor s, int iterations) {
            Tensor error = null;
            for (int it = 0; it < iterations; it++) {
                try (TensorScope tmp = scope.newChild()) {
                    Tensor[] st = statistics(tmp, s);
                    Tensor fitted = tmp.div(st[0], st[1]);
                    // Keep s where the fit is undefined (0/0: an all-zero block) or not positive.
                    Tensor valid = tmp.gt(fitted, tmp.full(0f, 1));
                    s = scope.keep(tmp.where(valid, fitted, s));
                    Tensor fittedError = tmp.sub(st[2], tmp.mul(st[0], fitted));
                    error = scope.keep(tmp.where(valid, fittedError, squaredError(tmp, st, s)));
                }
            }
            return new Tensor[] {s, error};
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
