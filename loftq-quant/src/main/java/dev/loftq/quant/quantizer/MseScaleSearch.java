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
        Tensor values = scope.fromHost(codebook.values(), codebook.size());
        Tensor sumSquares = blockSums(scope, scope.mul(flat, flat), n, blockSize);
        float ratio = commonRatio(scope.toFloatArray(flat), n, blockSize, hostAbsmax, encoder, mode,
                codebook.values());
        Tensor best = null;
        Tensor bestError = null;
        for (float offset : START_OFFSETS) {
            float r = Math.max(MIN_RATIO, Math.min(1f, ratio + offset));
            Tensor[] fit = lloyd(scope, flat, n, blockSize, scope.mul(absmax, r), COLD_ITERATIONS,
                    encoder, mode, values, sumSquares);
            if (best == null) {
                best = fit[0];
                bestError = fit[1];
            } else {
                Tensor better = scope.lt(fit[1], bestError);
                best = scope.where(better, fit[0], best);
                bestError = scope.where(better, fit[1], bestError);
            }
        }
        // Per block, absmax wins unless a fit is strictly better: never worse than absmax scales.
        try (TensorScope tmp = scope.newChild()) {
            Tensor t = tmp.gather(values, tmp.encode(flat, absmax, blockSize, mode, encoder));
            Tensor num = blockSums(tmp, tmp.mul(flat, t), n, blockSize);
            Tensor den = blockSums(tmp, tmp.mul(t, t), n, blockSize);
            Tensor absmaxError = tmp.add(tmp.sub(sumSquares, tmp.mul(tmp.mul(num, absmax), 2f)),
                    tmp.mul(tmp.mul(den, absmax), absmax));
            return scope.keep(tmp.where(tmp.lt(bestError, absmaxError), best, absmax));
        }
    }

    /**
     * Lloyd iterations from {@code s}: encode, then s ← Σ x·t / Σ t². Returns the scales and an
     * upper bound of each block's squared error at them, {@code Σx² − (Σx·t)² / Σt²} for the codes
     * of the last encoding (the codes of the final scale can only do better).
     */
    private static Tensor[] lloyd(TensorScope scope, Tensor flat, int n, int blockSize, Tensor s,
            int iterations, BucketTable encoder, ScaleMode mode, Tensor values, Tensor sumSquares) {
        Tensor error = null;
        for (int it = 0; it < iterations; it++) {
            try (TensorScope tmp = scope.newChild()) {
                Tensor t = tmp.gather(values, tmp.encode(flat, s, blockSize, mode, encoder));
                Tensor num = blockSums(tmp, tmp.mul(flat, t), n, blockSize);
                Tensor den = blockSums(tmp, tmp.mul(t, t), n, blockSize);
                Tensor fitted = tmp.div(num, den);
                // Keep s where the fit is undefined (0/0: an all-zero block) or not positive.
                Tensor valid = tmp.gt(fitted, tmp.full(0f, 1));
                s = scope.keep(tmp.where(valid, fitted, s));
                Tensor fittedError = tmp.sub(sumSquares, tmp.mul(num, fitted));
                Tensor keptError = tmp.add(tmp.sub(sumSquares, tmp.mul(tmp.mul(num, s), 2f)),
                        tmp.mul(tmp.mul(den, s), s));
                error = scope.keep(tmp.where(valid, fittedError, keptError));
            }
        }
        return new Tensor[] {s, error};
    }

    /** Per-block sums of a [n] tensor, FLOAT32 [nb]; the last block may be short. */
    private static Tensor blockSums(TensorScope tmp, Tensor v, int n, int blockSize) {
        int full = n / blockSize;
        int rest = n - full * blockSize;
        if (rest == 0) {
            return tmp.sumLast(tmp.reshape(v, full, blockSize));
        }
        Tensor tail = tmp.sumLast(tmp.reshape(tmp.sliceRows(v, full * blockSize, n), 1, rest));
        if (full == 0) {
            return tail;
        }
        Tensor head = tmp.sumLast(tmp.reshape(tmp.sliceRows(v, 0, full * blockSize), full, blockSize));
        return tmp.concat(0, head, tail);
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
