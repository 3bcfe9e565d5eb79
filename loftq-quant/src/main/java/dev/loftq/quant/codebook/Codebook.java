package dev.loftq.quant.codebook;

import dev.loftq.core.Checks;
import java.util.Arrays;

/**
 * A quantization codebook: the float32 value of each code, on the normalised range [-1, 1] that a
 * block scale maps onto. Immutable and thread-safe; equal when name and value bits are equal.
 *
 * <p>The built-in tables are hard-coded bit for bit, because recomputing them depends on the torch
 * build (see {@code FORMATS.md} §2.6 and §5.1 of the reference vectors):
 * <ul>
 *   <li>{@link #NF4}: bitsandbytes' NormalFloat4 ({@code get_4bit_type("nf4")}, QLoRA), identical
 *       to LoftQ's {@code create_normal_map(offset=0.9677083, symmetric=False, num_bits=4)};</li>
 *   <li>{@link #NF2}, {@link #NF3}: the same construction for 2 and 3 bits (asymmetric: 2^(k-1)
 *       positive, 2^(k-1) - 1 negative values and 0, normalised so the extremes are ±1);</li>
 *   <li>{@link #FP4}: bitsandbytes' FP4 ({@code get_4bit_type("fp4")}): bit 3 is the sign, so codes
 *       are not sorted by value and code 8 is -0.0;</li>
 *   <li>{@link #UNIFORM2}, {@link #UNIFORM3}, {@link #UNIFORM4}: LoftQ's
 *       {@code create_uniform_map(num_bits=k) = torch.linspace(-1, 1, 2^k)}, the torch ≥ 2.0 values;</li>
 *   <li>{@link #DYNAMIC_8BIT}: bitsandbytes' {@code create_dynamic_map(signed=True)}, the 8-bit
 *       code of double quantization and {@code quantize_blockwise}, the torch ≥ 2.0 values.</li>
 * </ul>
 *
 * <p>{@link #bits()} is the packed width of a code: the smallest of 1, 2, 3, 4 and 8 bits that holds
 * every index.
 */
public final class Codebook {
    /** Packed code widths the tensor SPI supports. */
    private static final int[] WIDTHS = {1, 2, 3, 4, 8};

    /** NormalFloat4, bitsandbytes' table (QLoRA); sorted, code 7 is 0. */
    public static final Codebook NF4 = ofBits("nf4", 0xbf800000, 0xbf3239b1, 0xbf066b30, 0xbeca32a0,
            0xbe91a24d, 0xbe3d353f, 0xbdba7871, 0x00000000, 0x3da2faff, 0x3e24cae3, 0x3e7c04dd,
            0x3ead033a, 0x3ee1a4b8, 0x3f1007ab, 0x3f3913b3, 0x3f800000);

    /** NormalFloat3 as LoftQ builds it: {@code [-1, -0.4786, -0.2171, 0, 0.1609, 0.3379, 0.5626, 1]}. */
    public static final Codebook NF3 = ofBits("nf3", 0xbf800000, 0xbef50ee3, 0xbe5e5a6b, 0x00000000,
            0x3e24cae3, 0x3ead033a, 0x3f1007ab, 0x3f800000);

    /** NormalFloat2 as LoftQ builds it: {@code [-1, 0, 0.3379152, 1]}. */
    public static final Codebook NF2 = ofBits("nf2", 0xbf800000, 0x00000000, 0x3ead033a, 0x3f800000);

    /**
     * bitsandbytes FP4: {@code [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3] / 12}
     * in float32. Bit 3 of a code is the sign; code 8 is -0.0.
     */
    public static final Codebook FP4 = ofBits("fp4", 0x00000000, 0x3baaaaab, 0x3f2aaaab, 0x3f800000,
            0x3eaaaaab, 0x3f000000, 0x3e2aaaab, 0x3e800000, 0x80000000, 0xbbaaaaab, 0xbf2aaaab,
            0xbf800000, 0xbeaaaaab, 0xbf000000, 0xbe2aaaab, 0xbe800000);

    /** {@code torch.linspace(-1, 1, 4)}: {@code [-1, -0.33333331, 0.33333331, 1]} (not f32(1/3)). */
    public static final Codebook UNIFORM2 = ofBits("uniform2", 0xbf800000, 0xbeaaaaaa, 0x3eaaaaaa,
            0x3f800000);

    /** {@code torch.linspace(-1, 1, 8)} as torch ≥ 2.0 computes it. */
    public static final Codebook UNIFORM3 = ofBits("uniform3", 0xbf800000, 0xbf36db6e, 0xbedb6db6,
            0xbe124922, 0x3e124922, 0x3edb6db6, 0x3f36db6e, 0x3f800000);

    /** {@code torch.linspace(-1, 1, 16)} as torch ≥ 2.0 computes it. */
    public static final Codebook UNIFORM4 = ofBits("uniform4", 0xbf800000, 0xbf5dddde, 0xbf3bbbbc,
            0xbf199999, 0xbeeeeeee, 0xbeaaaaaa, 0xbe4cccca, 0xbd888882, 0x3d888882, 0x3e4cccca,
            0x3eaaaaaa, 0x3eeeeeee, 0x3f199999, 0x3f3bbbbc, 0x3f5dddde, 0x3f800000);

    /**
     * bitsandbytes' signed dynamic map, 256 sorted values: index 127 is 0, index 255 is 1, and
     * {@code D[i] = -D[254 - i]} for i < 127 ({@code D[0] = -0.99296874}).
     */
    public static final Codebook DYNAMIC_8BIT = dynamicMap();

    private final String name;
    private final float[] values;
    private final int bits;

    private Codebook(String name, float[] values) {
        this.name = name;
        this.values = values;
        int b = 0;
        for (int w : WIDTHS) {
            if (values.length <= 1 << w) {
                b = w;
                break;
            }
        }
        this.bits = b;
    }

    /**
     * A custom codebook; the index of a value is its code.
     *
     * @param name a short name for descriptions, non-empty
     * @param values 2 to 256 finite values in [-1, 1], at least two of them distinct; not modified
     *     (copied). Equal values are allowed (encoders pick the first such code).
     * @throws IllegalArgumentException naming the offending value
     */
    public static Codebook of(String name, float... values) {
        Checks.notNull("name", name);
        if (name.isEmpty()) {
            throw new IllegalArgumentException("name must not be empty");
        }
        Checks.inRange("number of codebook values", values.length, 2, 256);
        for (int i = 0; i < values.length; i++) {
            if (!(values[i] >= -1f && values[i] <= 1f)) {
                throw new IllegalArgumentException("codebook " + name + ": value " + i
                        + " must be finite and in [-1, 1], got " + values[i]);
            }
        }
        Codebook c = new Codebook(name, values.clone());
        if (c.sortedDistinct().length < 2) {
            throw new IllegalArgumentException("codebook " + name
                    + ": needs at least two distinct values, got " + Arrays.toString(values));
        }
        return c;
    }

    /** {@link #NF2}, {@link #NF3} or {@link #NF4} for {@code bits} 2, 3 or 4. */
    public static Codebook normalFloat(int bits) {
        return switch (Checks.oneOf("NormalFloat bits", bits, 2, 3, 4)) {
            case 2 -> NF2;
            case 3 -> NF3;
            default -> NF4;
        };
    }

    /** {@link #UNIFORM2}, {@link #UNIFORM3} or {@link #UNIFORM4} for {@code bits} 2, 3 or 4. */
    public static Codebook uniform(int bits) {
        return switch (Checks.oneOf("uniform bits", bits, 2, 3, 4)) {
            case 2 -> UNIFORM2;
            case 3 -> UNIFORM3;
            default -> UNIFORM4;
        };
    }

    private static Codebook ofBits(String name, int... bits) {
        float[] v = new float[bits.length];
        for (int i = 0; i < v.length; i++) {
            v[i] = Float.intBitsToFloat(bits[i]);
        }
        return new Codebook(name, v);
    }

    private static Codebook dynamicMap() {
        int[] positive = {
            0x3513a3b7, 0x365a1a94, 0x370205ff, 0x37b24206, 0x38378034, 0x388aefb3,
            0x38ba1f4b, 0x3923d70b, 0x398ce705, 0x39c7e283, 0x3a016f01, 0x3a1eecc1,
            0x3a3c6a80, 0x3a59e83e, 0x3a7765ff, 0x3aa7ef9d, 0x3af1a9fc, 0x3b1db22d,
            0x3b428f5c, 0x3b676c8a, 0x3b8624dd, 0x3b989374, 0x3bab020d, 0x3bbd70a4,
            0x3bcfdf3b, 0x3be24dd3, 0x3bf4bc6a, 0x3c039581, 0x3c0ccccd, 0x3c160418,
            0x3c1f3b64, 0x3c3ae148, 0x3c68f5c3, 0x3c8b851f, 0x3ca28f5d, 0x3cb9999a,
            0x3cd0a3d7, 0x3ce7ae15, 0x3cfeb852, 0x3d0ae148, 0x3d166667, 0x3d21eb85,
            0x3d2d70a3, 0x3d38f5c3, 0x3d447ae1, 0x3d500000, 0x3d5b851f, 0x3d670a3d,
            0x3d728f5d, 0x3d7e147b, 0x3d84cccd, 0x3d8a8f5d, 0x3d9051eb, 0x3d96147b,
            0x3d9bd70a, 0x3da1999a, 0x3da75c2a, 0x3dad1eb8, 0x3db2e148, 0x3db8a3d7,
            0x3dbe6667, 0x3dc428f7, 0x3dc9eb85, 0x3ddb3334, 0x3df80000, 0x3e0a6666,
            0x3e18cccd, 0x3e273333, 0x3e35999a, 0x3e440000, 0x3e526666, 0x3e60cccd,
            0x3e6f3333, 0x3e7d9999, 0x3e860000, 0x3e8d3334, 0x3e946666, 0x3e9b999a,
            0x3ea2cccc, 0x3eaa0000, 0x3eb13333, 0x3eb86666, 0x3ebf999a, 0x3ec6cccc,
            0x3ece0000, 0x3ed53333, 0x3edc6666, 0x3ee3999a, 0x3eeacccc, 0x3ef20000,
            0x3ef93332, 0x3f003333, 0x3f03cccc, 0x3f076666, 0x3f0b0000, 0x3f0e999a,
            0x3f123334, 0x3f15cccd, 0x3f196666, 0x3f1d0000, 0x3f20999a, 0x3f243334,
            0x3f27cccd, 0x3f2b6666, 0x3f2f0000, 0x3f32999a, 0x3f363334, 0x3f39cccd,
            0x3f3d6666, 0x3f410000, 0x3f44999a, 0x3f483333, 0x3f4bcccd, 0x3f4f6666,
            0x3f530000, 0x3f56999a, 0x3f5a3333, 0x3f5dcccd, 0x3f616666, 0x3f650000,
            0x3f68999a, 0x3f6c3333, 0x3f6fcccd, 0x3f736666, 0x3f770000, 0x3f7a999a,
            0x3f7e3333, 0x3f800000,
        };
        float[] v = new float[256];
        for (int k = 0; k < positive.length; k++) {
            v[128 + k] = Float.intBitsToFloat(positive[k]);
        }
        for (int k = 0; k < 127; k++) {
            v[126 - k] = -v[128 + k];
        }
        return new Codebook("dynamic8", v);
    }

    /** The name, e.g. {@code "nf4"}. */
    public String name() {
        return name;
    }

    /** Number of values (codes). */
    public int size() {
        return values.length;
    }

    /** Packed width of one code in bits: 1, 2, 3, 4 or 8. */
    public int bits() {
        return bits;
    }

    /** The value of {@code code}. */
    public float value(int code) {
        return values[Checks.inRange("code", code, 0, values.length - 1)];
    }

    /** The values, index = code (a copy). */
    public float[] values() {
        return values.clone();
    }

    /** True if the values are strictly increasing in code order. */
    public boolean isSorted() {
        for (int i = 1; i < values.length; i++) {
            if (!(values[i] > values[i - 1])) {
                return false;
            }
        }
        return true;
    }

    /**
     * The largest distance from a point of [-1, 1] to its nearest value: the larger of half the
     * largest gap between neighbouring values and the distances from -1 and 1 to the extreme
     * values. Nearest-value rounding of a block normalised to [-1, 1] errs by at most this much
     * (times the block scale). Computed in double precision (exact for float32 inputs).
     */
    public double maxRoundingError() {
        double[] sorted = sortedDistinct();
        double worst = Math.max(sorted[0] + 1.0, 1.0 - sorted[sorted.length - 1]);
        for (int i = 1; i < sorted.length; i++) {
            worst = Math.max(worst, (sorted[i] - sorted[i - 1]) / 2);
        }
        return worst;
    }

    /** The smallest gap between two distinct values. */
    public double minGap() {
        double[] sorted = sortedDistinct();
        double gap = Double.POSITIVE_INFINITY;
        for (int i = 1; i < sorted.length; i++) {
            gap = Math.min(gap, sorted[i] - sorted[i - 1]);
        }
        return gap;
    }

    /** The distinct values in increasing order (-0.0 counted as 0.0), as doubles. */
    private double[] sortedDistinct() {
        double[] d = new double[values.length];
        for (int i = 0; i < d.length; i++) {
            d[i] = values[i] == 0f ? 0.0 : values[i];
        }
        Arrays.sort(d);
        int n = 1;
        for (int i = 1; i < d.length; i++) {
            if (d[i] != d[n - 1]) {
                d[n++] = d[i];
            }
        }
        return Arrays.copyOf(d, n);
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof Codebook c) || !name.equals(c.name) || values.length != c.values.length) {
            return false;
        }
        for (int i = 0; i < values.length; i++) {
            if (Float.floatToRawIntBits(values[i]) != Float.floatToRawIntBits(c.values[i])) {
                return false;
            }
        }
        return true;
    }

    @Override
    public int hashCode() {
        int h = name.hashCode();
        for (float v : values) {
            h = 31 * h + Float.floatToRawIntBits(v);
        }
        return h;
    }

    @Override
    public String toString() {
        return "Codebook[" + name + ", " + values.length + " values, " + bits + " bits]";
    }
}
