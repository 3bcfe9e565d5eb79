package dev.loftq.djl.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import dev.loftq.core.tensor.Shapes;
import java.util.Arrays;
import java.util.SplittableRandom;

/** Plain-loop oracles and test data with special values. */
final class Oracles {
    private Oracles() {}

    /**
     * Values every elementwise test includes: signed zeros, ties, non-finite, subnormal, extremes.
     */
    static final float[] SPECIALS = {0f, -0f, 1f, -1f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f, 3.5f, 254.5f,
        255.5f, 256f, -3f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY,
        Float.MIN_VALUE, -Float.MIN_VALUE, 1e-40f, Float.MIN_NORMAL, Float.MAX_VALUE,
        -Float.MAX_VALUE,
        1e-3f, 88.7f, -88.7f, -100f, 100f, 1e7f + 1f, 0.49999997f};

    /** {@code n} values: the specials first (as many as fit), then scaled normals. */
    static float[] data(long seed, int n) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            if (i < SPECIALS.length) {
                out[i] = SPECIALS[(int) ((i + seed) % SPECIALS.length)];
            } else {
                double scale = Math.pow(10, r.nextInt(-3, 4));
                out[i] = (float) (r.nextGaussian() * scale);
            }
        }
        return out;
    }

    /** Finite normals only (for sums and products). */
    static float[] normals(long seed, int n) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            out[i] = (float) r.nextGaussian();
        }
        return out;
    }

    static int numel(int... shape) {
        return Shapes.numelInt("test", shape);
    }

    /** An elementwise binary function of floats. */
    interface FloatOp {
        float apply(float a, float b);
    }

    /** Numpy broadcasting over row-major arrays. */
    static float[] broadcast(float[] a, int[] sa, float[] b, int[] sb, FloatOp op) {
        int[] so = Shapes.broadcast("oracle", sa, sb);
        int n = numel(so);
        float[] out = new float[n];
        int[] idx = new int[so.length];
        for (int i = 0; i < n; i++) {
            out[i] = op.apply(a[offset(idx, so, sa)], b[offset(idx, so, sb)]);
            for (int k = so.length - 1; k >= 0; k--) {
                if (++idx[k] < so[k]) {
                    break;
                }
                idx[k] = 0;
            }
        }
        return out;
    }

    /** Flat offset in an operand of shape {@code s} for an index of the broadcast shape. */
    static int offset(int[] idx, int[] so, int[] s) {
        int off = 0;
        int shift = so.length - s.length;
        for (int k = 0; k < s.length; k++) {
            int i = s[k] == 1 ? 0 : idx[k + shift];
            off = off * s[k] + i;
        }
        return off;
    }

    /** Row-major transpose of a [rows, cols] array. */
    static float[] transpose(float[] a, int rows, int cols) {
        float[] t = new float[a.length];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                t[j * rows + i] = a[i * cols + j];
            }
        }
        return t;
    }

    /** c = a·b accumulated in double, a [m, k], b [k, n]. */
    static double[] matmul(float[] a, float[] b, int m, int k, int n) {
        double[] c = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int p = 0; p < k; p++) {
                double x = a[i * k + p];
                for (int j = 0; j < n; j++) {
                    c[i * n + j] += x * b[p * n + j];
                }
            }
        }
        return c;
    }

    /** Bit equality, NaNs of any payload equal, -0 and +0 different. */
    static void assertBits(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(actual[i])) {
                fail(what + ": element " + i + " expected " + expected[i] + " (0x"
                        + Integer.toHexString(Float.floatToRawIntBits(expected[i])) + ") but was "
                        + actual[i] + " (0x"
                        + Integer.toHexString(Float.floatToRawIntBits(actual[i])) + ")");
            }
        }
    }

    /** Value equality (NaN equals NaN, -0 equals +0). */
    static void assertValues(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            boolean bothNan = Float.isNaN(expected[i]) && Float.isNaN(actual[i]);
            if (expected[i] != actual[i] && !bothNan) {
                fail(what + ": element " + i + " expected " + expected[i] + " but was "
                        + actual[i]);
            }
        }
    }

    static void assertClose(double[] expected, float[] actual, double tol, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            if (!(Math.abs(expected[i] - actual[i]) <= tol * Math.max(1, Math.abs(expected[i])))) {
                fail(what + ": element " + i + " expected " + expected[i] + " but was " + actual[i]
                        + " (tolerance " + tol + ")");
            }
        }
    }

    /** Distance in units in the last place between two finite floats of the same sign. */
    static long ulps(float a, float b) {
        return Math.abs((long) Float.floatToIntBits(a) - Float.floatToIntBits(b));
    }

    static String shape(int[] s) {
        return Arrays.toString(s);
    }
}
