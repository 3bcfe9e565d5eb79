package dev.loftq.core.ref;

import static dev.loftq.core.testkit.FloatAssertions.assertSameBits;

import dev.loftq.core.testkit.LoftqArbitraries;
import dev.loftq.core.testkit.LoftqArbitraries.Distribution;
import net.jqwik.api.Example;

/**
 * The tiled, multi-threaded matmul against the naive float32 {@code i-p-j} loop, bit for bit, on
 * shapes that cross the {@link MatMul#KC} and {@link MatMul#NC} tile edges (the contract kit's
 * matrices are smaller than a tile).
 */
class MatMulTest {
    private static final int M = 37;
    private static final int K = MatMul.KC * 2 + 3;
    private static final int N = MatMul.NC + 77;

    @Example
    void plainProductMatchesTheNaiveLoop() {
        check(false, false);
    }

    @Example
    void transposedAMatchesTheNaiveLoop() {
        check(true, false);
    }

    @Example
    void transposedBMatchesTheNaiveLoop() {
        check(false, true);
    }

    @Example
    void bothTransposedMatchesTheNaiveLoop() {
        check(true, true);
    }

    private static void check(boolean transposeA, boolean transposeB) {
        float[] a = LoftqArbitraries.values(Distribution.HEAVY_TAILED, M, K, 1);
        float[] b = LoftqArbitraries.values(Distribution.GAUSSIAN, K, N, 2);
        float[] expected = naive(a, transposeA, b, transposeB);
        float[] got = MatMul.multiply(a, transposeA, b, transposeB, M, K, N);
        assertSameBits("matmul " + M + "x" + K + "x" + N + " transposeA=" + transposeA
                + " transposeB=" + transposeB, expected, got);
    }

    /** c[i, j] = Σ_p op(a)[i, p]·op(b)[p, j] summed in float32 for ascending p from 0. */
    private static float[] naive(float[] a, boolean transposeA, float[] b, boolean transposeB) {
        float[] c = new float[M * N];
        for (int i = 0; i < M; i++) {
            for (int p = 0; p < K; p++) {
                float av = transposeA ? a[p * M + i] : a[i * K + p];
                for (int j = 0; j < N; j++) {
                    float bv = transposeB ? b[j * K + p] : b[p * N + j];
                    c[i * N + j] += av * bv;
                }
            }
        }
        return c;
    }
}
