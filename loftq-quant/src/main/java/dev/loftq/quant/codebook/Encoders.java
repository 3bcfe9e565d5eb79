package dev.loftq.quant.codebook;

import dev.loftq.core.tensor.BucketTable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The scalar encoders of the supported quantizers, each derived as an exact {@link BucketTable}
 * (code = codes[#{ j : xn > T[j] }], NaN → a fixed code), so that every backend runs them with one
 * kernel. Thresholds are exact float32 values, never approximations of a midpoint.
 */
public final class Encoders {
    /** {@code dQuantizeNF4} of bitsandbytes' {@code csrc/kernels.cu}: its decimal literals in float32. */
    private static final BucketTable BNB_NF4 = BucketTable.identityCodes(floats(0xbf591cd9, 0xbf1c5270,
            0xbeeb8480, 0xbeadea76, 0xbe703cec, 0xbe0d38bc, 0xbd3a7871, 0x3d22faff, 0x3df64863,
            0x3e5067e0, 0x3e9582d4, 0x3ec753f9, 0x3f006d03, 0x3f248daf, 0x3f5c89d9));

    /** {@code dQuantizeFP4}'s magnitude thresholds, the kernel's truncated decimal literals. */
    private static final float[] BNB_FP4_MAGNITUDE_THRESHOLDS = floats(0x3b2aaab9, 0x3db00000,
            0x3e555555, 0x3e955555, 0x3ed55556, 0x3f155550, 0x3f555555);

    /** The FP4 magnitude code chosen when |xn| exceeds exactly k of those thresholds. */
    private static final int[] BNB_FP4_MAGNITUDE_CODES = {0b000, 0b001, 0b110, 0b111, 0b100, 0b101,
        0b010, 0b011};

    private static final BucketTable BNB_FP4 = fp4Table();

    private Encoders() {}

    /**
     * The encoder of bitsandbytes' CUDA kernels for {@code codebook}, applied to
     * {@code xn = f32(x · f32(1 / absmax))}:
     * <ul>
     *   <li>{@link Codebook#NF4}: {@code dQuantizeNF4}, the count of the kernel's 15 thresholds
     *       strictly below xn (four of them differ by one ulp from the float32 midpoints of the
     *       table; FORMATS.md §1.2.4);</li>
     *   <li>{@link Codebook#FP4}: {@code dQuantizeFP4}, sign bit {@code 0b1000} iff xn < 0 (so -0.0
     *       gets 0) and a magnitude code from the kernel's truncated literals (§1.2.5);</li>
     *   <li>any other codebook, which must be sorted: {@code dQuantize<0>} of
     *       {@code quantize_blockwise}, the nearest value by the float32 midpoints
     *       {@code m = f32((t[k] + t[k+1]) · 0.5)} with an xn equal to a midpoint going to the
     *       even index (§2.3). This is the double quantization of {@link Codebook#DYNAMIC_8BIT}.</li>
     * </ul>
     * NaN (a block whose absmax is 0) gives code 0 in every case.
     *
     * @throws IllegalArgumentException for an unsorted codebook other than FP4
     */
    public static BucketTable bitsandbytes(Codebook codebook) {
        if (codebook.equals(Codebook.NF4)) {
            return BNB_NF4;
        }
        if (codebook.equals(Codebook.FP4)) {
            return BNB_FP4;
        }
        if (!codebook.isSorted()) {
            throw new IllegalArgumentException("codebook " + codebook.name() + " must be strictly "
                    + "increasing for the bitsandbytes encoder (only FP4 is special-cased), got "
                    + Arrays.toString(codebook.values()));
        }
        float[] t = codebook.values();
        float[] thresholds = new float[t.length - 1];
        for (int k = 0; k < thresholds.length; k++) {
            float m = (t[k] + t[k + 1]) * 0.5f;
            // xn == m goes to the even one of k and k + 1: to k when k is even (xn > m is false).
            thresholds[k] = k % 2 == 0 ? m : Math.nextDown(m);
        }
        return BucketTable.identityCodes(thresholds);
    }

    /**
     * The native LoftQ / peft {@code NFQuantizer} encoder: {@code argmin_j f32(|xn - t_j|)} with the
     * first index winning ties, as {@code torch.argmin}, and code 0 for NaN (an all-NaN row), for
     * {@code xn = f32(x / scale)}.
     *
     * <p>Derivation: between two neighbouring distinct values {@code lo < hi}, "hi wins" is
     * {@code f32(hi - xn) < f32(xn - lo)}, or equality with hi having the smaller index; it is
     * monotone in xn (rounding is monotone), so a binary search over the floats of [lo, hi] finds
     * the exact threshold. A value further away cannot tie with the winner while
     * {@code |xn| <= }{@link #argminExactRange}: its distance exceeds the winner's by at least the
     * smallest gap, which is more than one ulp there. Equal values keep the smaller code.
     */
    public static BucketTable firstIndexArgmin(Codebook codebook) {
        float[] t = codebook.values();
        Integer[] order = new Integer[t.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> t[a] < t[b] ? -1 : t[a] > t[b] ? 1 : Integer.compare(a, b));
        List<Integer> distinct = new ArrayList<>();
        for (int code : order) {
            if (distinct.isEmpty() || t[distinct.get(distinct.size() - 1)] != t[code]) {
                distinct.add(code);
            }
        }
        float[] thresholds = new float[distinct.size() - 1];
        int[] codes = new int[distinct.size()];
        codes[0] = distinct.get(0);
        for (int k = 0; k < thresholds.length; k++) {
            int lo = distinct.get(k);
            int hi = distinct.get(k + 1);
            thresholds[k] = lastLowerWins(t[lo], lo, t[hi], hi);
            codes[k + 1] = hi;
        }
        return BucketTable.of(thresholds, codes, 0);
    }

    /**
     * The largest |xn| for which {@link #firstIndexArgmin} is exact: {@code 2^(e + 22)} where
     * {@code 2^e <= } the smallest gap between distinct values; distances up to there carry an ulp
     * at most half that gap. 2^20 for NF2, 2^19 for uniform4, 2 for the dynamic map. Beyond it
     * float32 rounding can make far values tie and torch's argmin pick them.
     */
    public static float argminExactRange(Codebook codebook) {
        int e = Math.getExponent(codebook.minGap());
        return Math.scalb(1f, Math.min(e + 22, 127));
    }

    /** The largest float x in [lo, hi) for which the lower value still wins the argmin. */
    private static float lastLowerWins(float lo, int loCode, float hi, int hiCode) {
        long a = orderedKey(lo); // lower wins at lo
        long b = orderedKey(hi); // upper wins at hi
        while (b - a > 1) {
            long mid = a + (b - a) / 2;
            if (upperWins(fromOrderedKey(mid), lo, loCode, hi, hiCode)) {
                b = mid;
            } else {
                a = mid;
            }
        }
        return fromOrderedKey(a);
    }

    private static boolean upperWins(float x, float lo, int loCode, float hi, int hiCode) {
        float dLo = Math.abs(x - lo);
        float dHi = Math.abs(x - hi);
        return dHi < dLo || (dHi == dLo && hiCode < loCode);
    }

    /** A key whose long order is the numeric order of finite floats (-0.0 just below +0.0). */
    private static long orderedKey(float f) {
        int bits = Float.floatToRawIntBits(f);
        return bits >= 0 ? bits : -(long) (bits & 0x7fffffff) - 1;
    }

    private static float fromOrderedKey(long key) {
        return key >= 0 ? Float.intBitsToFloat((int) key)
                : Float.intBitsToFloat((int) (-(key + 1)) | 0x80000000);
    }

    /**
     * FP4 as one table over xn: negative buckets (|xn| > U[k] iff xn < -U[k], so the threshold is
     * the float just below -U[k]), then [-0.0, U[0]] → 0, then the positive buckets.
     */
    private static BucketTable fp4Table() {
        float[] u = BNB_FP4_MAGNITUDE_THRESHOLDS;
        int k = u.length;
        float[] thresholds = new float[2 * k + 1];
        int[] codes = new int[2 * k + 2];
        for (int j = 0; j < k; j++) {
            thresholds[j] = Math.nextDown(-u[k - 1 - j]);
            codes[j] = 0b1000 | BNB_FP4_MAGNITUDE_CODES[k - j];
        }
        thresholds[k] = -Float.MIN_VALUE; // xn > -MIN_VALUE iff xn >= -0.0: sign bit clear
        codes[k] = 0b1000 | BNB_FP4_MAGNITUDE_CODES[0];
        for (int j = 0; j < k; j++) {
            thresholds[k + 1 + j] = u[j];
            codes[k + 1 + j] = BNB_FP4_MAGNITUDE_CODES[j];
        }
        codes[2 * k + 1] = BNB_FP4_MAGNITUDE_CODES[k];
        return BucketTable.of(thresholds, codes, 0);
    }

    private static float[] floats(int... bits) {
        float[] out = new float[bits.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = Float.intBitsToFloat(bits[i]);
        }
        return out;
    }
}
