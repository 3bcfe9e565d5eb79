package dev.loftq.core.ref;

import dev.loftq.core.tensor.Parallel;

/**
 * Blocked, multi-threaded float32 matrix product {@code C = op(A)·op(B)} over row-major arrays.
 *
 * <p>C is computed in tiles of {@link #NC} columns by {@link #KC} inner steps. Within a tile each
 * row of C is updated as {@code c[i, j0:j0+nc] += op(A)[i, p] * op(B)[p, j0:j0+nc]} for p in
 * ascending order (an axpy on a row segment that stays in L1, which the JIT vectorises); rows are
 * split across threads. A transposed A is read in place (one scalar per axpy). A transposed B is
 * copied one tile at a time into a row-major panel so the axpy stays contiguous; an untransposed
 * B is read in place. A product with few columns and more rows is computed as
 * {@code (op(B)ᵀ·op(A)ᵀ)ᵀ} so the long side of C is the one the inner loop runs along.
 *
 * <p>Every element of C is the float32 sum of its products in ascending inner order starting from
 * 0, exactly the naive {@code i-p-j} loop, whatever the tiling and thread count.
 */
final class MatMul {
    private MatMul() {}

    /** Columns of C per tile: a 2 KiB row segment of C stays in L1. */
    static final int NC = 512;
    /** Inner steps per tile: a transposed-B panel of KC x NC floats (512 KiB) stays in L2. */
    static final int KC = 256;
    /**
     * Columns of C below which a product with more rows than columns is computed transposed: an
     * inner loop of a few dozen floats is too short for the JIT's unrolled vector loop.
     */
    static final int SKINNY = 128;
    /** Multiply-adds below which a tile stays on the calling thread. */
    private static final int GRAIN_MULADDS = 1 << 17;

    /**
     * C [m, n] = op(A)·op(B), op(A) [m, k], op(B) [k, n]. A is stored [m, k], or [k, m] when
     * {@code transposeA}; B is stored [k, n], or [n, k] when {@code transposeB}. a, b: not
     * modified. Returns a new array; zeros when k is 0.
     *
     * @throws IllegalStateException if an array length does not match its dimensions
     */
    static float[] multiply(float[] a, boolean transposeA, float[] b, boolean transposeB, int m,
            int k, int n) {
        if ((long) m * k != a.length || (long) k * n != b.length) {
            throw new IllegalStateException("matmul: arrays of " + a.length + " and " + b.length
                    + " elements do not match m=" + m + ", k=" + k + ", n=" + n);
        }
        if (n < SKINNY && m > n) {
            // C = (op(B)ᵀ·op(A)ᵀ)ᵀ: the long side of C becomes the vectorised inner loop
            float[] ct = tiled(b, !transposeB, a, !transposeA, n, k, m);
            return Layout.transpose(ct, n, m);
        }
        return tiled(a, transposeA, b, transposeB, m, k, n);
    }

    /** {@link #multiply} with the row segments of C as the inner loop. */
    private static float[] tiled(float[] a, boolean transposeA, float[] b, boolean transposeB,
            int m, int k, int n) {
        float[] c = new float[Math.multiplyExact(m, n)];
        if (m == 0 || n == 0 || k == 0) {
            return c;
        }
        // op(A)[i, p] = a[i * aRow + p * aDepth]
        int aRow = transposeA ? 1 : k;
        int aDepth = transposeA ? m : 1;
        float[] panel = transposeB ? new float[Math.min(KC, k) * Math.min(NC, n)] : null;
        for (int j0 = 0; j0 < n; j0 += NC) {
            int nc = Math.min(NC, n - j0);
            for (int p0 = 0; p0 < k; p0 += KC) {
                int kc = Math.min(KC, k - p0);
                float[] bTile;
                int bOff;
                int bStride;
                if (transposeB) {
                    packTransposed(b, k, j0, nc, p0, kc, panel);
                    bTile = panel;
                    bOff = 0;
                    bStride = nc;
                } else {
                    bTile = b;
                    bOff = p0 * n + j0;
                    bStride = n;
                }
                Tile tile = new Tile(a, aRow, aDepth, p0, kc, bTile, bOff, bStride, c, n, j0, nc);
                Parallel.forRange(m, Math.max(1, GRAIN_MULADDS / (kc * nc)), 1, tile::rows);
            }
        }
        return c;
    }

    /** panel[p, jj] = B[j0 + jj, p0 + p] for B stored [n, k]: a row-major kc x nc panel. */
    private static void packTransposed(float[] b, int k, int j0, int nc, int p0, int kc,
            float[] panel) {
        for (int jj = 0; jj < nc; jj++) {
            int src = (j0 + jj) * k + p0;
            for (int p = 0; p < kc; p++) {
                panel[p * nc + jj] = b[src + p];
            }
        }
    }

    /** One tile of C: columns [j0, j0 + nc), inner steps [p0, p0 + kc). */
    private static final class Tile {
        private final float[] a;
        private final int aRow;
        private final int aDepth;
        private final int p0;
        private final int kc;
        private final float[] b;
        private final int bOff;
        private final int bStride;
        private final float[] c;
        private final int n;
        private final int j0;
        private final int nc;

        Tile(float[] a, int aRow, int aDepth, int p0, int kc, float[] b, int bOff, int bStride,
                float[] c, int n, int j0, int nc) {
            this.a = a;
            this.aRow = aRow;
            this.aDepth = aDepth;
            this.p0 = p0;
            this.kc = kc;
            this.b = b;
            this.bOff = bOff;
            this.bStride = bStride;
            this.c = c;
            this.n = n;
            this.j0 = j0;
            this.nc = nc;
        }

        /** Updates rows [from, to) of the tile. */
        void rows(int from, int to) {
            float[] a = this.a;
            float[] b = this.b;
            float[] c = this.c;
            int nc = this.nc;
            for (int i = from; i < to; i++) {
                int cOff = i * n + j0;
                int aOff = i * aRow + p0 * aDepth;
                for (int p = 0; p < kc; p++) {
                    float av = a[aOff + p * aDepth];
                    int bo = bOff + p * bStride;
                    for (int j = 0; j < nc; j++) {
                        c[cOff + j] += av * b[bo + j];
                    }
                }
            }
        }
    }
}
