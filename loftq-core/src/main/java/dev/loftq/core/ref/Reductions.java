package dev.loftq.core.ref;

import dev.loftq.core.tensor.Parallel;

/**
 * Reductions over flat row-major arrays viewed as {@code rows} rows of {@code len} elements (the
 * last axis). Rows run in parallel; within a row the order is ascending, so results do not depend
 * on the thread count.
 */
final class Reductions {
    private Reductions() {}

    /** Elements below which a reduction stays on the calling thread. */
    private static final int GRAIN = 1 << 15;
    /** Elements per partial sum of {@link #sumOfSquares}; fixed, so the result is deterministic. */
    private static final int SQUARES_CHUNK = 1 << 14;

    /** Reductions along the last axis. */
    enum Last {
        /** {@link Math#max(float, float)} fold: NaN propagates. */
        MAX,
        /** {@link Math#min(float, float)} fold: NaN propagates. */
        MIN,
        /** Sum accumulated in double, rounded once to float32. */
        SUM,
        /** The double sum divided by len, rounded once to float32. */
        MEAN
    }

    /**
     * out[r] = op over x[r·len, (r+1)·len). {@code len >= 1} for MAX, MIN, MEAN; a zero len gives
     * zeros for SUM. x: not modified, length rows·len.
     */
    static float[] last(Last op, float[] x, int rows, int len) {
        if ((long) rows * len != x.length) {
            throw new IllegalStateException("reduction: " + rows + " x " + len + " does not match "
                    + x.length + " elements");
        }
        float[] out = new float[rows];
        int grain = Math.max(1, GRAIN / Math.max(1, len));
        Parallel.forRange(rows, grain, 1, (from, to) -> {
            for (int r = from; r < to; r++) {
                out[r] = reduceRow(op, x, r * len, len);
            }
        });
        return out;
    }

    private static float reduceRow(Last op, float[] x, int o, int len) {
        switch (op) {
            case MAX: {
                float m = x[o];
                for (int i = o + 1; i < o + len; i++) {
                    m = Math.max(m, x[i]);
                }
                return m;
            }
            case MIN: {
                float m = x[o];
                for (int i = o + 1; i < o + len; i++) {
                    m = Math.min(m, x[i]);
                }
                return m;
            }
            case SUM:
                return (float) sum(x, o, len);
            case MEAN:
                return (float) (sum(x, o, len) / len);
            default:
                throw new AssertionError(op);
        }
    }

    private static double sum(float[] x, int o, int len) {
        double s = 0;
        for (int i = o; i < o + len; i++) {
            s += x[i];
        }
        return s;
    }

    /** Sum of x[i]² in double: fixed chunks summed in parallel, then in order. */
    static double sumOfSquares(float[] x) {
        int chunks = (x.length + SQUARES_CHUNK - 1) / SQUARES_CHUNK;
        double[] partial = new double[chunks];
        Parallel.forRange(chunks, Math.max(1, GRAIN / SQUARES_CHUNK), 1, (from, to) -> {
            for (int c = from; c < to; c++) {
                int start = c * SQUARES_CHUNK;
                int end = Math.min(x.length, start + SQUARES_CHUNK);
                double s = 0;
                for (int i = start; i < end; i++) {
                    double v = x[i];
                    s += v * v;
                }
                partial[c] = s;
            }
        });
        double total = 0;
        for (double p : partial) {
            total += p;
        }
        return total;
    }
}
