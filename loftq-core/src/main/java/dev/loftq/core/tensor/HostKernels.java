package dev.loftq.core.tensor;

/**
 * The coarse codebook kernels of the SPI over flat host arrays: the executable specification of
 * {@link TensorScope#blockAbsMax}, {@link TensorScope#encode}, {@link TensorScope#decode},
 * {@link TensorScope#pack} and {@link TensorScope#unpack}. The reference backend calls them
 * directly; other backends may call them after a host copy, or run their own kernel that must give
 * identical bits.
 *
 * <p>Arguments are validated by the callers (the scopes); these methods check only what keeps them
 * memory-safe. Multi-threaded over whole blocks for large inputs. When the JVM runs with
 * {@code --add-modules jdk.incubator.vector} on a CPU with 256-bit vectors, encoding and the
 * codebook fit run their blocks through {@link VectorKernels} (same bits, several times faster);
 * {@code -Dloftq.vector=false} turns that off.
 */
public final class HostKernels {
    private HostKernels() {}

    /** Elements below which a kernel stays on the calling thread. */
    private static final int GRAIN = 1 << 16;

    /**
     * The partial sums of a block in {@link TensorScope#blockCodebookFit}: element e of a block
     * adds to partial e mod {@value}, so that 16 lanes of SIMD registers can hold them.
     */
    public static final int FIT_LANES = 16;

    private static final boolean VECTOR = vectorAvailable();

    private static boolean vectorAvailable() {
        return Boolean.parseBoolean(System.getProperty("loftq.vector", "true"))
                && ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()
                && VectorKernels.supported();
    }

    /**
     * Whether encoding and the codebook fit run on SIMD kernels in this JVM: it was started with
     * {@code --add-modules jdk.incubator.vector}, the CPU has 256-bit vectors and
     * {@code loftq.vector} is not false. The results are the same either way.
     */
    public static boolean vectorized() {
        return VECTOR;
    }

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
                // The bits of |x| order as the values do, and every NaN's above +Inf's: an
                // integer max, which the JIT vectorises, finds both the absmax and any NaN.
                int m = 0;
                for (int i = o; i < end; i++) {
                    m = Math.max(m, Float.floatToRawIntBits(x[i]) & 0x7fffffff);
                }
                out[b] = m > 0x7f800000 ? Float.NaN : Float.intBitsToFloat(m);
            }
        });
    }

    /**
     * out[i] = table.encode(normalise(x[i], scale[i / blockSize])) for i in [0, n), counting the
     * thresholds below each value with a {@link Slots}.
     */
    public static void encode(float[] x, int n, float[] scale, int blockSize, ScaleMode mode,
            BucketTable table, byte[] out) {
        encode(x, n, scale, blockSize, mode, table, out, VECTOR);
    }

    /** {@link #encode}, through {@link VectorKernels} where {@code vector} and the table allow. */
    static void encode(float[] x, int n, float[] scale, int blockSize, ScaleMode mode,
            BucketTable table, byte[] out, boolean vector) {
        int nb = blockCount(n, blockSize);
        if (x.length < n || out.length < n || scale.length < nb) {
            throw new IllegalArgumentException("encode: arrays too short");
        }
        Slots slots = new Slots(table);
        int[] codes = table.codes();
        float[] perCount = new float[codes.length];
        for (int k = 0; k < codes.length; k++) {
            perCount[k] = codes[k];
        }
        float[] code = slots.lookup(perCount);
        byte nanCode = (byte) table.nanCode();
        boolean reciprocal = mode == ScaleMode.MULTIPLY_RECIPROCAL;
        boolean simd = vector && table.size() <= VectorKernels.MAX_THRESHOLDS;
        float[] thresholds = table.thresholds();
        Parallel.forRange(n, GRAIN, blockSize, (from, to) -> {
            int last = (to - 1) / blockSize;
            for (int b = from / blockSize; b <= last; b++) {
                int o = b * blockSize;
                int end = o + Math.min(blockSize, to - o);
                float s = scale[b];
                float r = 1f / s;
                int done = simd ? VectorKernels.encode(x, o, end - o, s, reciprocal, thresholds,
                        perCount, nanCode & 0xFF, out) : 0;
                for (int i = o + done; i < end; i++) {
                    float xn = reciprocal ? x[i] * r : x[i] / s;
                    out[i] = xn != xn ? nanCode : (byte) code[slots.slot(xn)];
                }
            }
        });
    }

    /**
     * Where a normalised value falls among a {@link BucketTable}'s thresholds, as an index into a
     * per-slot lookup table ({@link #lookup}): through the table's {@link BucketIndex} (one bin and
     * one comparison), or for tables too dense for one, a binary search over the thresholds padded
     * to 2^m - 1 with +Inf sentinels. Both count the thresholds strictly below a value exactly as
     * {@link BucketTable#encode} does, and both are branch-free (see {@link BucketIndex}).
     */
    private static final class Slots {
        /** Clamping to [t₀, nextUp(t_last)] changes no count; both paths clamp. */
        private final float low;
        private final float high;
        private final float origin;
        private final float perUnit;
        /** The index's bins (copied into fields for the JIT), or null for the binary search. */
        private final float[] split;
        private final BucketIndex index;
        private final float[] padded;
        private final int top;

        Slots(BucketTable table) {
            index = BucketIndex.of(table);
            float[] t = table.thresholds();
            low = t[0];
            high = Math.nextUp(t[t.length - 1]);
            if (index != null) {
                origin = index.origin;
                perUnit = index.perUnit;
                split = index.split;
                padded = null;
                top = 0;
            } else {
                origin = 0f;
                perUnit = 0f;
                split = null;
                int levels = 32 - Integer.numberOfLeadingZeros(t.length); // 2^levels - 1 >= size
                padded = new float[(1 << levels) - 1];
                java.util.Arrays.fill(padded, Float.POSITIVE_INFINITY);
                System.arraycopy(t, 0, padded, 0, t.length);
                top = (padded.length + 1) >>> 1;
            }
        }

        /** The slot of a value; memory-safe for NaN (whose slot callers must not use). */
        int slot(float xn) {
            float v = Math.min(Math.max(xn, low), high); // changes no count
            if (split != null) {
                int bin = (int) ((v - origin) * perUnit);
                return 2 * bin + (Float.floatToRawIntBits(split[bin] - v) >>> 31);
            }
            int k = 0;
            for (int half = top; half > 0; half >>>= 1) {
                k += half & (Float.floatToRawIntBits(padded[k + half - 1] - v) >> 31);
            }
            return k;
        }

        /** Per slot, {@code perCount[count of thresholds below]}; perCount has thresholds + 1 entries. */
        float[] lookup(float[] perCount) {
            if (index != null) {
                return index.lookup(perCount);
            }
            float[] out = new float[padded.length + 1];
            for (int k = 0; k < out.length; k++) {
                out[k] = perCount[Math.min(k, perCount.length - 1)];
            }
            return out;
        }
    }

    /**
     * For each of {@code sets} scale sets j (scale[j·nb + b]) and block b:
     * out[3(j·nb + b)] = Σ x·t, out[3(j·nb + b) + 1] = Σ t², out[3(j·nb + b) + 2] = Σ x², with
     * t = values[table.encode(normalise(x, scale[j·nb + b]))], each sum taken as the
     * {@link TensorScope#blockCodebookFit} specification says ({@value #FIT_LANES} float partials,
     * added in double). One pass over x: each block is fitted for every set while it is in cache.
     * Every code of {@code table} must index {@code values}.
     */
    public static void blockCodebookFit(float[] x, int n, float[] scale, int sets, int blockSize,
            ScaleMode mode, BucketTable table, float[] values, float[] out) {
        blockCodebookFit(x, n, scale, sets, blockSize, mode, table, values, out, VECTOR);
    }

    /**
     * {@link #blockCodebookFit}, through {@link VectorKernels} where {@code vector} and the table
     * allow.
     */
    static void blockCodebookFit(float[] x, int n, float[] scale, int sets, int blockSize,
            ScaleMode mode, BucketTable table, float[] values, float[] out, boolean vector) {
        int nb = blockCount(n, blockSize);
        if (sets < 1 || x.length < n || scale.length < (long) sets * nb
                || out.length < 3L * sets * nb) {
            throw new IllegalArgumentException("blockCodebookFit: arrays too short");
        }
        Slots slots = new Slots(table);
        int[] c = table.codes();
        float[] valuePerCount = new float[c.length];
        for (int k = 0; k < c.length; k++) {
            valuePerCount[k] = values[c[k]];
        }
        float[] slotValue = slots.lookup(valuePerCount);
        float nanValue = values[table.nanCode()];
        boolean reciprocal = mode == ScaleMode.MULTIPLY_RECIPROCAL;
        boolean simd = vector && table.size() <= VectorKernels.MAX_THRESHOLDS;
        float[] thresholds = table.thresholds();
        Parallel.forRange(n, GRAIN / sets, blockSize, (from, to) -> {
            // Partials of Σx·t in [0, 16), of Σt² in [16, 32); Σx² has its own.
            float[] p = new float[2 * FIT_LANES];
            float[] squares = new float[FIT_LANES];
            int last = (to - 1) / blockSize;
            for (int b = from / blockSize; b <= last; b++) {
                int o = b * blockSize;
                int len = Math.min(blockSize, to - o);
                java.util.Arrays.fill(squares, 0f);
                int done = simd ? VectorKernels.squares(x, o, len, squares) : 0;
                for (int e = done; e < len; e++) {
                    float v = x[o + e];
                    squares[e % FIT_LANES] += v * v;
                }
                float xx = partialSum(squares, 0);
                for (int j = 0; j < sets; j++) {
                    float s = scale[j * nb + b];
                    float r = 1f / s;
                    java.util.Arrays.fill(p, 0f);
                    done = simd ? VectorKernels.fit(x, o, len, s, reciprocal, thresholds,
                            valuePerCount, nanValue, p) : 0;
                    for (int e = done; e < len; e += FIT_LANES) { // the 16 lanes of a chunk
                        int lanes = Math.min(FIT_LANES, len - e);
                        for (int l = 0; l < lanes; l++) {
                            float v = x[o + e + l];
                            float xn = reciprocal ? v * r : v / s;
                            float t = xn != xn ? nanValue : slotValue[slots.slot(xn)];
                            p[l] += v * t;
                            p[FIT_LANES + l] += t * t;
                        }
                    }
                    int at = 3 * (j * nb + b);
                    out[at] = partialSum(p, 0);
                    out[at + 1] = partialSum(p, FIT_LANES);
                    out[at + 2] = xx;
                }
            }
        });
    }

    /** The {@value #FIT_LANES} partials from {@code p[from]}, added in order in double, rounded. */
    private static float partialSum(float[] p, int from) {
        double sum = 0;
        for (int l = from; l < from + FIT_LANES; l++) {
            sum += p[l];
        }
        return (float) sum;
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
        decode(null, codes, n, table, scale, blockSize, out);
    }

    /**
     * The quantization residual, out[i] = x[i] − f32(table[codes[i] & 0xFF] * scale[i /
     * blockSize]) for i in [0, n): bit for bit a decode followed by a subtraction, in one pass.
     */
    public static void decodeResidual(float[] x, byte[] codes, int n, float[] table,
            float[] scale, int blockSize, float[] out) {
        if (x.length < n) {
            throw new IllegalArgumentException("decodeResidual: arrays too short");
        }
        decode(x, codes, n, table, scale, blockSize, out);
    }

    /** {@link #decode}, subtracted from {@code x} when x is not null. */
    private static void decode(float[] x, byte[] codes, int n, float[] table, float[] scale,
            int blockSize, float[] out) {
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
                if (x == null) {
                    for (int i = o; i < end; i++) {
                        out[i] = lut[codes[i] & 0xFF] * s;
                    }
                } else {
                    for (int i = o; i < end; i++) {
                        out[i] = x[i] - lut[codes[i] & 0xFF] * s;
                    }
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
