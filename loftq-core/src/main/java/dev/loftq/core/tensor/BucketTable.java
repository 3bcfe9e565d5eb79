package dev.loftq.core.tensor;

import java.util.Arrays;

/**
 * A scalar encoder as data: a value {@code v} maps to {@code codes[#{ j : v > thresholds[j] }]},
 * and NaN maps to {@code nanCode}. Every codebook quantizer here (bitsandbytes NF4 and FP4, the
 * native LoftQ argmin, NF2/NF3) is one such table, so a backend needs a single fast kernel for all
 * of them.
 *
 * <p>Thresholds are strictly increasing and finite; {@code codes} has one more entry than
 * {@code thresholds}; codes are in [0, 255].
 */
public final class BucketTable {
    private final float[] thresholds;
    private final byte[] codes;
    private final byte nanCode;

    private BucketTable(float[] thresholds, byte[] codes, byte nanCode) {
        this.thresholds = thresholds;
        this.codes = codes;
        this.nanCode = nanCode;
    }

    /**
     * @param thresholds strictly increasing finite thresholds, not modified (copied)
     * @param codes the code of each bucket, length {@code thresholds.length + 1}, values 0..255
     * @param nanCode the code written for NaN inputs
     */
    public static BucketTable of(float[] thresholds, int[] codes, int nanCode) {
        if (thresholds.length == 0 || thresholds.length > 255) {
            throw new IllegalArgumentException("thresholds: length must be in [1, 255], got "
                    + thresholds.length);
        }
        for (int j = 0; j < thresholds.length; j++) {
            if (!Float.isFinite(thresholds[j]) || (j > 0 && !(thresholds[j] > thresholds[j - 1]))) {
                throw new IllegalArgumentException("thresholds must be finite and strictly "
                        + "increasing, got " + Arrays.toString(thresholds));
            }
        }
        if (codes.length != thresholds.length + 1) {
            throw new IllegalArgumentException("codes: length must be thresholds.length + 1 = "
                    + (thresholds.length + 1) + ", got " + codes.length);
        }
        byte[] c = new byte[codes.length];
        for (int j = 0; j < codes.length; j++) {
            c[j] = (byte) checkCode("codes[" + j + "]", codes[j]);
        }
        return new BucketTable(thresholds.clone(), c, (byte) checkCode("nanCode", nanCode));
    }

    /** Buckets {@code i} get code {@code i}; NaN gets 0. The NF4 case of bitsandbytes. */
    public static BucketTable identityCodes(float[] thresholds) {
        int[] codes = new int[thresholds.length + 1];
        for (int i = 0; i < codes.length; i++) {
            codes[i] = i;
        }
        return of(thresholds, codes, 0);
    }

    private static int checkCode(String name, int code) {
        if (code < 0 || code > 255) {
            throw new IllegalArgumentException(name + " must be in [0, 255], got " + code);
        }
        return code;
    }

    /** The thresholds (a copy). */
    public float[] thresholds() {
        return thresholds.clone();
    }

    /** The bucket codes as unsigned ints (a copy). */
    public int[] codes() {
        int[] out = new int[codes.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = codes[i] & 0xFF;
        }
        return out;
    }

    /** The code for NaN. */
    public int nanCode() {
        return nanCode & 0xFF;
    }

    /** Number of thresholds. */
    public int size() {
        return thresholds.length;
    }

    /**
     * Encodes one value: the scalar specification every backend's kernel must reproduce. A
     * branch-light count; tables are at most 255 long and usually 3 to 15.
     */
    public int encode(float v) {
        if (v != v) {
            return nanCode & 0xFF;
        }
        int k = 0;
        for (float t : thresholds) {
            k += v > t ? 1 : 0;
        }
        return codes[k] & 0xFF;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof BucketTable b && Arrays.equals(thresholds, b.thresholds)
                && Arrays.equals(codes, b.codes) && nanCode == b.nanCode;
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(thresholds) + Arrays.hashCode(codes) + nanCode;
    }

    @Override
    public String toString() {
        return "BucketTable" + Arrays.toString(thresholds) + " -> " + Arrays.toString(codes());
    }
}
