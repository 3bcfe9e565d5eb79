package dev.loftq.core.ref;

import static dev.loftq.core.testkit.FloatAssertions.assertSameBits;

import dev.loftq.core.testkit.LoftqArbitraries;
import dev.loftq.core.testkit.LoftqArbitraries.Distribution;
import net.jqwik.api.Example;

/**
 * The tiled, multi-threaded matmul against the naive float32 {@code i-p-j} loop, bit for bit, on
 * shapes that cross the {@link MatMul#KC} and {@link MatMul#NC} tile edges (the contract kit's
 * matrices are smaller than a tile) and on skinny products, which take the transposed path.
 */
class MatMulTest {
    private static final int[] WIDE = {37, MatMul.KC * 2 + 3, MatMul.NC + 77};
    private static final int[] SKINNY = {MatMul.NC + 201, MatMul.KC + 5, 17};

    @Example
    void plainProductMatchesTheNaiveLoop() {
        check(WIDE, false, false);
        check(SKINNY, false, false);
    }

    @Example
    void transposedAMatchesTheNaiveLoop() {
        check(WIDE, true, false);
        check(SKINNY, true, false);
    }

    @Example
    void transposedBMatchesTheNaiveLoop() {
        check(WIDE, false, true);
        check(SKINNY, false, true);
    }

    @Example
    void bothTransposedMatchesTheNaiveLoop() {
        check(WIDE, true, true);
        check(SKINNY, true, true);
    }

    private static void check(int[] mkn, boolean transposeA, boolean transposeB) {
        int m = mkn[0];
        int k = mkn[1];
        int n = mkn[2];
        float[] a = LoftqArbitraries.values(Distribution.HEAVY_TAILED, m, k, 1);
        float[] b = LoftqArbitraries.values(Distribution.GAUSSIAN, k, n, 2);
        float[] expected = naive(a, transposeA, b, transposeB, m, k, n);
        float[] got = MatMul.multiply(a, transposeA, b, transposeB, m, k, n);
        assertSameBits("matmul " + m + "x" + k + "x" + n + " transposeA=" + transposeA
                + " transposeB=" + transposeB, expected, got);
    }

    /** c[i, j] = Σ_p op(a)[i, p]·op(b)[p, j] summed in float32 for ascending p from 0. */
    private static float[] naive(float[] a, boolean transposeA, float[] b, boolean transposeB,
            int m, int k, int n) {
        float[] c = new float[m * n];
        for (int i = 0; i < m; i++) {
            for (int p = 0; p < k; p++) {
                float av = transposeA ? a[p * m + i] : a[i * k + p];
                for (int j = 0; j < n; j++) {
                    float bv = transposeB ? b[j * k + p] : b[p * n + j];
                    c[i * n + j] += av * bv;
                }
            }
        }
        return c;
    }
}
