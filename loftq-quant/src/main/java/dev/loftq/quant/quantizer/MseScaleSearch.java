package dev.loftq.quant.quantizer;

import dev.loftq.core.tensor.BucketTable;
import dev.loftq.core.tensor.ScaleMode;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.codebook.Codebook;
import java.util.ArrayList;
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
     * @param absmax its block absmax, FLOAT32 [nb], with the host copy {@code hostAbsmax}
     */
    static Tensor search(TensorScope scope, Tensor flat, int blockSize, Tensor absmax,
            float[] hostAbsmax, BucketTable encoder, ScaleMode mode, Codebook codebook) {
        int n = (int) flat.numel();
        Fit fit = new Fit(flat, blockSize, encoder, mode,
                scope.fromHost(codebook.values(), codebook.size()));
        int stride = Math.max(1, hostAbsmax.length / SAMPLE_BLOCKS);
        float ratio = commonRatio(sample(scope, flat, n, blockSize, stride), n, blockSize, stride,
                hostAbsmax, encoder, mode, codebook.values());
        // One Lloyd iteration from every start, in one fitting pass that also fits absmax, the
        // fallback every block is compared against. A start at ratio 1 is absmax itself (r* near
        // 1 is common at 4 bits): its statistics are absmax's, fitted once.
        Tensor[] s = new Tensor[START_OFFSETS.length];
        List<Tensor> sets = new ArrayList<>(List.of(absmax));
        int[] setOf = new int[s.length];
        for (int j = 0; j < s.length; j++) {
            float r = Math.max(MIN_RATIO, Math.min(1f, ratio + START_OFFSETS[j]));
            s[j] = r == 1f ? absmax : scope.mul(absmax, r);
            setOf[j] = r == 1f ? 0 : sets.size();
            if (r != 1f) {
                sets.add(s[j]);
            }
        }
        Tensor absmaxError;
        Tensor best;
        Tensor bestError;
        try (TensorScope tmp = scope.newChild()) {
            Tensor[][] st = fit.statistics(tmp, sets.toArray(new Tensor[0]));
            absmaxError = Fit.squaredError(tmp, st[0], absmax);
            Tensor[] step = Fit.lloydStep(tmp, st[setOf[0]], s[0]);
            best = step[0];
            bestError = step[1];
            for (int j = 1; j < s.length; j++) {
                step = Fit.lloydStep(tmp, st[setOf[j]], s[j]);
                Tensor better = tmp.lt(step[1], bestError);
                best = tmp.where(better, step[0], best);
                bestError = tmp.where(better, step[1], bestError);
            }
            absmaxError = scope.keep(absmaxError);
            best = scope.keep(best);
            bestError = scope.keep(bestError);
        }
        for (int it = 0; it < REFINEMENTS; it++) {
            try (TensorScope tmp = scope.newChild()) {
                Tensor[] step = Fit.lloydStep(tmp, fit.statistics(tmp, new Tensor[] {best})[0],
                        best);
                Tensor better = tmp.lt(step[1], bestError);
                best = scope.keep(tmp.where(better, step[0], best));
                bestError = scope.keep(tmp.where(better, step[1], bestError));
            }
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
