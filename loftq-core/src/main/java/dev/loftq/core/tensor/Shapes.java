package dev.loftq.core.tensor;

import java.util.Arrays;

/** Shape arithmetic shared by every backend: validation, element counts, broadcasting. */
public final class Shapes {
    private Shapes() {}

    /** Number of elements; 1 for a rank-0 shape. Rejects negative dimensions and overflow. */
    public static long numel(String op, int... shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException(
                        op + ": dimensions must be >= 0, got shape " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, (long) d);
        }
        return n;
    }

    /** Element count that must fit in a Java array. */
    public static int numelInt(String op, int... shape) {
        long n = numel(op, shape);
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(op + ": shape " + Arrays.toString(shape) + " has " + n
                    + " elements; at most " + (Integer.MAX_VALUE - 8) + " are supported");
        }
        return (int) n;
    }

    /**
     * The broadcast shape of {@code a} and {@code b} under numpy rules: shapes are aligned at the
     * last axis; each pair of dimensions must be equal or one of them 1.
     */
    public static int[] broadcast(String op, int[] a, int[] b) {
        int rank = Math.max(a.length, b.length);
        int[] out = new int[rank];
        for (int i = 0; i < rank; i++) {
            int da = i < rank - a.length ? 1 : a[i - (rank - a.length)];
            int db = i < rank - b.length ? 1 : b[i - (rank - b.length)];
            if (da != db && da != 1 && db != 1) {
                throw new IllegalArgumentException(op + ": shapes " + Arrays.toString(a) + " and "
                        + Arrays.toString(b) + " do not broadcast (axis " + i + ": " + da + " vs "
                        + db + "; dimensions must be equal or 1)");
            }
            out[i] = da == 1 ? db : da;
        }
        return out;
    }

    /**
     * Resolves a reshape target for {@code numel} elements; at most one dimension may be -1.
     */
    public static int[] resolveReshape(String op, int[] from, int[] to) {
        int[] out = to.clone();
        int inferred = -1;
        long known = 1;
        for (int i = 0; i < out.length; i++) {
            if (out[i] == -1) {
                if (inferred >= 0) {
                    throw new IllegalArgumentException(op + ": at most one dimension may be -1, got "
                            + Arrays.toString(to));
                }
                inferred = i;
            } else if (out[i] < 0) {
                throw new IllegalArgumentException(op + ": dimensions must be >= 0 or -1, got "
                        + Arrays.toString(to));
            } else {
                known *= out[i];
            }
        }
        long n = numel(op, from);
        if (inferred >= 0) {
            if (known == 0 || n % known != 0) {
                throw new IllegalArgumentException(op + ": cannot reshape " + Arrays.toString(from)
                        + " (" + n + " elements) to " + Arrays.toString(to));
            }
            out[inferred] = (int) (n / known);
        } else if (known != n) {
            throw new IllegalArgumentException(op + ": cannot reshape " + Arrays.toString(from) + " ("
                    + n + " elements) to " + Arrays.toString(to) + " (" + known + " elements)");
        }
        return out;
    }
}
