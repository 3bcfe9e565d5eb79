package dev.loftq.quant.quantizer;

import dev.loftq.core.tensor.BucketTable;
import dev.loftq.core.tensor.ScaleMode;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.codebook.Codebook;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

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
 *   <li>Lloyd iterations per block (encode with s, then s ← Σ x·t / Σ t², the least-squares scale
 *       for those codes; each lowers the block's error for a nearest-value encoder): one from
 *       each of three starts, s = r*·absmax and 0.15 either side of it (at most absmax), then
 *       {@value #REFINEMENTS} more from the best of them. Each round is one fitting pass over the
 *       tensor for all its scale sets (the first also fits absmax), and the block errors come free
 *       from the same sums, so each block keeps its best scale, or its absmax scale unless a fit
 *       is strictly better (so the error is never above absmax quantization's). Refining only the
 *       best start fits 5 scale sets per element instead of the 7 of two iterations from every
 *       start, with the same mean LoftQ errors on all-MiniLM-L6-v2 to within ±0.0002 (4 when r*
 *       ≥ 0.85 puts the upper start on absmax).</li>
 * </ol>
 */
final class MseScaleSearch {
    /** Clipping ratios tried for r*: 0.30, 0.35, …, 1.00. */
    private static final float[] RATIOS = ratios(0.30f, 1.00f, 0.05f);
    /** Blocks of the host sample for r*. */
    static final int SAMPLE_BLOCKS = 512;
    /** Lloyd iterations from the best start, after the first one from every start. */
    static final int REFINEMENTS = 1;
    /** Cold starts around the common ratio r*: per block, the best of their Lloyd fits is kept. */
    private static final float[] START_OFFSETS = {0f, -0.15f, 0.15f};
    /** The smallest clipping ratio a cold start uses. */
    private static final float MIN_RATIO = 0.2f;

    private MseScaleSearch() {}

    /**
     * The scales, FLOAT32 [nb], owned by {@code scope}.
     *
     * @param flat the tensor flattened, FLOAT32 [n], finite
     * @param absmax its block absmax [nb], finite
     */
    static Tensor search(TensorScope scope, Tensor flat, int blockSize, float[] absmax,
            BucketTable encoder, ScaleMode mode, Codebook codebook) {
        int n = (int) flat.numel();
        int nb = absmax.length;
        Fit fit = new Fit(flat, blockSize, encoder, mode,
                scope.fromHost(codebook.values(), codebook.size()));
        int stride = Math.max(1, nb / SAMPLE_BLOCKS);
        float ratio = commonRatio(sample(scope, flat, n, blockSize, stride), n, blockSize, stride,
                absmax, encoder, mode, codebook.values());
        // One Lloyd iteration from every start, in one fitting pass that also fits absmax, the
        // fallback every block is compared against. A start at ratio 1 is absmax itself (r* near
        // 1 is common at 4 bits): its statistics are absmax's, fitted once.
        List<float[]> sets = new ArrayList<>(List.of(absmax));
        float[][] starts = new float[START_OFFSETS.length][];
        int[] setOf = new int[starts.length];
        for (int j = 0; j < starts.length; j++) {
            float r = Math.max(MIN_RATIO, Math.min(1f, ratio + START_OFFSETS[j]));
            setOf[j] = r == 1f ? 0 : sets.size();
            if (r == 1f) {
                starts[j] = absmax;
            } else {
                starts[j] = new float[nb];
                for (int b = 0; b < nb; b++) {
                    starts[j][b] = absmax[b] * r;
                }
                sets.add(starts[j]);
            }
        }
        float[] st = fit.statistics(scope, sets);
        float[] absmaxError = new float[nb];
        for (int b = 0; b < nb; b++) {
            absmaxError[b] = Fit.squaredError(st, b, absmax[b]);
        }
        float[] best = new float[nb];
        float[] bestError = new float[nb];
        Arrays.fill(bestError, Float.NaN); // the first start always replaces it
        for (int j = 0; j < starts.length; j++) {
            Fit.lloydStep(st, setOf[j] * nb, starts[j], j == 0, best, bestError);
        }
        for (int it = 0; it < REFINEMENTS; it++) {
            float[] from = best.clone();
            Fit.lloydStep(fit.statistics(scope, List.of(from)), 0, from, false, best, bestError);
        }
        // Per block, absmax wins unless a fit is strictly better: never worse than absmax scales.
        for (int b = 0; b < nb; b++) {
            if (!(bestError[b] < absmaxError[b])) {
                best[b] = absmax[b];
            }
        }
        return scope.fromHost(best, nb);
    }

    /**
     * Block statistics of the codebook fit at given scales, through one coarse SPI operation; the
     * per-block arithmetic on them runs on the host (a few float operations per block, which as
     * tensor operations cost more in dispatch than in arithmetic).
     */
    private record Fit(Tensor flat, int blockSize, BucketTable encoder, ScaleMode mode,
            Tensor values) {

        /**
         * {@link TensorScope#blockCodebookFit} of all sets ([nb] each) in one pass over the
         * tensor: [sets, nb, 3] holding per block Σx·t, Σt², Σx².
         */
        float[] statistics(TensorScope scope, List<float[]> sets) {
            int nb = sets.get(0).length;
            float[] all = new float[sets.size() * nb];
            for (int j = 0; j < sets.size(); j++) {
                System.arraycopy(sets.get(j), 0, all, j * nb, nb);
            }
            try (TensorScope tmp = scope.newChild()) {
                return tmp.toFloatArray(tmp.blockCodebookFit(flat,
                        tmp.fromHost(all, sets.size(), nb), blockSize, mode, encoder, values));
            }
        }

        /** Σx² − 2s·Σx·t + s²·Σt² of block b at s with its own codes: its exact error. */
        static float squaredError(float[] st, int b, float s) {
            int at = 3 * b;
            return (st[at + 2] - st[at] * s * 2f) + st[at + 1] * s * s;
        }

        /**
         * One Lloyd iteration per block from {@code s} with the statistics of its codes (set at
         * {@code st[3·(offset + b)]}): s ← Σx·t / Σt², kept where that is undefined (0/0, an
         * all-zero block) or not positive, with an upper bound of the block's squared error at the
         * new scale, {@code Σx² − (Σx·t)² / Σt²} (the new scale's own codes can only do better).
         * Where that bound is below {@code bestError} (or {@code first}), the new scale and bound
         * replace {@code best} and {@code bestError}.
         */
        static void lloydStep(float[] st, int offset, float[] s, boolean first, float[] best,
                float[] bestError) {
            for (int b = 0; b < s.length; b++) {
                int at = 3 * (offset + b);
                float fitted = st[at] / st[at + 1];
                boolean valid = fitted > 0f;
                float next = valid ? fitted : s[b];
                float error = valid ? st[at + 2] - st[at] * fitted
                        : squaredError(st, offset + b, next);
                if (first || error < bestError[b]) {
                    best[b] = next;
                    bestError[b] = error;
                }
            }
        }
    }

    /**
     * Blocks 0, stride, 2·stride, … of the tensor, concatenated: the host sample of
     * {@link #commonRatio}. Cut out on the backend, so only the sample is copied to the host,
     * unless a short last block makes the tensor impossible to view as whole blocks.
     */
    static float[] sample(TensorScope scope, Tensor flat, int n, int blockSize,
            int stride) {
        int nb = (n + blockSize - 1) / blockSize;
        int count = (nb + stride - 1) / stride;
        if (n % blockSize != 0) {
            float[] x = scope.toFloatArray(flat);
            float[] out = new float[count * blockSize];
            for (int k = 0; k < count; k++) {
                int from = k * stride * blockSize;
                System.arraycopy(x, from, out, k * blockSize, Math.min(blockSize, n - from));
            }
            return out;
        }
        try (TensorScope tmp = scope.newChild()) {
            Tensor blocks = tmp.reshape(flat, nb, blockSize);
            int whole = nb / stride; // groups of `stride` blocks; the first of each is sampled
            Tensor groups = tmp.reshape(tmp.sliceRows(blocks, 0, whole * stride), whole,
                    stride * blockSize);
            Tensor picked = tmp.sliceColumns(groups, 0, blockSize);
            if (count > whole) { // the first block of a last, incomplete group
                picked = tmp.concat(0, picked,
                        tmp.sliceRows(blocks, whole * stride, whole * stride + 1));
            }
            return tmp.toFloatArray(picked);
        }
    }

    /**
     * The ratio of {@link #RATIOS} with the least squared error over the sampled blocks
     * ({@code sample[k·blockSize …]} is block k·stride).
     */
    private static float commonRatio(float[] sample, int n, int blockSize, int stride,
            float[] absmax, BucketTable encoder, ScaleMode mode, float[] values) {
        int nb = absmax.length;
        double[] error = new double[RATIOS.length];
        for (int b = 0, k = 0; b < nb; b += stride, k++) {
            int from = k * blockSize;
            int to = from + Math.min(blockSize, n - b * blockSize);
            for (int j = 0; j < RATIOS.length; j++) {
                float s = absmax[b] * RATIOS[j];
                if (!(s > 0f)) {
                    continue;
                }
                float r = 1f / s;
                double e = 0;
                for (int i = from; i < to; i++) {
                    float x = sample[i];
                    float xn = mode == ScaleMode.MULTIPLY_RECIPROCAL ? x * r : x / s;
                    double d = x - values[encoder.encode(xn)] * s;
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
