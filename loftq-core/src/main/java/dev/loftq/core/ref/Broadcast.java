package dev.loftq.core.ref;

import dev.loftq.core.tensor.Parallel;
import java.util.Arrays;

/**
 * Numpy broadcasting over row-major arrays, walked as runs. The output's axes of size 1 are
 * dropped and neighbouring axes merged wherever every operand is contiguous (or broadcast) across
 * both, so equal shapes become a single run and {@code [r, c] + [c]} becomes runs of length c.
 * Within a run every operand advances with stride 1 or 0 (broadcast).
 */
final class Broadcast {
    /** Output elements below which a walk stays on the calling thread. */
    private static final int GRAIN = 1 << 15;

    /** One run of a walk. */
    @FunctionalInterface
    interface Run {
        /**
         * @param out offset of the run's first output element
         * @param offsets offset of the run's first element in each operand; must not be modified
         * @param strides each operand's stride along the run, 0 or 1; must not be modified
         * @param len run length, >= 1
         */
        void run(int out, int[] offsets, int[] strides, int len);
    }

    private final int n;
    private final int[] dims;
    /** [operand][axis] element strides over {@link #dims}, 0 where the operand is broadcast. */
    private final int[][] strides;
    private final int[] innerStrides;

    /**
     * @param outShape the broadcast shape of the operands (from
     *     {@link dev.loftq.core.tensor.Shapes#broadcast}), not modified
     * @param operandShapes each operand's shape, broadcastable to outShape, not modified
     */
    Broadcast(int[] outShape, int[]... operandShapes) {
        int ops = operandShapes.length;
        int rank = outShape.length;
        int[] d = new int[Math.max(rank, 1)];
        int[][] s = new int[ops][d.length];
        int kept = 0;
        long count = 1;
        for (int axis = 0; axis < rank; axis++) {
            count *= outShape[axis];
            if (outShape[axis] == 1) {
                continue;
            }
            d[kept] = outShape[axis];
            for (int k = 0; k < ops; k++) {
                int[] operand = operandShapes[k];
                s[k][kept] = rowMajorStride(operand, axis - (rank - operand.length));
            }
            kept++;
        }
        if (kept == 0) { // every axis has size 1 (or rank 0): a single element
            d[0] = 1;
            kept = 1;
        }
        // merge axis a into a - 1 wherever every operand is contiguous (or broadcast) across both
        int merged = 0;
        for (int a = 1; a < kept; a++) {
            boolean mergeable = true;
            for (int k = 0; k < ops && mergeable; k++) {
                mergeable = s[k][merged] == (long) s[k][a] * d[a];
            }
            if (mergeable) {
                d[merged] *= d[a];
                for (int k = 0; k < ops; k++) {
                    s[k][merged] = s[k][a];
                }
            } else {
                merged++;
                d[merged] = d[a];
                for (int k = 0; k < ops; k++) {
                    s[k][merged] = s[k][a];
                }
            }
        }
        int outRank = merged + 1;
        this.n = (int) count;
        this.dims = Arrays.copyOf(d, outRank);
        this.strides = new int[ops][];
        this.innerStrides = new int[ops];
        for (int k = 0; k < ops; k++) {
            strides[k] = Arrays.copyOf(s[k], outRank);
            innerStrides[k] = strides[k][outRank - 1];
        }
    }

    /** Stride of {@code axis} in a row-major array of {@code shape}; 0 for a broadcast axis. */
    private static int rowMajorStride(int[] shape, int axis) {
        if (axis < 0 || shape[axis] == 1) {
            return 0;
        }
        int stride = 1;
        for (int a = axis + 1; a < shape.length; a++) {
            stride *= shape[a];
        }
        return stride;
    }

    /** Number of output elements. */
    int size() {
        return n;
    }

    /** Calls {@code body} for runs covering every output element once, in parallel chunks. */
    void forEachRun(Run body) {
        Parallel.forRange(n, GRAIN, 1, (from, to) -> walk(from, to, body));
    }

    private void walk(int from, int to, Run body) {
        int rank = dims.length;
        int last = rank - 1;
        int ops = strides.length;
        int[] idx = new int[rank];
        int[] off = new int[ops];
        int rem = from;
        for (int a = last; a >= 0; a--) {
            idx[a] = rem % dims[a];
            rem /= dims[a];
            for (int k = 0; k < ops; k++) {
                off[k] += idx[a] * strides[k][a];
            }
        }
        int[] inner = innerStrides.clone();
        int pos = from;
        while (pos < to) {
            int len = Math.min(dims[last] - idx[last], to - pos);
            body.run(pos, off, inner, len);
            pos += len;
            idx[last] += len;
            for (int k = 0; k < ops; k++) {
                off[k] += len * strides[k][last];
            }
            for (int a = last; a > 0 && idx[a] == dims[a]; a--) {
                idx[a] = 0;
                idx[a - 1]++;
                for (int k = 0; k < ops; k++) {
                    off[k] += strides[k][a - 1] - dims[a] * strides[k][a];
                }
            }
        }
    }
}
