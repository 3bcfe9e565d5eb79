package dev.loftq.djl.backend;

import static dev.loftq.djl.backend.Oracles.assertBits;
import static dev.loftq.djl.backend.Oracles.assertClose;
import static dev.loftq.djl.backend.Oracles.assertValues;
import static dev.loftq.djl.backend.Oracles.data;
import static dev.loftq.djl.backend.Oracles.normals;
import static dev.loftq.djl.backend.Oracles.numel;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.HostRandom;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.SplittableRandom;
import java.util.function.BinaryOperator;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every non-codebook op of the DJL backend against plain Java loops; bit-exact where the SPI is.
 */
class DjlBackendOpsTest {
    private static DjlBackend backend;
    private TensorScope scope;

    @BeforeAll
    static void openBackend() {
        backend = DjlBackend.cpu();
    }

    @AfterAll
    static void closeBackend() {
        backend.close();
    }

    @BeforeEach
    void openScope() {
        scope = backend.newScope();
    }

    @AfterEach
    void closeScope() {
        scope.close();
    }

    static Stream<int[]> shapes() {
        return Stream.of(new int[] {}, new int[] {1, 1}, new int[] {7}, new int[] {3, 5},
                new int[] {2, 3, 4}, new int[] {4, 1031});
    }

    static Stream<Arguments> broadcastPairs() {
        return Stream.of(
                Arguments.of(new int[] {3, 5}, new int[] {3, 5}),
                Arguments.of(new int[] {3, 5}, new int[] {5}),
                Arguments.of(new int[] {3, 1}, new int[] {1, 5}),
                Arguments.of(new int[] {}, new int[] {2, 3}),
                Arguments.of(new int[] {2, 3}, new int[] {}),
                Arguments.of(new int[] {2, 1, 4}, new int[] {3, 1}),
                Arguments.of(new int[] {1, 1}, new int[] {1, 1}),
                Arguments.of(new int[] {40, 64}, new int[] {40, 64}));
    }

    private Tensor t(float[] v, int... shape) {
        return scope.fromHost(v, shape);
    }

    // ---- creation and host copies -------------------------------------------------------------

    @ParameterizedTest
    @MethodSource("shapes")
    void fromHostRoundTripsEveryBit(int[] shape) {
        float[] v = data(1, numel(shape));
        Tensor x = t(v, shape);
        assertArrayEquals(shape, x.shape());
        assertEquals(DType.FLOAT32, x.dtype());
        assertBits(v, scope.toFloatArray(x), "fromHost");
    }

    @Test
    void fromHostBytesKeepsUnsignedValues() {
        byte[] v = new byte[256];
        for (int i = 0; i < 256; i++) {
            v[i] = (byte) i;
        }
        Tensor x = scope.fromHostBytes(v, 16, 16);
        assertEquals(DType.UINT8, x.dtype());
        assertArrayEquals(v, scope.toByteArray(x));
        float[] asFloat = scope.toFloatArray(scope.cast(x, DType.FLOAT32));
        assertEquals(255f, asFloat[255]);
        assertEquals(128f, asFloat[128]);
    }

    @Test
    void emptyAndScalarTensors() {
        Tensor empty = t(new float[0], 0, 3);
        assertArrayEquals(new int[] {0, 3}, empty.shape());
        assertEquals(0, scope.toFloatArray(empty).length);
        assertEquals(0, scope.toByteArray(scope.fromHostBytes(new byte[0], 0)).length);
        Tensor s = t(new float[] {2.5f});
        assertEquals(0, s.rank());
        assertEquals(2.5f, scope.item(s));
        assertEquals(0.0, scope.sumOfSquares(empty));
        assertArrayEquals(new int[] {0}, scope.sumLast(empty).shape());
    }

    @Test
    void fullAndRandomNormal() {
        assertBits(new float[] {-0f, -0f, -0f}, scope.toFloatArray(scope.full(-0f, 3)), "full");
        assertEquals(0, scope.full(7f).rank());
        int[] shape = {33, 17};
        float[] expected = HostRandom.normal(42, 0.5f, 2f, 33 * 17);
        assertBits(expected, scope.toFloatArray(scope.randomNormal(42, 0.5f, 2f, shape)),
                "randomNormal");
    }

    @Test
    void uploadsDoNotShareTheStagingBuffer() {
        // On the CPU, from_blob borrows the staging buffer: each upload must own a copy.
        float[] a = data(3, 5000);
        float[] b = data(4, 5000);
        Tensor ta = t(a, 5000);
        Tensor tb = t(b, 5000);
        assertBits(a, scope.toFloatArray(ta), "first upload after a second one");
        assertBits(b, scope.toFloatArray(tb), "second upload");
    }

    // ---- shape ops ------------------------------------------------------------------------------

    @Test
    void reshapeTransposeAndNonContiguousDownloads() {
        float[] v = data(5, 12);
        Tensor x = t(v, 3, 4);
        assertArrayEquals(new int[] {4, 3}, scope.reshape(x, 4, -1).shape());
        assertArrayEquals(new int[] {}, scope.reshape(t(new float[] {1f}, 1, 1)).shape());
        Tensor tr = scope.transpose(x);
        assertArrayEquals(new int[] {4, 3}, tr.shape());
        assertBits(Oracles.transpose(v, 3, 4), scope.toFloatArray(tr), "transpose");
        // A reshape of a transposed view copies in row-major order of the view.
        assertBits(Oracles.transpose(v, 3, 4), scope.toFloatArray(scope.reshape(tr, 12)),
                "reshape(tr)");
        assertBits(v, scope.toFloatArray(scope.transpose(tr)), "transpose twice");
        Tensor bytes = scope.fromHostBytes(new byte[] {1, 2, 3, 4, 5, 6}, 2, 3);
        assertArrayEquals(new byte[] {1, 4, 2, 5, 3, 6}, scope.toByteArray(scope.transpose(bytes)));
    }

    @Test
    void slicesIncludingEmptyAndStrided() {
        float[] v = data(6, 20);
        Tensor x = t(v, 4, 5);
        float[] rows = new float[10];
        System.arraycopy(v, 5, rows, 0, 10);
        assertBits(rows, scope.toFloatArray(scope.sliceRows(x, 1, 3)), "sliceRows");
        assertArrayEquals(new int[] {0, 5}, scope.sliceRows(x, 2, 2).shape());
        float[] cols = new float[8];
        for (int i = 0; i < 4; i++) {
            cols[2 * i] = v[i * 5 + 2];
            cols[2 * i + 1] = v[i * 5 + 3];
        }
        assertBits(cols, scope.toFloatArray(scope.sliceColumns(x, 2, 4)), "sliceColumns");
        float[] col = {v[4], v[9], v[14], v[19]};
        assertBits(col, scope.toFloatArray(scope.sliceColumns(x, 4, 5)),
                "one column (strided view)");
        assertArrayEquals(new int[] {4, 0}, scope.sliceColumns(x, 0, 0).shape());
        Tensor x3 = t(data(7, 24), 2, 3, 4);
        assertArrayEquals(new int[] {1, 3, 4}, scope.sliceRows(x3, 1, 2).shape());
        Tensor all = scope.sliceRows(x, 0, 4);
        assertBits(v, scope.toFloatArray(all), "full slice");
        assertTrue(x.isAlive());
    }

    @Test
    void concatOnEveryAxisAndDtype() {
        float[] a = data(8, 6);
        float[] b = data(9, 4);
        Tensor ta = t(a, 2, 3);
        Tensor tb = t(b, 2, 2);
        float[] expected = {a[0], a[1], a[2], b[0], b[1], a[3], a[4], a[5], b[2], b[3]};
        assertBits(expected, scope.toFloatArray(scope.concat(1, ta, tb)), "concat axis 1");
        assertBits(expected, scope.toFloatArray(scope.concat(-1, ta, tb)), "concat axis -1");
        float[] rows = new float[12];
        System.arraycopy(a, 0, rows, 0, 6);
        System.arraycopy(a, 0, rows, 6, 6);
        assertBits(rows, scope.toFloatArray(scope.concat(0, ta, ta)), "concat axis 0");
        assertBits(a, scope.toFloatArray(scope.concat(0, ta)), "concat of one part");
        Tensor u = scope.fromHostBytes(new byte[] {1, 2}, 2);
        assertArrayEquals(new byte[] {1, 2, 1, 2}, scope.toByteArray(scope.concat(0, u, u)));
    }

    @Test
    void castsClampRoundAndMapNanToZero() {
        float[] v = {-1f, -0f, 0.5f, 1.5f, 2.5f, 254.5f, 255.5f, 300f, Float.NaN,
                Float.POSITIVE_INFINITY,
            Float.NEGATIVE_INFINITY, 127.49f};
        byte[] expected = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            expected[i] = (byte) (int) Math.rint(Math.min(Math.max(v[i], 0f), 255f));
        }
        Tensor u = scope.cast(t(v, v.length), DType.UINT8);
        assertEquals(DType.UINT8, u.dtype());
        assertArrayEquals(expected, scope.toByteArray(u));
        Tensor mask = scope.gt(t(new float[] {1f, -1f}, 2), t(new float[] {0f}, 1));
        assertArrayEquals(new byte[] {1, 0}, scope.toByteArray(mask));
        assertBits(new float[] {1f, 0f}, scope.toFloatArray(scope.cast(mask, DType.FLOAT32)),
                "bool->f32");
        assertArrayEquals(new byte[] {1, 0}, scope.toByteArray(scope.cast(mask, DType.UINT8)));
        assertBits(v, scope.toFloatArray(scope.cast(t(v, v.length), DType.FLOAT32)),
                "same-type cast");
    }

    // ---- elementwise: bit-exact against Java float arithmetic -----------------------------------

    @ParameterizedTest
    @MethodSource("broadcastPairs")
    void binaryArithmeticIsBitExact(int[] sa, int[] sb) {
        float[] a = data(10, numel(sa));
        float[] b = data(11, numel(sb));
        Tensor ta = t(a, sa);
        Tensor tb = t(b, sb);
        check("add", sa, sb, a, b, Float::sum, scope::add, ta, tb);
        check("sub", sa, sb, a, b, (x, y) -> x - y, scope::sub, ta, tb);
        check("mul", sa, sb, a, b, (x, y) -> x * y, scope::mul, ta, tb);
        check("div", sa, sb, a, b, (x, y) -> x / y, scope::div, ta, tb);
        check("maximum", sa, sb, a, b, Math::max, scope::maximum, ta, tb);
        check("minimum", sa, sb, a, b, Math::min, scope::minimum, ta, tb);
        Tensor lt = scope.lt(ta, tb);
        assertEquals(DType.BOOL, lt.dtype());
        checkBool("gt", Oracles.broadcast(a, sa, b, sb, (x, y) -> x > y ? 1 : 0), scope.gt(ta, tb));
        checkBool("lt", Oracles.broadcast(a, sa, b, sb, (x, y) -> x < y ? 1 : 0), lt);
        checkBool("eq", Oracles.broadcast(a, sa, b, sb, (x, y) -> x == y ? 1 : 0), scope.eq(ta,
                tb));
    }

    private void check(String op, int[] sa, int[] sb, float[] a, float[] b, Oracles.FloatOp oracle,
            BinaryOperator<Tensor> f, Tensor ta, Tensor tb) {
        float[] expected = Oracles.broadcast(a, sa, b, sb, oracle);
        Tensor r = f.apply(ta, tb);
        assertArrayEquals(dev.loftq.core.tensor.Shapes.broadcast(op, sa, sb), r.shape(),
                op + " shape");
        assertBits(expected, scope.toFloatArray(r),
                op + " " + Oracles.shape(sa) + " " + Oracles.shape(sb));
    }

    private void checkBool(String op, float[] expected, Tensor r) {
        byte[] got = scope.toByteArray(r);
        for (int i = 0; i < expected.length; i++) {
            assertEquals((byte) expected[i], got[i], op + " element " + i);
        }
    }

    @Test
    void signedZerosFollowMathMaxAndMin() {
        // PyTorch alone gets these wrong (either zero), both in its scalar and its vector kernels.
        int n = 4096;
        float[] a = new float[n];
        float[] b = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (i & 1) == 0 ? -0f : 0f;
            b[i] = (i & 2) == 0 ? -0f : 0f;
        }
        int[] s = {n};
        check("maximum", s, s, a, b, Math::max, scope::maximum, t(a, n), t(b, n));
        check("minimum", s, s, a, b, Math::min, scope::minimum, t(a, n), t(b, n));
    }

    @ParameterizedTest
    @MethodSource("shapes")
    void unaryAndScalarOpsAreBitExact(int[] shape) {
        float[] v = data(12, numel(shape));
        Tensor x = t(v, shape);
        unary("abs", v, Math::abs, scope::abs, x);
        unary("neg", v, f -> -f, scope::neg, x);
        unary("sqrt", v, f -> (float) Math.sqrt(f), scope::sqrt, x);
        unary("round", v, f -> (float) Math.rint(f), scope::round, x);
        unary("add 0.1", v, f -> f + 0.1f, a -> scope.add(a, 0.1f), x);
        unary("mul 3.7", v, f -> f * 3.7f, a -> scope.mul(a, 3.7f), x);
        unary("div 3.7", v, f -> f / 3.7f, a -> scope.div(a, 3.7f), x);
        unary("div 0", v, f -> f / 0f, a -> scope.div(a, 0f), x);
        unary("clamp", v, f -> Math.min(Math.max(f, -2f), 3f), a -> scope.clamp(a, -2f, 3f), x);
        unary("clamp zero bounds", v, f -> Math.min(Math.max(f, 0f), 0f), a -> scope.clamp(a, 0f,
                0f), x);
        unary("clamp -0 lo", v, f -> Math.min(Math.max(f, -0f), 1f), a -> scope.clamp(a, -0f, 1f),
                x);
        unary("clamp -0 hi", v, f -> Math.min(Math.max(f, -1f), -0f), a -> scope.clamp(a, -1f, -0f),
                x);
    }

    private void unary(String op, float[] v, UnaryOperator<Float> oracle, UnaryOperator<Tensor> f,
            Tensor x) {
        float[] expected = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            expected[i] = oracle.apply(v[i]);
        }
        Tensor r = f.apply(x);
        assertArrayEquals(x.shape(), r.shape(), op + " shape");
        assertBits(expected, scope.toFloatArray(r), op);
    }

    @Test
    void sqrtIsCorrectlyRoundedAcrossAllExponents() {
        // PyTorch's own float32 sqrt is off by one ulp for ~1 value in 6; ours must never be.
        SplittableRandom r = new SplittableRandom(13);
        int n = 1 << 20;
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = Float.intBitsToFloat(r.nextInt(0, 0x7f800000));
        }
        float[] expected = new float[n];
        for (int i = 0; i < n; i++) {
            expected[i] = (float) Math.sqrt(v[i]);
        }
        assertBits(expected, scope.toFloatArray(scope.sqrt(t(v, n))), "sqrt");
    }

    @Test
    void sigmoidWithinOneUlpOfFloat64IncludingTails() {
        int n = 20001;
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = -110f + 220f * i / (n - 1);
        }
        float[] got = scope.toFloatArray(scope.sigmoid(t(v, n)));
        for (int i = 0; i < n; i++) {
            float expected = (float) (1.0 / (1.0 + Math.exp(-(double) v[i])));
            assertTrue(Oracles.ulps(expected, got[i]) <= 1,
                    "sigmoid(" + v[i] + ") = " + got[i] + ", float64 says " + expected);
        }
        float[] special = scope.toFloatArray(scope.sigmoid(t(new float[] {Float.NaN,
            Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, -0f}, 4)));
        assertBits(new float[] {Float.NaN, 1f, 0f, 0.5f}, special, "sigmoid specials");
    }

    @ParameterizedTest
    @MethodSource("broadcastPairs")
    void whereBroadcastsAllThree(int[] sa, int[] sb) {
        float[] a = data(14, numel(sa));
        float[] b = data(15, numel(sb));
        Tensor cond = scope.gt(t(a, sa), t(b, sb));
        float[] mask = Oracles.broadcast(a, sa, b, sb, (x, y) -> x > y ? 1 : 0);
        float[] zeros = new float[mask.length];
        Tensor got = scope.where(cond, t(a, sa), scope.full(-0f));
        float[] expected = new float[mask.length];
        float[] aB = Oracles.broadcast(a, sa, zeros, dev.loftq.core.tensor.Shapes.broadcast("w", sa,
                sb),
                (x, y) -> x);
        for (int i = 0; i < mask.length; i++) {
            expected[i] = mask[i] == 1 ? aB[i] : -0f;
        }
        assertBits(expected, scope.toFloatArray(got), "where");
    }

    // ---- reductions -----------------------------------------------------------------------------

    @ParameterizedTest
    @MethodSource("shapes")
    void lastAxisReductions(int[] shape) {
        if (shape.length == 0) {
            return;
        }
        int n = numel(shape);
        int last = shape[shape.length - 1];
        int rows = n / last;
        float[] v = data(16, n);
        v[0] = Float.NaN;
        Tensor x = t(v, shape);
        float[] max = new float[rows];
        float[] min = new float[rows];
        double[] sum = new double[rows];
        double[] mean = new double[rows];
        float[] finite = normals(17, n);
        for (int r = 0; r < rows; r++) {
            max[r] = Float.NEGATIVE_INFINITY;
            min[r] = Float.POSITIVE_INFINITY;
            for (int j = 0; j < last; j++) {
                max[r] = Math.max(max[r], v[r * last + j]);
                min[r] = Math.min(min[r], v[r * last + j]);
                sum[r] += finite[r * last + j];
            }
            mean[r] = sum[r] / last;
        }
        Tensor mx = scope.maxLast(x);
        int[] reduced = java.util.Arrays.copyOf(shape, shape.length - 1);
        assertArrayEquals(reduced, mx.shape());
        assertValues(max, scope.toFloatArray(mx), "maxLast");
        assertValues(min, scope.toFloatArray(scope.minLast(x)), "minLast");
        Tensor f = t(finite, shape);
        assertClose(sum, scope.toFloatArray(scope.sumLast(f)), 1e-5, "sumLast");
        assertClose(mean, scope.toFloatArray(scope.meanLast(f)), 1e-5, "meanLast");
    }

    // ---- matmul ---------------------------------------------------------------------------------

    static Stream<Arguments> matmulShapes() {
        return Stream.of(Arguments.of(1, 1, 1), Arguments.of(3, 4, 5), Arguments.of(64, 7, 1),
                Arguments.of(1, 33, 65), Arguments.of(130, 64, 17), Arguments.of(5, 0, 3));
    }

    @ParameterizedTest
    @MethodSource("matmulShapes")
    void matmulWithEveryTransposeCombination(int m, int k, int n) {
        float[] a = normals(19, m * k);
        float[] b = normals(20, k * n);
        double[] expected = Oracles.matmul(a, b, m, k, n);
        for (int flags = 0; flags < 4; flags++) {
            boolean ta = (flags & 1) != 0;
            boolean tb = (flags & 2) != 0;
            Tensor x = ta ? t(Oracles.transpose(a, m, k), k, m) : t(a, m, k);
            Tensor y = tb ? t(Oracles.transpose(b, k, n), n, k) : t(b, k, n);
            Tensor c = scope.matmul(x, ta, y, tb);
            assertArrayEquals(new int[] {m, n}, c.shape());
            assertClose(expected, scope.toFloatArray(c), 1e-5 * Math.max(1, Math.sqrt(k)),
                    "matmul " + m + "x" + k + "x" + n + " ta=" + ta + " tb=" + tb);
        }
    }
}
