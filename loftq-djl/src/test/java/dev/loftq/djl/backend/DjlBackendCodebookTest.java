package dev.loftq.djl.backend;

import static dev.loftq.djl.backend.Oracles.assertBits;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.tensor.BucketTable;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.HostKernels;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.ScaleMode;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The coarse codebook kernels of the DJL backend against {@link HostKernels}, bit for bit, once per
 * {@link KernelPlacement} and once with tiny transfer chunks (see the subclasses).
 */
abstract class DjlBackendCodebookTest {
    /** NF4 code values (bitsandbytes), ascending. */
    static final float[] NF4 = {-1f, -0.6961928f, -0.52507305f, -0.3949175f, -0.28444138f,
        -0.18477343f, -0.09105004f, 0f, 0.0795803f, 0.1609302f, 0.2461123f, 0.33791524f,
        0.44070983f, 0.562617f, 0.72295684f, 1f};

    private DjlBackend backend;
    private TensorScope scope;

    /** The backend of this run: a placement of the coarse kernels and a transfer chunk size. */
    abstract DjlBackend newBackend();

    @BeforeEach
    void openScope() {
        backend = newBackend();
        scope = backend.newScope();
    }

    @AfterEach
    void closeScope() {
        scope.close();
        backend.close();
    }

    /** Shapes and block sizes: single element, fewer elements than a block, non-multiples. */
    static Stream<Arguments> blocked() {
        return Stream.of(Arguments.of(new int[] {}, 64), Arguments.of(new int[] {1, 1}, 1),
                Arguments.of(new int[] {7}, 3), Arguments.of(new int[] {5, 13}, 64),
                Arguments.of(new int[] {4, 64}, 64), Arguments.of(new int[] {3, 100}, 64),
                Arguments.of(new int[] {33, 129}, 256), Arguments.of(new int[] {2, 3, 10}, 7));
    }

    /** Data with a zero block, a NaN, infinities and a spike, beside normals. */
    static float[] blockData(long seed, int n) {
        float[] v = Oracles.data(seed, n);
        if (n > 70) {
            java.util.Arrays.fill(v, 64, 70, 0f);
            v[65] = -0f;
        }
        return v;
    }

    static float[] midpoints(float[] values) {
        float[] t = new float[values.length - 1];
        for (int i = 0; i < t.length; i++) {
            t[i] = (values[i] + values[i + 1]) / 2f;
        }
        return t;
    }

    @ParameterizedTest
    @MethodSource("blocked")
    void blockAbsMaxMatchesHostKernels(int[] shape, int blockSize) {
        int n = Oracles.numel(shape);
        float[] v = blockData(1, n);
        float[] expected = new float[(n + blockSize - 1) / blockSize];
        HostKernels.blockAbsMax(v, n, blockSize, expected);
        Tensor got = scope.blockAbsMax(scope.fromHost(v, shape), blockSize);
        assertArrayEquals(new int[] {expected.length}, got.shape());
        assertBits(expected, scope.toFloatArray(got), "blockAbsMax " + n + "/" + blockSize);
    }

    @Test
    void blockAbsMaxOfAllZeroAndNegativeZeroBlocksIsPlusZero() {
        float[] v = {-0f, -0f, 0f, -0f, -3f, Float.NaN};
        assertBits(new float[] {0f, 0f, Float.NaN}, scope.toFloatArray(scope.blockAbsMax(
                scope.fromHost(v, 6), 2)), "zero blocks");
    }

    @ParameterizedTest
    @MethodSource("blocked")
    void encodeMatchesHostKernelsInBothModes(int[] shape, int blockSize) {
        int n = Oracles.numel(shape);
        float[] v = blockData(2, n);
        int nb = (n + blockSize - 1) / blockSize;
        float[] scale = new float[nb];
        HostKernels.blockAbsMax(v, n, blockSize, scale);
        BucketTable nf4 = BucketTable.identityCodes(midpoints(NF4));
        int[] codes = new int[8];
        for (int i = 0; i < 8; i++) {
            codes[i] = 7 - i;
        }
        BucketTable custom = BucketTable.of(new float[] {-0.5f, -0.1f, 0f, 0.1f, 0.2f, 0.5f, 0.9f},
                codes, 200);
        Tensor x = scope.fromHost(v, shape);
        Tensor s = scope.fromHost(scale, nb);
        for (ScaleMode mode : ScaleMode.values()) {
            for (BucketTable table : new BucketTable[] {nf4, custom}) {
                byte[] expected = new byte[n];
                HostKernels.encode(v, n, scale, blockSize, mode, table, expected);
                Tensor got = scope.encode(x, s, blockSize, mode, table);
                assertEquals(DType.UINT8, got.dtype());
                assertArrayEquals(shape, got.shape());
                assertArrayEquals(expected, scope.toByteArray(got), "encode " + mode + " " + table);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("blocked")
    void decodeAndDecodeResidualMatchHostKernels(int[] shape, int blockSize) {
        int n = Oracles.numel(shape);
        SplittableRandom r = new SplittableRandom(3);
        byte[] codes = new byte[n];
        for (int i = 0; i < n; i++) {
            // Codes past the table's end are rejected (see the backend contract kit).
            codes[i] = (byte) r.nextInt(16);
        }
        int nb = (n + blockSize - 1) / blockSize;
        float[] scale = Oracles.data(4, nb);
        float[] x = Oracles.data(6, n);
        float[] decoded = new float[n];
        HostKernels.decode(codes, n, NF4, scale, blockSize, decoded);
        float[] residual = new float[n];
        HostKernels.decodeResidual(x, codes, n, NF4, scale, blockSize, residual);
        Tensor c = scope.fromHostBytes(codes, shape);
        Tensor table = scope.fromHost(NF4, 16);
        Tensor s = scope.fromHost(scale, nb);
        Tensor got = scope.decode(c, table, s, blockSize);
        Tensor gotResidual = scope.decodeResidual(scope.fromHost(x, shape),
                scope.reshape(c, n), table, s, blockSize);
        assertArrayEquals(shape, got.shape());
        assertArrayEquals(shape, gotResidual.shape());
        assertBits(decoded, scope.toFloatArray(got), "decode " + n + "/" + blockSize);
        assertBits(residual, scope.toFloatArray(gotResidual),
                "decodeResidual " + n + "/" + blockSize);
    }

    @Test
    void decodeWithAFullByteTable() {
        float[] table = Oracles.data(5, 300);
        byte[] codes = new byte[256];
        for (int i = 0; i < 256; i++) {
            codes[i] = (byte) i;
        }
        float[] scale = {1.5f, -2f, Float.POSITIVE_INFINITY, 0f};
        float[] expected = new float[256];
        HostKernels.decode(codes, 256, table, scale, 64, expected);
        Tensor got = scope.decode(scope.fromHostBytes(codes, 256), scope.fromHost(table, 300),
                scope.fromHost(scale, 4), 64);
        assertBits(expected, scope.toFloatArray(got), "decode 256-entry table");
    }

    @Test
    void roundTripEncodeDecodeOfNf4() {
        int n = 1000;
        float[] v = Oracles.normals(6, n);
        Tensor x = scope.fromHost(v, 10, 100);
        Tensor absmax = scope.blockAbsMax(x, 64);
        Tensor codes = scope.encode(x, absmax, 64, ScaleMode.MULTIPLY_RECIPROCAL,
                BucketTable.identityCodes(midpoints(NF4)));
        Tensor back = scope.decode(codes, scope.fromHost(NF4, 16), absmax, 64);
        float[] y = scope.toFloatArray(back);
        float[] am = scope.toFloatArray(absmax);
        for (int i = 0; i < n; i++) {
            assertTrue(Math.abs(v[i] - y[i]) <= 0.17f * am[i / 64], "element " + i);
        }
    }

    @Test
    void sumOfSquaresAccumulatesInDouble() {
        int n = 5 * 39323;
        float[] v = Oracles.normals(7, n);
        double expected = 0;
        for (float f : v) {
            expected += (double) f * f;
        }
        assertEquals(expected, scope.sumOfSquares(scope.fromHost(v, 5, n / 5)), expected * 1e-12);
        assertEquals(expected, scope.sumOfSquares(scope.transpose(scope.fromHost(v, 5, n / 5))),
                expected * 1e-12);
        assertEquals(6.25, scope.sumOfSquares(scope.fromHost(new float[] {2.5f})));
        assertEquals(0.0, scope.sumOfSquares(scope.fromHost(new float[0], 0)));
        assertTrue(Double.isNaN(scope.sumOfSquares(scope.fromHost(new float[] {1f, Float.NaN},
                2))));
        assertEquals(Double.POSITIVE_INFINITY, scope.sumOfSquares(scope.fromHost(
                new float[] {1f, Float.NEGATIVE_INFINITY}, 2)));
        // A float32 accumulator would lose this: 1e8 + 16 * 1 in float32 is 1e8.
        float[] big = new float[17];
        big[0] = 1e4f;
        java.util.Arrays.fill(big, 1, 17, 1f);
        assertEquals(1e8 + 16, scope.sumOfSquares(scope.fromHost(big, 17)));
    }

    static Stream<Arguments> packCases() {
        Stream.Builder<Arguments> b = Stream.builder();
        for (int bits : new int[] {1, 2, 3, 4, 8}) {
            for (PackOrder order : PackOrder.values()) {
                for (int n : new int[] {1, 5, 8, 13, 64, 1001}) {
                    b.add(Arguments.of(bits, order, n));
                }
            }
        }
        return b.build();
    }

    @ParameterizedTest
    @MethodSource("packCases")
    void packAndUnpackMatchHostKernels(int bits, PackOrder order, int n) {
        SplittableRandom r = new SplittableRandom(bits * 31L + n);
        byte[] codes = new byte[n];
        for (int i = 0; i < n; i++) {
            codes[i] = (byte) r.nextInt(1 << bits);
        }
        int pad = (1 << bits) - 1;
        byte[] expected = new byte[HostKernels.packedLength(n, bits)];
        HostKernels.pack(codes, n, bits, order, pad, expected);
        Tensor packed = scope.pack(scope.fromHostBytes(codes, n), bits, order, pad);
        assertArrayEquals(new int[] {expected.length}, packed.shape());
        assertArrayEquals(expected, scope.toByteArray(packed),
                "pack " + bits + " " + order + " " + n);

        Tensor unpacked = scope.unpack(packed, bits, order, n);
        assertArrayEquals(codes, scope.toByteArray(unpacked),
                "unpack " + bits + " " + order + " " + n);
        int fewer = n / 2;
        byte[] head = new byte[fewer];
        HostKernels.unpack(expected, bits, order, fewer, head);
        assertArrayEquals(head, scope.toByteArray(scope.unpack(packed, bits, order, fewer)),
                "unpack prefix");
    }

    @Test
    void packOfTwoDimensionalCodesUsesRowMajorOrder() {
        byte[] codes = {1, 2, 3, 4, 5, 6};
        Tensor packed = scope.pack(scope.transpose(scope.fromHostBytes(codes, 3, 2)), 4,
                PackOrder.MSB_FIRST, 0);
        // transpose of [[1,2],[3,4],[5,6]] is [[1,3,5],[2,4,6]]
        assertArrayEquals(new byte[] {0x13, 0x52, 0x46}, scope.toByteArray(packed));
    }

    @Test
    void gatherLooksUpAnyShape() {
        byte[] codes = {0, 15, 7, 3, 3, 9};
        Tensor got = scope.gather(scope.fromHost(NF4, 16), scope.fromHostBytes(codes, 2, 3));
        assertArrayEquals(new int[] {2, 3}, got.shape());
        float[] expected = new float[6];
        for (int i = 0; i < 6; i++) {
            expected[i] = NF4[codes[i]];
        }
        assertBits(expected, scope.toFloatArray(got), "gather");
        Tensor scalar = scope.gather(scope.fromHost(NF4, 16),
                scope.fromHostBytes(new byte[] {(byte) 15}));
        assertEquals(0, scalar.rank());
        assertEquals(1f, scope.item(scalar));
    }

    @Test
    void codebookArgumentErrorsNameTheProblem() {
        Tensor table = scope.fromHost(NF4, 16);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> scope.gather(table, scope.fromHostBytes(new byte[] {1, (byte) 200}, 2)));
        assertTrue(e.getMessage().contains("gather") && e.getMessage().contains("200")
                && e.getMessage().contains("16"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> scope.pack(scope.fromHostBytes(new byte[] {1, 17}, 2), 4, PackOrder.MSB_FIRST,
                0));
        assertTrue(e.getMessage().contains("17") && e.getMessage().contains("4 bits"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> scope.pack(scope.fromHostBytes(new byte[] {1}, 1), 5, PackOrder.MSB_FIRST,
                0));
        assertTrue(e.getMessage().contains("bits") && e.getMessage().contains("5"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> scope.unpack(scope.fromHostBytes(new byte[] {1}, 1), 4, PackOrder.LSB_FIRST,
                3));
        assertTrue(e.getMessage().contains("unpack") && e.getMessage().contains("3 codes"),
                e.getMessage());
        Tensor x = scope.fromHost(new float[100], 100);
        e = assertThrows(IllegalArgumentException.class, () -> scope.encode(x,
                scope.fromHost(new float[1], 1),
                64, ScaleMode.DIVIDE, BucketTable.identityCodes(midpoints(NF4))));
        assertTrue(e.getMessage().contains("scale") && e.getMessage().contains("[2]"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> scope.blockAbsMax(x, 0));
        assertTrue(e.getMessage().contains("blockSize"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> scope.blockAbsMax(scope.fromHost(new float[0], 0), 64));
        assertTrue(e.getMessage().contains("at least 1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> scope.decode(scope.fromHost(new float[2], 2), table,
                scope.fromHost(new float[1], 1), 64));
        assertTrue(e.getMessage().contains("codes must be UINT8"), e.getMessage());
    }
}
