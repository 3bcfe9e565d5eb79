package dev.loftq.core.tensor;

/**
 * The coarse codebook kernels of the SPI over flat host arrays: the executable specification of
 * {@link TensorScope#blockAbsMax}, {@link TensorScope#encode}, {@link TensorScope#decode},
 * {@link TensorScope#pack} and {@link TensorScope#unpack}. The reference backend calls them
 * directly; other backends may call them after a host copy, or run their own kernel that must give
 * identical bits.
 *
 * <p>Arguments are validated by the callers (the scopes); these methods check only what keeps them
 * memory-safe. Multi-threaded over whole blocks for large inputs.
 */
public final class HostKernels {
    private HostKernels() {}

    /** Elements below which a kernel stays on the calling thread. */
    private static final int GRAIN = 1 << 16;

    /** out[b] = max |x[i]| over block b of {@code x[0, n)}; NaN if the block holds a NaN. */
    public static void blockAbsMax(float[] x, int n, int blockSize, float[] out) {
        int nb = blockCount(n, blockSize);
        if (out.length < nb || x.length < n) {
            throw new IllegalArgumentException("blockAbsMax: arrays too short");
        }
        Parallel.forRange(n, GRAIN, blockSize, (from, to) -> {
            int last = (to - 1) / blockSize;
            for (int b = from / blockSize; b <= last; b++) {
                int o = b * blockSize;
                int end = o + Math.min(blockSize, to - o);
                float m = 0f;
                boolean nan = false;
                for (int i = o; i < end; i++) {
                    float a = Math.abs(x[i]);
                    nan |= a != a;
                    m = Math.max(m, a);
                }
                out[b] = nan ? Float.NaN : m;
            }
        });
    }

    /**
     * out[i] = table.encode(normalise(x[i], scale[i / blockSize])) for i in [0, n). A branch-free
     * binary search over the thresholds padded to 2^m - 1 with +Inf sentinels, which counts the
     * thresholds strictly below xn exactly as {@link BucketTable#encode} does.
     */
    public static void encode(float[] x, int n, float[] scale, int blockSize, ScaleMode mode,
            BucketTable table, byte[] out) {
        int nb = blockCount(n, blockSize);
        if (x.length < n || out.length < n || scale.length < nb) {
            throw new IllegalArgumentException("encode: arrays too short");
        }
        float[] padded = paddedThresholds(table);
        int[] c = table.codes();
        byte[] codes = new byte[padded.length + 1];
        for (int k = 0; k < codes.length; k++) {
            codes[k] = (byte) c[Math.min(k, c.length - 1)];
        }
        byte nanCode = (byte) table.nanCode();
        boolean reciprocal = mode == ScaleMode.MULTIPLY_RECIPROCAL;
        int top = (padded.length + 1) >>> 1;
        Parallel.forRange(n, GRAIN, blockSize, (from, to) -> {
            int last = (to - 1) / blockSize;
            for (int b = from / blockSize; b <= last; b++) {
                int o = b * blockSize;
                int end = o + Math.min(blockSize, to - o);
                float s = scale[b];
                float r = 1f / s;
                for (int i = o; i < end; i++) {
                    float xn = reciprocal ? x[i] * r : x[i] / s;
                    int k = 0;
                    for (int half = top; half > 0; half >>>= 1) {
                        k += xn > padded[k + half - 1] ? half : 0;
                    }
                    out[i] = xn != xn ? nanCode : codes[k];
                }
            }
        });
    }

    /**
     * The table's thresholds padded with +Inf to 2^m - 1 entries, so that a branch-free binary
     * search of m halvings (starting at (length + 1) / 2) counts the thresholds strictly below a
     * value exactly as {@link BucketTable#encode} does.
     */
    private static float[] paddedThresholds(BucketTable table) {
        float[] t = table.thresholds();
        int levels = 32 - Integer.numberOfLeadingZeros(t.length); // 2^levels - 1 >= t.length
        float[] padded = new float[(1 << levels) - 1];
        java.util.Arrays.fill(padded, Float.POSITIVE_INFINITY);
        System.arraycopy(t, 0, padded, 0, t.length);
        return padded;
    }

    /**
     * For each of {@code sets} scale sets j (scale[j·nb + b]) and block b:
     * out[3(j·nb + b)] = Σ x·t, out[3(j·nb + b) + 1] = Σ t², out[3(j·nb + b) + 2] = Σ x², with
     * t = values[table.encode(normalise(x, scale[j·nb + b]))], accumulated in double in element
     * order (the {@link TensorScope#blockCodebookFit} specification). One pass over x: each block
     * is fitted for every set while it is in cache. Every code of {@code table} must index
     * {@code values}.
     */
    public static void blockCodebookFit(float[] x, int n, float[] scale, int sets, int blockSize,
            ScaleMode mode, BucketTable table, float[] values, float[] out) {
        int nb = blockCount(n, blockSize);
        if (sets < 1 || x.length < n || scale.length < (long) sets * nb
                || out.length < 3L * sets * nb) {
            throw new IllegalArgumentException("blockCodebookFit: arrays too short");
        }
        float[] padded = paddedThresholds(table);
        int[] c = table.codes();
        float[] bucketValue = new float[padded.length + 1];
        for (int k = 0; k < bucketValue.length; k++) {
            bucketValue[k] = values[c[Math.min(k, c.length - 1)]];
        }
        float nanValue = values[table.nanCode()];
        boolean reciprocal = mode == ScaleMode.MULTIPLY_RECIPROCAL;
        int top = (padded.length + 1) >>> 1;
        Parallel.forRange(n, GRAIN / sets, blockSize, (from, to) -> {
            int last = (to - 1) / blockSize;
            for (int b = from / blockSize; b <= last; b++) {
                int o = b * blockSize;
                int end = o + Math.min(blockSize, to - o);
                double xx = 0;
                for (int i = o; i < end; i++) {
                    xx += (double) x[i] * x[i];
                }
                for (int j = 0; j < sets; j++) {
                    float s = scale[j * nb + b];
                    float r = 1f / s;
                    double xt = 0;
                    double tt = 0;
                    for (int i = o; i < end; i++) {
                        float v = x[i];
                        float xn = reciprocal ? v * r : v / s;
                        int k = 0;
                        for (int half = top; half > 0; half >>>= 1) {
                            k += xn > padded[k + half - 1] ? half : 0;
                        }
                        double q = xn != xn ? nanValue : bucketValue[k];
                        xt += v * q;
                        tt += q * q;
                    }
                    int at = 3 * (j * nb + b);
                    out[at] = (float) xt;
                    out[at + 1] = (float) tt;
                    out[at + 2] = (float) xx;
                }
            }
        });
    }

    /**
     * The number of scale sets of a {@link TensorScope#blockCodebookFit} scale of shape
     * {@code shape}: 1 for [nb], m for [m, nb] (m >= 1), with nb = ceil(n / blockSize).
     *
     * @throws IllegalArgumentException for any other shape
     */
    public static int fitScaleSets(int[] shape, int n, int blockSize) {
        int nb = blockCount(n, blockSize);
        if (shape.length == 1 && shape[0] == nb) {
            return 1;
        }
        if (shape.length == 2 && shape[0] >= 1 && shape[1] == nb) {
            return shape[0];
        }
        throw new IllegalArgumentException("blockCodebookFit: scale must be FLOAT32 [" + nb
                + "] or [m, " + nb + "] with m >= 1 (ceil(" + n + " / " + blockSize
                + ") blocks), got " + java.util.Arrays.toString(shape));
    }

    /** Rejects a bucket table with a code (or NaN code) that does not index {@code size} values. */
    public static void requireCodesIndexValues(String op, BucketTable table, int size) {
        int max = table.nanCode();
        for (int c : table.codes()) {
            max = Math.max(max, c);
        }
        if (max >= size) {
            throw new IllegalArgumentException(op + ": code " + max + " of the table does not index "
                    + "the " + size + " values; codes must be in [0, " + (size - 1) + "]");
        }
    }

    /** out[i] = f32(table[codes[i] & 0xFF] * scale[i / blockSize]) for i in [0, n). */
    public static void decode(byte[] codes, int n, float[] table, float[] scale, int blockSize,
            float[] out) {
        int nb = blockCount(n, blockSize);
        if (codes.length < n || out.length < n || scale.length < nb) {
            throw new IllegalArgumentException("decode: arrays too short");
        }
        float[] lut = new float[256];
        System.arraycopy(table, 0, lut, 0, Math.min(256, table.length));
        Parallel.forRange(n, GRAIN, blockSize, (from, to) -> {
            int last = (to - 1) / blockSize;
            for (int b = from / blockSize; b <= last; b++) {
                int o = b * blockSize;
                int end = o + Math.min(blockSize, to - o);
                float s = scale[b];
                for (int i = o; i < end; i++) {
                    out[i] = lut[codes[i] & 0xFF] * s;
                }
            }
        });
    }

    /**
     * Number of blocks of {@code blockSize} covering {@code n} elements, {@code ceil(n / blockSize)},
     * without the overflow of {@code (n + blockSize - 1) / blockSize}.
     */
    public static int blockCount(long n, int blockSize) {
        return n == 0 ? 0 : (int) ((n - 1) / blockSize + 1);
    }

    /** Bytes needed to pack {@code n} codes of {@code bits} bits. */
    public static int packedLength(long n, int bits) {
        return (int) ((n * bits + 7) / 8);
    }

    /**
     * Packs {@code codes[0, n)} as the bit stream of {@link TensorScope#pack}; {@code out} has
     * {@link #packedLength} bytes.
     */
    public static void pack(byte[] codes, int n, int bits, PackOrder order, int padCode, byte[] out) {
        int len = packedLength(n, bits);
        if (codes.length < n || out.length < len) {
            throw new IllegalArgumentException("pack: arrays too short");
        }
        if (bits == 8) {
            System.arraycopy(codes, 0, out, 0, n);
            return;
        }
        if (bits == 3) {
            packBitStream(codes, n, bits, order, padCode, out, len);
            return;
        }
        int perByte = 8 / bits;
        int mask = (1 << bits) - 1;
        int full = n / perByte;
        boolean msb = order == PackOrder.MSB_FIRST;
        Parallel.forRange(full, GRAIN, 1, (from, to) -> {
            for (int j = from; j < to; j++) {
                int base = j * perByte;
                int v = 0;
                for (int k = 0; k < perByte; k++) {
                    int shift = msb ? 8 - bits * (k + 1) : bits * k;
                    v |= (codes[base + k] & mask) << shift;
                }
                out[j] = (byte) v;
            }
        });
        if (full < len) {
            int v = 0;
            for (int k = 0; k < perByte; k++) {
                int idx = full * perByte + k;
                int code = idx < n ? codes[idx] & mask : padCode & mask;
                int shift = msb ? 8 - bits * (k + 1) : bits * k;
                v |= code << shift;
            }
            out[full] = (byte) v;
        }
    }

    /** Unpacks the first {@code count} codes of a bit stream made by {@link #pack}. */
    public static void unpack(byte[] packed, int bits, PackOrder order, int count, byte[] out) {
        if (packed.length < packedLength(count, bits) || out.length < count) {
            throw new IllegalArgumentException("unpack: arrays too short");
        }
        if (bits == 8) {
            System.arraycopy(packed, 0, out, 0, count);
            return;
        }
        if (bits == 3) {
            unpackBitStream(packed, bits, order, count, out);
            return;
        }
        int perByte = 8 / bits;
        int mask = (1 << bits) - 1;
        boolean msb = order == PackOrder.MSB_FIRST;
        Parallel.forRange(count, GRAIN, perByte, (from, to) -> {
            for (int i = from; i < to; i++) {
                int k = i % perByte;
                int shift = msb ? 8 - bits * (k + 1) : bits * k;
                out[i] = (byte) (((packed[i / perByte] & 0xFF) >>> shift) & mask);
            }
        });
    }

    private static void packBitStream(byte[] codes, int n, int bits, PackOrder order, int padCode,
            byte[] out, int len) {
        java.util.Arrays.fill(out, 0, len, (byte) 0);
        long totalBits = (long) len * 8;
        boolean msb = order == PackOrder.MSB_FIRST;
        for (long j = 0; j * bits < totalBits; j++) {
            int code = j < n ? codes[(int) j] : padCode;
            for (int k = 0; k < bits; k++) {
                long pos = j * bits + k;
                if (pos >= totalBits) {
                    break;
                }
                int bit = msb ? (code >>> (bits - 1 - k)) & 1 : (code >>> k) & 1;
                int byteIndex = (int) (pos >>> 3);
                int bitInByte = msb ? 7 - (int) (pos & 7) : (int) (pos & 7);
                out[byteIndex] |= (byte) (bit << bitInByte);
            }
        }
    }

    private static void unpackBitStream(byte[] packed, int bits, PackOrder order, int count,
            byte[] out) {
        boolean msb = order == PackOrder.MSB_FIRST;
        for (int j = 0; j < count; j++) {
            int code = 0;
            for (int k = 0; k < bits; k++) {
                long pos = (long) j * bits + k;
                int bitInByte = msb ? 7 - (int) (pos & 7) : (int) (pos & 7);
                int bit = (packed[(int) (pos >>> 3)] >>> bitInByte) & 1;
                code |= msb ? bit << (bits - 1 - k) : bit << k;
            }
            out[j] = (byte) code;
        }
    }
}
