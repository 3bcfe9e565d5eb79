package dev.loftq.core.testkit;

import dev.loftq.core.tensor.BucketTable;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.ScaleMode;

/**
 * Straightforward host implementations of the SPI operations, written from their javadoc with
 * plain loops and no cleverness, as the oracle of the backend test kit. Sums are accumulated in
 * double (float products are exact in double), so they serve as "exact" references for
 * tolerance checks.
 */
public final class Oracle {
    private Oracle() {}

    /** Elements of a shape. */
    public static int numel(int[] shape) {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    /** The numpy broadcast of two shapes (assumed broadcastable). */
    public static int[] broadcast(int[] a, int[] b) {
        int rank = Math.max(a.length, b.length);
        int[] out = new int[rank];
        for (int i = 0; i < rank; i++) {
            int da = i < rank - a.length ? 1 : a[i - (rank - a.length)];
            int db = i < rank - b.length ? 1 : b[i - (rank - b.length)];
            out[i] = da == 1 ? db : da;
        }
        return out;
    }

    /**
     * The flat index into an operand of shape {@code operand} that feeds the output element at
     * flat index {@code flat} of shape {@code out}, under numpy broadcasting.
     */
    public static int sourceIndex(int[] out, int[] operand, int flat) {
        int[] idx = new int[out.length];
        for (int a = out.length - 1; a >= 0; a--) {
            idx[a] = flat % out[a];
            flat /= out[a];
        }
        int offset = out.length - operand.length;
        int index = 0;
        for (int a = 0; a < operand.length; a++) {
            int i = operand[a] == 1 ? 0 : idx[a + offset];
            index = index * operand[a] + i;
        }
        return index;
    }

    /** A binary float operation. */
    @FunctionalInterface
    public interface FloatOp {
        float apply(float a, float b);
    }

    /** op(a, b) over the broadcast of the two shapes. */
    public static float[] broadcastOp(float[] a, int[] sa, float[] b, int[] sb, FloatOp op) {
        int[] out = broadcast(sa, sb);
        float[] r = new float[numel(out)];
        for (int i = 0; i < r.length; i++) {
            r[i] = op.apply(a[sourceIndex(out, sa, i)], b[sourceIndex(out, sb, i)]);
        }
        return r;
    }

    /** The transpose of [rows, cols] row-major data. */
    public static float[] transpose(float[] x, int rows, int cols) {
        float[] t = new float[x.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = x[r * cols + c];
            }
        }
        return t;
    }

    /**
     * op(A)·op(B) in double: A stored [m, k] (or [k, m] when transposeA), B stored [k, n] (or
     * [n, k] when transposeB). Products of floats are exact in double.
     */
    public static double[] matmul(float[] a, boolean transposeA, float[] b, boolean transposeB,
            int m, int k, int n) {
        double[] c = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) {
                    float av = transposeA ? a[p * m + i] : a[i * k + p];
                    float bv = transposeB ? b[j * k + p] : b[p * n + j];
                    s += (double) av * bv;
                }
                c[i * n + j] = s;
            }
        }
        return c;
    }

    /** Σ_p |op(A)[i, p]| · |op(B)[p, j]|: the scale of matmul's rounding error. */
    public static double[] matmulAbs(float[] a, boolean transposeA, float[] b, boolean transposeB,
            int m, int k, int n) {
        float[] absA = new float[a.length];
        float[] absB = new float[b.length];
        for (int i = 0; i < a.length; i++) {
            absA[i] = Math.abs(a[i]);
        }
        for (int i = 0; i < b.length; i++) {
            absB[i] = Math.abs(b[i]);
        }
        return matmul(absA, transposeA, absB, transposeB, m, k, n);
    }

    /** Row sums in double of x viewed as [rows, len]; with {@code absolute}, sums of |x|. */
    public static double[] rowSums(float[] x, int rows, int len, boolean absolute) {
        double[] s = new double[rows];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < len; i++) {
                float v = x[r * len + i];
                s[r] += absolute ? Math.abs(v) : v;
            }
        }
        return s;
    }

    /** Row maxima (max) or minima of x viewed as [rows, len]; NaN if a row holds a NaN. */
    public static float[] rowExtrema(float[] x, int rows, int len, boolean max) {
        float[] out = new float[rows];
        for (int r = 0; r < rows; r++) {
            float m = x[r * len];
            boolean nan = false;
            for (int i = 0; i < len; i++) {
                float v = x[r * len + i];
                nan |= Float.isNaN(v);
                if (max ? v > m : v < m) {
                    m = v;
                }
            }
            out[r] = nan ? Float.NaN : m;
        }
        return out;
    }

    /** max |x[i]| per block of {@code blockSize} flat elements; NaN if the block holds a NaN. */
    public static float[] blockAbsMax(float[] x, int blockSize) {
        int blocks = (x.length + blockSize - 1) / blockSize;
        float[] out = new float[blocks];
        for (int b = 0; b < blocks; b++) {
            float m = 0f;
            for (int i = b * blockSize; i < Math.min(x.length, (b + 1) * blockSize); i++) {
                float v = Math.abs(x[i]);
                if (Float.isNaN(v)) {
                    m = Float.NaN;
                    break;
                }
                m = v > m ? v : m;
            }
            out[b] = m;
        }
        return out;
    }

    /** table.encode of each value normalised by its block scale as {@code mode} says. */
    public static byte[] encode(float[] x, float[] scale, int blockSize, ScaleMode mode,
            BucketTable table) {
        byte[] out = new byte[x.length];
        for (int i = 0; i < x.length; i++) {
            float s = scale[i / blockSize];
            float xn = mode == ScaleMode.MULTIPLY_RECIPROCAL ? x[i] * (1f / s) : x[i] / s;
            out[i] = (byte) table.encode(xn);
        }
        return out;
    }

    /**
     * Per block: Σ x·t, Σ t², Σ x² with t = values[code of x / scale], each as 16 float partials
     * (element e of the block into partial e mod 16) added in double and rounded once: the
     * {@code blockCodebookFit} specification, element by element.
     */
    public static float[] blockCodebookFit(float[] x, float[] scale, int blockSize, ScaleMode mode,
            BucketTable table, float[] values) {
        int nb = (x.length + blockSize - 1) / blockSize;
        float[][] partials = new float[3 * nb][16];
        byte[] codes = encode(x, scale, blockSize, mode, table);
        for (int i = 0; i < x.length; i++) {
            int b = i / blockSize;
            int lane = (i - b * blockSize) % 16;
            float t = values[codes[i] & 0xFF];
            partials[3 * b][lane] += x[i] * t;
            partials[3 * b + 1][lane] += t * t;
            partials[3 * b + 2][lane] += x[i] * x[i];
        }
        float[] out = new float[3 * nb];
        for (int k = 0; k < out.length; k++) {
            double sum = 0;
            for (float p : partials[k]) {
                sum += p;
            }
            out[k] = (float) sum;
        }
        return out;
    }

    /** table[code] * scale[block] in float32. */
    public static float[] decode(byte[] codes, float[] table, float[] scale, int blockSize) {
        float[] out = new float[codes.length];
        for (int i = 0; i < codes.length; i++) {
            out[i] = table[codes[i] & 0xFF] * scale[i / blockSize];
        }
        return out;
    }

    /**
     * The bit stream of {@code pack}, bit by bit: code j occupies stream bits [j·bits,
     * (j+1)·bits); stream bit k is bit {@code 7 - k % 8} (MSB_FIRST) or {@code k % 8} (LSB_FIRST)
     * of byte k / 8; codes are written most (MSB_FIRST) or least significant bit first; the tail
     * of the last byte holds padCode codes, cut where the byte ends.
     */
    public static byte[] pack(byte[] codes, int bits, PackOrder order, int padCode) {
        int len = (int) (((long) codes.length * bits + 7) / 8);
        byte[] out = new byte[len];
        boolean msb = order == PackOrder.MSB_FIRST;
        for (int k = 0; k < len * 8; k++) {
            int j = k / bits;
            int bitOfCode = k % bits; // 0 = the first bit written
            int code = j < codes.length ? codes[j] & 0xFF : padCode;
            int bit = msb ? (code >> (bits - 1 - bitOfCode)) & 1 : (code >> bitOfCode) & 1;
            int position = msb ? 7 - k % 8 : k % 8;
            out[k / 8] |= (byte) (bit << position);
        }
        return out;
    }

    /** The first {@code count} codes of a {@link #pack} bit stream. */
    public static byte[] unpack(byte[] packed, int bits, PackOrder order, int count) {
        byte[] out = new byte[count];
        boolean msb = order == PackOrder.MSB_FIRST;
        for (int j = 0; j < count; j++) {
            int code = 0;
            for (int bitOfCode = 0; bitOfCode < bits; bitOfCode++) {
                int k = j * bits + bitOfCode;
                int position = msb ? 7 - k % 8 : k % 8;
                int bit = (packed[k / 8] >> position) & 1;
                code |= msb ? bit << (bits - 1 - bitOfCode) : bit << bitOfCode;
            }
            out[j] = (byte) code;
        }
        return out;
    }
}
