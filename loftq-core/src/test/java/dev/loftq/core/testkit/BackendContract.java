package dev.loftq.core.testkit;

import static dev.loftq.core.testkit.FloatAssertions.assertSameBits;
import static dev.loftq.core.testkit.FloatAssertions.assertSameBytes;
import static dev.loftq.core.testkit.FloatAssertions.assertSameValues;
import static dev.loftq.core.testkit.FloatAssertions.assertShape;
import static dev.loftq.core.testkit.FloatAssertions.assertWithin;
import static dev.loftq.core.testkit.FloatAssertions.assertWithinUlps;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.ref.ReferenceBackend;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.BucketTable;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.HostKernels;
import dev.loftq.core.tensor.HostRandom;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.ScaleMode;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.core.testkit.LoftqArbitraries.Distribution;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalLong;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.function.Function;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.function.Executable;

/**
 * The backend contract test kit: every {@link TensorScope} operation of {@link #backend()} is
 * checked against a straightforward oracle written with plain loops ({@link Oracle}) and against
 * {@link #oracleBackend()} (the reference backend unless overridden), on arbitrary shapes (1 x 1,
 * tall, wide, rank 0 to 4, zero-size dimensions, sizes that are not multiples of 64) and value
 * distributions ({@link LoftqArbitraries.Distribution}). A backend module subclasses it and
 * implements {@link #backend()}.
 *
 * <p>Tolerances (see {@link FloatAssertions} for the comparison kinds):
 * <ul>
 *   <li><b>exact bits</b> (NaN payloads ignored): host copies, full, randomNormal (against
 *       {@link HostRandom}), reshape, transpose, slices, concat, cast, add, sub, mul, div (tensor
 *       and scalar), abs, neg, sqrt, round, gt, lt, eq, where, gather, blockAbsMax, encode,
 *       decode, pack, unpack;</li>
 *   <li><b>exact values</b> ({@code -0} and {@code +0} equal, since backends differ there):
 *       maximum, minimum, clamp, maxLast, minLast;</li>
 *   <li><b>sigmoid</b>: within {@value #SIGMOID_ULPS} ulps of the float64 result, or within
 *       {@link Float#MIN_NORMAL} absolutely (subnormal results may flush to zero);</li>
 *   <li><b>matmul</b>: {@code |c - exact| <= }{@value #SUM_REL_PER_SQRT_TERM}{@code · sqrt(k) ·
 *       Σ_p |a_ip·b_pj| + k · MIN_NORMAL}, exact being the double-precision product; against the
 *       oracle backend, twice that;</li>
 *   <li><b>sumLast</b> and <b>meanLast</b> over rows of length n: {@code |s - exact| <= }
 *       {@value #SUM_REL_PER_SQRT_TERM}{@code · sqrt(n) · Σ|x| + n · MIN_NORMAL} (divided by n
 *       for the mean); against the oracle backend, twice that;</li>
 *   <li><b>sumOfSquares</b>: relative {@value #SUM_OF_SQUARES_REL} of the double-precision sum
 *       (squares may be formed in float32, so inputs keep |x| well below 1.8e19).</li>
 * </ul>
 * Matmul and the sums are checked on the well-scaled distributions only (no overflow); every
 * other operation sees NaN, infinities, ±Float.MAX_VALUE, subnormals and signed zeros too.
 *
 * <p>Error checks assert the exception type and that the message names the operation and the
 * offending shapes or values as {@link Arrays#toString} and {@link String#valueOf} print them
 * (the formats of {@link dev.loftq.core.tensor.Shapes} and {@link dev.loftq.core.Checks}).
 */
public abstract class BackendContract {
    /** Relative tolerance of matmul and the sums, per square root of the number of terms. */
    public static final double SUM_REL_PER_SQRT_TERM = 1e-5;
    /** Relative tolerance of sumOfSquares. */
    public static final double SUM_OF_SQUARES_REL = 1e-6;
    /** Ulps of sigmoid from the float64 result. */
    public static final int SIGMOID_ULPS = 2;

    private Backend backendUnderTest;
    private Backend oracle;

    /** The backend under test. Called once per property run; may return a shared instance. */
    protected abstract Backend backend();

    /** The backend whose results the one under test must match; the reference backend. */
    protected Backend oracleBackend() {
        return new ReferenceBackend();
    }

    /**
     * The number of tensors (native arrays, for a native backend) currently owned by the open
     * {@code scope} and its open descendants, or empty when the backend cannot tell. When present
     * the kit checks that work done in a closed child scope leaves nothing behind in its parent.
     */
    protected OptionalLong liveTensorCount(TensorScope scope) {
        return OptionalLong.empty();
    }

    private Backend subject() {
        if (backendUnderTest == null) {
            backendUnderTest = backend();
        }
        return backendUnderTest;
    }

    private Backend reference() {
        if (oracle == null) {
            oracle = oracleBackend();
        }
        return oracle;
    }

    /** f in a fresh scope of {@code backend}, closed afterwards; f must return host data. */
    private static <R> R in(Backend backend, Function<TensorScope, R> f) {
        try (TensorScope s = backend.newScope()) {
            return f.apply(s);
        }
    }

    // ==== arbitraries ==========================================================================

    /** Small N-D tensors (rank 0 to 4, zero dims included) and matrices up to MAX_SIDE. */
    @Provide
    Arbitrary<HostTensor> anyTensors() {
        Arbitrary<HostTensor> small = LoftqArbitraries.tensors(LoftqArbitraries.shapes(4, 6));
        Arbitrary<HostTensor> matrices = LoftqArbitraries.matrices()
                .map(m -> new HostTensor(m.shape(), m.data()));
        return Arbitraries.frequencyOf(Tuple.of(3, small), Tuple.of(1, matrices));
    }

    /** Like {@link #anyTensors()} with finite values only (NaN would make every sum NaN). */
    @Provide
    Arbitrary<HostTensor> finiteTensors() {
        Arbitrary<HostTensor> small = LoftqArbitraries.tensors(LoftqArbitraries.shapes(4, 6),
                Distribution.finiteValues());
        Arbitrary<HostTensor> matrices = LoftqArbitraries.matrices(LoftqArbitraries.MAX_SIDE,
                LoftqArbitraries.MAX_SIDE, Distribution.finiteValues())
                .map(m -> new HostTensor(m.shape(), m.data()));
        return Arbitraries.frequencyOf(Tuple.of(3, small), Tuple.of(1, matrices));
    }

    /** Tensors of rank >= 1 whose last axis is not empty. */
    @Provide
    Arbitrary<HostTensor> rowTensors() {
        return rowTensors(Distribution.values());
    }

    @Provide
    Arbitrary<HostTensor> wellScaledRowTensors() {
        return rowTensors(Distribution.wellScaledValues());
    }

    private static Arbitrary<HostTensor> rowTensors(Distribution[] distributions) {
        Arbitrary<int[]> small = LoftqArbitraries.shapes(4, 6)
                .filter(s -> s.length > 0 && s[s.length - 1] > 0);
        Arbitrary<Integer> side = LoftqArbitraries.sides(1, LoftqArbitraries.MAX_SIDE);
        Arbitrary<int[]> matrices = Combinators.combine(side, side).as((r, c) -> new int[] {r, c});
        Arbitrary<int[]> shapes = Arbitraries.frequencyOf(Tuple.of(3, small),
                Tuple.of(1, matrices));
        return LoftqArbitraries.tensors(shapes, distributions);
    }

    @Provide
    Arbitrary<Matrix> matrices() {
        return LoftqArbitraries.matrices();
    }

    /** Two operands of broadcastable shapes, any distributions. */
    @Provide
    Arbitrary<HostTensor[]> broadcastPairs() {
        return operands(2);
    }

    /** Three operands of broadcastable shapes, any distributions. */
    @Provide
    Arbitrary<HostTensor[]> broadcastTriples() {
        return operands(3);
    }

    private static Arbitrary<HostTensor[]> operands(int count) {
        Arbitrary<int[][]> shapes = LoftqArbitraries.broadcastShapes(count);
        Arbitrary<Distribution> distributions = LoftqArbitraries.distributions();
        return Combinators.combine(shapes, distributions, LoftqArbitraries.seeds())
                .as((s, d, seed) -> {
                    HostTensor[] t = new HostTensor[count];
                    for (int k = 0; k < count; k++) {
                        t[k] = LoftqArbitraries.tensor(s[k], d, seed + k);
                    }
                    return t;
                });
    }

    /** Scalars for the scalar operations and full: ordinary values and the special ones. */
    @Provide
    Arbitrary<Float> scalars() {
        return Arbitraries.frequencyOf(
                Tuple.of(4, Arbitraries.floats().between(-1000f, 1000f)),
                Tuple.of(1, Arbitraries.of(0f, -0f, 1f, -1f, 0.5f, 3f, Float.MIN_VALUE,
                        Float.MAX_VALUE, -Float.MAX_VALUE, Float.NaN, Float.POSITIVE_INFINITY,
                        Float.NEGATIVE_INFINITY)));
    }

    /** Operands of matmul as stored (A [k, m] when transposed, B [n, k] when transposed). */
    public record MatmulCase(Matrix a, boolean transposeA, Matrix b, boolean transposeB) {
        int m() {
            return transposeA ? a.cols() : a.rows();
        }

        int k() {
            return transposeA ? a.rows() : a.cols();
        }

        int n() {
            return transposeB ? b.rows() : b.cols();
        }
    }

    @Provide
    Arbitrary<MatmulCase> matmulCases() {
        Arbitrary<Integer> side = LoftqArbitraries.sides(1, 200);
        Arbitrary<Boolean> flag = Arbitraries.of(true, false);
        Arbitrary<Distribution> dist =
                LoftqArbitraries.distributions(Distribution.wellScaledValues());
        return Combinators.combine(side, side, side, flag, flag, dist, LoftqArbitraries.seeds())
                .as((m, k, n, ta, tb, d, seed) -> new MatmulCase(
                        ta ? new Matrix(k, m, LoftqArbitraries.values(d, k, m, seed))
                                : new Matrix(m, k, LoftqArbitraries.values(d, m, k, seed)),
                        ta,
                        tb ? new Matrix(n, k, LoftqArbitraries.values(d, n, k, seed + 1))
                                : new Matrix(k, n, LoftqArbitraries.values(d, k, n, seed + 1)),
                        tb));
    }

    @Provide
    Arbitrary<Integer> blockSizes() {
        return LoftqArbitraries.blockSizes();
    }

    @Provide
    Arbitrary<Integer> bitWidths() {
        return LoftqArbitraries.bitWidths();
    }

    @Provide
    Arbitrary<BucketTable> bucketTables() {
        return LoftqArbitraries.bucketTables();
    }

    // ==== creation and host copies ==============================================================

    @Property(tries = 100)
    void fromHostRoundTripsEveryBit(@ForAll("anyTensors") HostTensor t) {
        float[] got = in(subject(), s -> {
            Tensor x = s.fromHost(t.data(), t.shape());
            assertShape("fromHost", t.shape(), x.shape());
            assertEquals(DType.FLOAT32, x.dtype(), "fromHost dtype");
            assertEquals(t.size(), x.numel(), "fromHost numel");
            assertSame(subject(), x.backend(), "fromHost backend");
            assertTrue(x.isAlive(), "fresh tensor is alive");
            return s.toFloatArray(x);
        });
        assertSameBits("fromHost/toFloatArray", t.data(), got);
    }

    @Property(tries = 50)
    void fromHostBytesRoundTripsEveryByte(@ForAll("anyTensors") HostTensor shapeOnly,
            @ForAll long seed) {
        byte[] data = new byte[shapeOnly.size()];
        new SplittableRandom(seed).nextBytes(data);
        byte[] got = in(subject(), s -> {
            Tensor x = s.fromHostBytes(data, shapeOnly.shape());
            assertShape("fromHostBytes", shapeOnly.shape(), x.shape());
            assertEquals(DType.UINT8, x.dtype(), "fromHostBytes dtype");
            return s.toByteArray(x);
        });
        assertSameBytes("fromHostBytes/toByteArray", data, got);
    }

    @Property(tries = 50)
    void hostCopiesAreCopies(@ForAll("matrices") Matrix m) {
        float[] data = m.data();
        in(subject(), s -> {
            Tensor x = s.fromHost(data, m.shape());
            Arrays.fill(data, 7f); // the tensor must not see this
            float[] out = s.toFloatArray(x);
            Arrays.fill(out, 8f); // nor this
            assertSameBits("tensor after the host arrays changed", m.data(), s.toFloatArray(x));
            return null;
        });
    }

    @Property(tries = 50)
    void fullFillsEveryElement(@ForAll("scalars") float value,
            @ForAll("anyTensors") HostTensor shapeOnly) {
        float[] got = in(subject(), s -> {
            Tensor x = s.full(value, shapeOnly.shape());
            assertShape("full", shapeOnly.shape(), x.shape());
            return s.toFloatArray(x);
        });
        float[] expected = new float[shapeOnly.size()];
        Arrays.fill(expected, value);
        assertSameBits("full", expected, got);
    }

    @Property(tries = 30)
    void itemReadsTheSingleElement(@ForAll("scalars") float value,
            @ForAll @IntRange(min = 0, max = 3) int rank) {
        int[] shape = new int[rank];
        Arrays.fill(shape, 1);
        float got = in(subject(), s -> s.item(s.fromHost(new float[] {value}, shape)));
        assertSameBits("item", new float[] {value}, new float[] {got});
    }

    @Property(tries = 50)
    void randomNormalIsPortable(@ForAll long seed, @ForAll("normalMeans") float mean,
            @ForAll("normalStds") float std, @ForAll("anyTensors") HostTensor shapeOnly) {
        Function<TensorScope, float[]> draw = s -> {
            Tensor x = s.randomNormal(seed, mean, std, shapeOnly.shape());
            assertShape("randomNormal", shapeOnly.shape(), x.shape());
            return s.toFloatArray(x);
        };
        float[] expected = HostRandom.normal(seed, mean, std, shapeOnly.size());
        assertSameBits("randomNormal vs HostRandom", expected, in(subject(), draw));
        assertSameBits("randomNormal vs oracle backend", in(reference(), draw),
                in(subject(), draw));
    }

    @Provide
    Arbitrary<Float> normalMeans() {
        return Arbitraries.frequencyOf(Tuple.of(1, Arbitraries.just(0f)),
                Tuple.of(3, Arbitraries.floats().between(-100f, 100f)));
    }

    @Provide
    Arbitrary<Float> normalStds() {
        return Arbitraries.frequencyOf(Tuple.of(1, Arbitraries.of(0f, 1f)),
                Tuple.of(3, Arbitraries.floats().between(1e-3f, 100f).ofScale(4)));
    }

    @Property(tries = 20)
    void randomNormalHasPlausibleMoments(@ForAll long seed,
            @ForAll("normalMeans") float mean, @ForAll("positiveStds") float std) {
        int n = 20_000;
        float[] x = in(subject(),
                s -> s.toFloatArray(s.randomNormal(seed, mean, std, 100, n / 100)));
        double sum = 0;
        for (float v : x) {
            sum += v;
        }
        double sampleMean = sum / n;
        double ss = 0;
        for (float v : x) {
            ss += (v - sampleMean) * (v - sampleMean);
        }
        double sampleStd = Math.sqrt(ss / (n - 1));
        // five standard errors: a false alarm about once in 10^6 runs
        assertTrue(Math.abs(sampleMean - mean) <= 5 * std / Math.sqrt(n),
                "sample mean " + sampleMean + " too far from " + mean + " (std " + std + ")");
        assertTrue(Math.abs(sampleStd / std - 1) <= 5 / Math.sqrt(2.0 * n),
                "sample std " + sampleStd + " too far from " + std);
    }

    @Provide
    Arbitrary<Float> positiveStds() {
        return Arbitraries.floats().between(1e-2f, 10f);
    }

    @Example
    void randomNormalWithZeroStdIsTheMean() {
        float[] x = in(subject(), s -> s.toFloatArray(s.randomNormal(5, 2.5f, 0f, 3, 7)));
        float[] expected = new float[21];
        Arrays.fill(expected, 2.5f);
        assertSameBits("randomNormal std=0", expected, x);
    }

    // ==== shape ================================================================================

    @Property(tries = 100)
    void reshapeKeepsTheElements(@ForAll("anyTensors") HostTensor t, @ForAll long seed) {
        int[] shape = t.shape();
        int n = t.size();
        int[][] targets = reshapeTargets(shape, n);
        int[] target = targets[new SplittableRandom(seed).nextInt(targets.length)];
        int[] resolved = target.clone();
        for (int a = 0; a < resolved.length; a++) {
            if (resolved[a] == -1) {
                int known = 1;
                for (int d : target) {
                    known *= d == -1 ? 1 : d;
                }
                resolved[a] = n / known;
            }
        }
        byte[] bytes = new byte[n];
        new SplittableRandom(seed).nextBytes(bytes);
        in(subject(), s -> {
            Tensor x = s.reshape(s.fromHost(t.data(), shape), target);
            assertShape("reshape " + Arrays.toString(target), resolved, x.shape());
            assertSameBits("reshape", t.data(), s.toFloatArray(x));
            Tensor y = s.reshape(s.fromHostBytes(bytes, shape), target);
            assertEquals(DType.UINT8, y.dtype(), "reshape keeps the dtype");
            assertSameBytes("reshape UINT8", bytes, s.toByteArray(y));
            return null;
        });
    }

    private static int[][] reshapeTargets(int[] shape, int n) {
        List<int[]> t = new ArrayList<>();
        t.add(new int[] {n});
        t.add(new int[] {1, n, 1});
        int[] reversed = new int[shape.length];
        for (int a = 0; a < shape.length; a++) {
            reversed[a] = shape[shape.length - 1 - a];
        }
        t.add(reversed);
        if (n > 0) {
            t.add(new int[] {-1});
            int last = shape.length == 0 ? 1 : shape[shape.length - 1];
            if (last > 0) {
                t.add(new int[] {-1, last});
            }
        }
        if (n == 1) {
            t.add(new int[0]);
        }
        return t.toArray(new int[0][]);
    }

    @Property(tries = 50)
    void transposeMovesEveryElement(@ForAll("matrices") Matrix m) {
        byte[] bytes = new byte[m.size()];
        new SplittableRandom(m.size()).nextBytes(bytes);
        in(subject(), s -> {
            Tensor t = s.transpose(s.fromHost(m.data(), m.shape()));
            assertShape("transpose", new int[] {m.cols(), m.rows()}, t.shape());
            assertSameBits("transpose", m.transpose().data(), s.toFloatArray(t));
            byte[] expected = new byte[bytes.length];
            for (int r = 0; r < m.rows(); r++) {
                for (int c = 0; c < m.cols(); c++) {
                    expected[c * m.rows() + r] = bytes[r * m.cols() + c];
                }
            }
            Tensor b = s.transpose(s.fromHostBytes(bytes, m.shape()));
            assertEquals(DType.UINT8, b.dtype(), "transpose keeps the dtype");
            assertSameBytes("transpose UINT8", expected, s.toByteArray(b));
            return null;
        });
    }

    @Property(tries = 100)
    void slicesCopyTheirRange(@ForAll("anyTensors") HostTensor t, @ForAll long seed) {
        if (t.shape().length == 0) {
            return;
        }
        int[] shape = t.shape();
        SplittableRandom rng = new SplittableRandom(seed);
        int from = rng.nextInt(shape[0] + 1);
        int to = from + rng.nextInt(shape[0] - from + 1);
        int rowSize = shape[0] == 0 ? 0 : t.size() / shape[0];
        int[] expectedShape = shape.clone();
        expectedShape[0] = to - from;
        float[] expected = Arrays.copyOfRange(t.data(), from * rowSize, to * rowSize);
        in(subject(), s -> {
            Tensor r = s.sliceRows(s.fromHost(t.data(), shape), from, to);
            assertShape("sliceRows", expectedShape, r.shape());
            assertSameBits("sliceRows [" + from + ", " + to + ")", expected, s.toFloatArray(r));
            if (shape.length == 2) {
                int c0 = rng.nextInt(shape[1] + 1);
                int c1 = c0 + rng.nextInt(shape[1] - c0 + 1);
                float[] cols = new float[shape[0] * (c1 - c0)];
                for (int i = 0; i < shape[0]; i++) {
                    for (int j = c0; j < c1; j++) {
                        cols[i * (c1 - c0) + j - c0] = t.at(i * shape[1] + j);
                    }
                }
                Tensor c = s.sliceColumns(s.fromHost(t.data(), shape), c0, c1);
                assertShape("sliceColumns", new int[] {shape[0], c1 - c0}, c.shape());
                assertSameBits("sliceColumns [" + c0 + ", " + c1 + ")", cols, s.toFloatArray(c));
            }
            return null;
        });
    }

    @Property(tries = 100)
    void concatUndoesASplit(@ForAll("anyTensors") HostTensor t, @ForAll long seed) {
        int[] shape = t.shape();
        if (shape.length == 0) {
            return;
        }
        SplittableRandom rng = new SplittableRandom(seed);
        int axis = rng.nextInt(shape.length);
        int parts = 1 + rng.nextInt(3);
        int[] cuts = new int[parts + 1];
        cuts[parts] = shape[axis];
        for (int p = 1; p < parts; p++) {
            cuts[p] = rng.nextInt(shape[axis] + 1);
        }
        Arrays.sort(cuts, 1, parts);
        float[] data = t.data();
        float[] got = in(subject(), s -> {
            Tensor[] pieces = new Tensor[parts];
            for (int p = 0; p < parts; p++) {
                pieces[p] = s.fromHost(split(data, shape, axis, cuts[p], cuts[p + 1]),
                        withDim(shape, axis, cuts[p + 1] - cuts[p]));
            }
            Tensor c = s.concat(axis, pieces);
            assertShape("concat", shape, c.shape());
            return s.toFloatArray(c);
        });
        assertSameBits("concat along axis " + axis + " of " + Arrays.toString(cuts), data, got);
    }

    /** Elements [from, to) along axis, by plain index arithmetic. */
    private static float[] split(float[] data, int[] shape, int axis, int from, int to) {
        int outer = Oracle.numel(Arrays.copyOfRange(shape, 0, axis));
        int inner = Oracle.numel(Arrays.copyOfRange(shape, axis + 1, shape.length));
        float[] out = new float[outer * (to - from) * inner];
        int k = 0;
        for (int o = 0; o < outer; o++) {
            for (int i = from; i < to; i++) {
                for (int j = 0; j < inner; j++) {
                    out[k++] = data[(o * shape[axis] + i) * inner + j];
                }
            }
        }
        return out;
    }

    private static int[] withDim(int[] shape, int axis, int size) {
        int[] s = shape.clone();
        s[axis] = size;
        return s;
    }

    @Property(tries = 100)
    void castConvertsEveryElement(@ForAll("anyTensors") HostTensor t) {
        float[] x = t.data();
        byte[] expectedBytes = new byte[x.length];
        float[] expectedBool = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            float v = x[i];
            float clamped = Float.isNaN(v) ? 0f : Math.min(Math.max(v, 0f), 255f);
            expectedBytes[i] = (byte) (int) Math.rint(clamped);
            expectedBool[i] = v > 0f ? 1f : 0f;
        }
        float[] expectedBack = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            expectedBack[i] = expectedBytes[i] & 0xFF;
        }
        in(subject(), s -> {
            Tensor f = s.fromHost(x, t.shape());
            Tensor u = s.cast(f, DType.UINT8);
            assertEquals(DType.UINT8, u.dtype(), "cast dtype");
            assertShape("cast", t.shape(), u.shape());
            assertSameBytes("cast FLOAT32 -> UINT8 (clamp to [0, 255], half-even, NaN -> 0)",
                    expectedBytes, s.toByteArray(u));
            assertSameBits("cast UINT8 -> FLOAT32", expectedBack,
                    s.toFloatArray(s.cast(u, DType.FLOAT32)));
            Tensor mask = s.gt(f, s.full(0f));
            assertSameBits("cast BOOL -> FLOAT32", expectedBool,
                    s.toFloatArray(s.cast(mask, DType.FLOAT32)));
            byte[] boolBytes = s.toByteArray(s.cast(mask, DType.UINT8));
            for (int i = 0; i < boolBytes.length; i++) {
                assertEquals((byte) expectedBool[i], boolBytes[i], "cast BOOL -> UINT8 at " + i);
            }
            assertSameBits("cast to the same dtype", x, s.toFloatArray(s.cast(f, DType.FLOAT32)));
            return null;
        });
    }

    // ==== elementwise ==========================================================================

    /** The unary operations checked bit for bit. */
    enum UnaryOp {
        ABS, NEG, SQRT, ROUND, ADD_SCALAR, MUL_SCALAR, DIV_SCALAR;

        Tensor apply(TensorScope s, Tensor x, float scalar) {
            switch (this) {
                case ABS: return s.abs(x);
                case NEG: return s.neg(x);
                case SQRT: return s.sqrt(x);
                case ROUND: return s.round(x);
                case ADD_SCALAR: return s.add(x, scalar);
                case MUL_SCALAR: return s.mul(x, scalar);
                case DIV_SCALAR: return s.div(x, scalar);
                default: throw new AssertionError(this);
            }
        }

        float oracle(float v, float scalar) {
            switch (this) {
                case ABS: return Math.abs(v);
                case NEG: return -v;
                case SQRT: return (float) Math.sqrt(v);
                case ROUND: return (float) Math.rint(v);
                case ADD_SCALAR: return v + scalar;
                case MUL_SCALAR: return v * scalar;
                case DIV_SCALAR: return v / scalar;
                default: throw new AssertionError(this);
            }
        }
    }

    @Property(tries = 200)
    void unaryOpsAreCorrectlyRounded(@ForAll UnaryOp op, @ForAll("anyTensors") HostTensor t,
            @ForAll("scalars") float scalar) {
        float[] x = t.data();
        float[] expected = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            expected[i] = op.oracle(x[i], scalar);
        }
        Function<TensorScope, float[]> run = s -> {
            Tensor r = op.apply(s, s.fromHost(x, t.shape()), scalar);
            assertShape(op.name(), t.shape(), r.shape());
            return s.toFloatArray(r);
        };
        assertSameBits(op + " " + scalar, expected, in(subject(), run));
        assertSameBits(op + " vs oracle backend", in(reference(), run), in(subject(), run));
    }

    @Property(tries = 100)
    void clampBoundsEveryElement(@ForAll("anyTensors") HostTensor t, @ForAll("scalars") float a,
            @ForAll("scalars") float b) {
        if (Float.isNaN(a) || Float.isNaN(b)) {
            return;
        }
        float lo = Math.min(a, b);
        float hi = Math.max(a, b);
        float[] x = t.data();
        float[] expected = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            expected[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
        }
        assertSameValues("clamp [" + lo + ", " + hi + "]", expected,
                in(subject(), s -> s.toFloatArray(s.clamp(s.fromHost(x, t.shape()), lo, hi))));
    }

    @Property(tries = 100)
    void sigmoidIsWithinTwoUlps(@ForAll("anyTensors") HostTensor t) {
        float[] x = t.data();
        double[] expected = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            expected[i] = 1.0 / (1.0 + Math.exp(-(double) x[i]));
        }
        assertWithinUlps("sigmoid", expected,
                in(subject(), s -> s.toFloatArray(s.sigmoid(s.fromHost(x, t.shape())))),
                SIGMOID_ULPS, Float.MIN_NORMAL);
    }

    /** The broadcasting binary operations. */
    enum BinaryOp {
        ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM;

        Tensor apply(TensorScope s, Tensor a, Tensor b) {
            switch (this) {
                case ADD: return s.add(a, b);
                case SUB: return s.sub(a, b);
                case MUL: return s.mul(a, b);
                case DIV: return s.div(a, b);
                case MAXIMUM: return s.maximum(a, b);
                case MINIMUM: return s.minimum(a, b);
                default: throw new AssertionError(this);
            }
        }

        float oracle(float a, float b) {
            switch (this) {
                case ADD: return a + b;
                case SUB: return a - b;
                case MUL: return a * b;
                case DIV: return a / b;
                case MAXIMUM: return a != a || b != b ? Float.NaN : a > b ? a : b;
                case MINIMUM: return a != a || b != b ? Float.NaN : a < b ? a : b;
                default: throw new AssertionError(this);
            }
        }

        /** maximum and minimum leave the sign of a zero result unspecified. */
        boolean exactBits() {
            return this != MAXIMUM && this != MINIMUM;
        }
    }

    @Property(tries = 200)
    void binaryOpsBroadcast(@ForAll BinaryOp op, @ForAll("broadcastPairs") HostTensor[] ab) {
        HostTensor a = ab[0];
        HostTensor b = ab[1];
        float[] expected = Oracle.broadcastOp(a.data(), a.shape(), b.data(), b.shape(), op::oracle);
        int[] shape = Oracle.broadcast(a.shape(), b.shape());
        Function<TensorScope, float[]> run = s -> {
            Tensor r = op.apply(s, s.fromHost(a.data(), a.shape()),
                    s.fromHost(b.data(), b.shape()));
            String what = op + " " + Arrays.toString(a.shape()) + " with "
                    + Arrays.toString(b.shape());
            assertShape(what, shape, r.shape());
            return s.toFloatArray(r);
        };
        float[] got = in(subject(), run);
        if (op.exactBits()) {
            assertSameBits(op.name(), expected, got);
            assertSameBits(op + " vs oracle backend", in(reference(), run), got);
        } else {
            assertSameValues(op.name(), expected, got);
            assertSameValues(op + " vs oracle backend", in(reference(), run), got);
        }
    }

    /** The comparisons. */
    enum CompareOp {
        GT, LT, EQ;

        Tensor apply(TensorScope s, Tensor a, Tensor b) {
            return this == GT ? s.gt(a, b) : this == LT ? s.lt(a, b) : s.eq(a, b);
        }

        float oracle(float a, float b) {
            boolean r = this == GT ? a > b : this == LT ? a < b : a == b;
            return r ? 1f : 0f;
        }
    }

    @Property(tries = 150)
    void comparisonsBroadcast(@ForAll CompareOp op, @ForAll("broadcastPairs") HostTensor[] ab) {
        HostTensor a = ab[0];
        HostTensor b = ab[1];
        float[] expected = Oracle.broadcastOp(a.data(), a.shape(), b.data(), b.shape(), op::oracle);
        byte[] got = in(subject(), s -> {
            Tensor r = op.apply(s, s.fromHost(a.data(), a.shape()),
                    s.fromHost(b.data(), b.shape()));
            assertEquals(DType.BOOL, r.dtype(), op + " dtype");
            assertShape(op.name(), Oracle.broadcast(a.shape(), b.shape()), r.shape());
            return s.toByteArray(r);
        });
        byte[] e = new byte[expected.length];
        for (int i = 0; i < e.length; i++) {
            e[i] = (byte) expected[i];
        }
        assertSameBytes(op.name(), e, got);
    }

    @Property(tries = 150)
    void whereSelectsWithThreeWayBroadcasting(@ForAll("broadcastTriples") HostTensor[] cab) {
        HostTensor c = cab[0];
        HostTensor a = cab[1];
        HostTensor b = cab[2];
        int[] shape = Oracle.broadcast(Oracle.broadcast(c.shape(), a.shape()), b.shape());
        float[] expected = new float[Oracle.numel(shape)];
        for (int i = 0; i < expected.length; i++) {
            boolean cond = c.at(Oracle.sourceIndex(shape, c.shape(), i)) > 0f;
            expected[i] = cond ? a.at(Oracle.sourceIndex(shape, a.shape(), i))
                    : b.at(Oracle.sourceIndex(shape, b.shape(), i));
        }
        float[] got = in(subject(), s -> {
            Tensor cond = s.gt(s.fromHost(c.data(), c.shape()), s.full(0f));
            Tensor r = s.where(cond, s.fromHost(a.data(), a.shape()),
                    s.fromHost(b.data(), b.shape()));
            assertShape("where", shape, r.shape());
            return s.toFloatArray(r);
        });
        assertSameBits("where", expected, got);
    }

    // ==== reductions ===========================================================================

    @Property(tries = 100)
    void maxAndMinLastAreExact(@ForAll("rowTensors") HostTensor t) {
        int[] shape = t.shape();
        int len = shape[shape.length - 1];
        int rows = t.size() / len;
        int[] outShape = Arrays.copyOf(shape, shape.length - 1);
        float[][] got = in(subject(), s -> {
            Tensor x = s.fromHost(t.data(), shape);
            Tensor max = s.maxLast(x);
            Tensor min = s.minLast(x);
            assertShape("maxLast", outShape, max.shape());
            assertShape("minLast", outShape, min.shape());
            return new float[][] {s.toFloatArray(max), s.toFloatArray(min)};
        });
        assertSameValues("maxLast", Oracle.rowExtrema(t.data(), rows, len, true), got[0]);
        assertSameValues("minLast", Oracle.rowExtrema(t.data(), rows, len, false), got[1]);
    }

    @Property(tries = 100)
    void sumAndMeanLastAreWithinTolerance(@ForAll("wellScaledRowTensors") HostTensor t) {
        int[] shape = t.shape();
        int len = shape[shape.length - 1];
        int rows = t.size() / len;
        double[] sums = Oracle.rowSums(t.data(), rows, len, false);
        double[] abs = Oracle.rowSums(t.data(), rows, len, true);
        double[] means = new double[rows];
        double[] meanScale = new double[rows];
        for (int r = 0; r < rows; r++) {
            means[r] = sums[r] / len;
            meanScale[r] = abs[r] / len;
        }
        double rel = SUM_REL_PER_SQRT_TERM * Math.sqrt(len);
        double floor = len * (double) Float.MIN_NORMAL;
        Function<TensorScope, float[][]> run = s -> {
            Tensor x = s.fromHost(t.data(), shape);
            Tensor sum = s.sumLast(x);
            Tensor mean = s.meanLast(x);
            assertShape("sumLast", Arrays.copyOf(shape, shape.length - 1), sum.shape());
            assertShape("meanLast", Arrays.copyOf(shape, shape.length - 1), mean.shape());
            return new float[][] {s.toFloatArray(sum), s.toFloatArray(mean)};
        };
        float[][] got = in(subject(), run);
        float[][] ref = in(reference(), run);
        assertWithin("sumLast", sums, abs, got[0], rel, floor);
        assertWithin("meanLast", means, meanScale, got[1], rel, floor / len);
        assertWithin("sumLast vs oracle backend", ref[0], abs, got[0], 2 * rel, 2 * floor);
        assertWithin("meanLast vs oracle backend", ref[1], meanScale, got[1], 2 * rel,
                2 * floor / len);
    }

    @Example
    void sumLastOfAnEmptyAxisIsZero() {
        float[] got = in(subject(), s -> {
            Tensor r = s.sumLast(s.fromHost(new float[0], 3, 0));
            assertShape("sumLast of [3, 0]", new int[] {3}, r.shape());
            return s.toFloatArray(r);
        });
        assertSameBits("sumLast of [3, 0]", new float[3], got);
    }

    @Property(tries = 100)
    void sumOfSquaresIsAccurate(@ForAll("sumOfSquaresInputs") HostTensor t) {
        double expected = 0;
        for (float v : t.data()) {
            expected += (double) v * v;
        }
        double got = in(subject(), s -> s.sumOfSquares(s.fromHost(t.data(), t.shape())));
        if (Double.isNaN(expected) || Double.isInfinite(expected)) {
            assertEquals(expected, got, "sumOfSquares of non-finite values");
        } else {
            assertTrue(Math.abs(got - expected) <= SUM_OF_SQUARES_REL * expected
                    + t.size() * (double) Float.MIN_NORMAL * Float.MIN_NORMAL,
                    "sumOfSquares: expected " + expected + ", got " + got);
        }
    }

    @Provide
    Arbitrary<HostTensor> sumOfSquaresInputs() {
        Distribution[] safe = LoftqArbitraries.allBut(Distribution.EXTREME);
        int max = LoftqArbitraries.MAX_SIDE;
        Arbitrary<HostTensor> small = LoftqArbitraries.tensors(LoftqArbitraries.shapes(4, 6), safe);
        Arbitrary<HostTensor> matrices = LoftqArbitraries.matrices(max, max, safe)
                .map(m -> new HostTensor(m.shape(), m.data()));
        return Arbitraries.frequencyOf(Tuple.of(3, small), Tuple.of(1, matrices));
    }

    // ==== matmul ===============================================================================

    @Property(tries = 100)
    void matmulIsWithinTolerance(@ForAll("matmulCases") MatmulCase c) {
        int m = c.m();
        int k = c.k();
        int n = c.n();
        float[] a = c.a().data();
        float[] b = c.b().data();
        double[] exact = Oracle.matmul(a, c.transposeA(), b, c.transposeB(), m, k, n);
        double[] scale = Oracle.matmulAbs(a, c.transposeA(), b, c.transposeB(), m, k, n);
        Function<TensorScope, float[]> run = s -> {
            Tensor r = s.matmul(s.fromHost(a, c.a().shape()), c.transposeA(),
                    s.fromHost(b, c.b().shape()), c.transposeB());
            assertShape("matmul", new int[] {m, n}, r.shape());
            return s.toFloatArray(r);
        };
        double rel = SUM_REL_PER_SQRT_TERM * Math.sqrt(k);
        double floor = k * (double) Float.MIN_NORMAL;
        String what = "matmul " + m + "x" + k + "x" + n + " transposeA=" + c.transposeA()
                + " transposeB=" + c.transposeB();
        float[] got = in(subject(), run);
        assertWithin(what, exact, scale, got, rel, floor);
        assertWithin(what + " vs oracle backend", in(reference(), run), scale, got, 2 * rel,
                2 * floor);
        if (!c.transposeA() && !c.transposeB()) {
            float[] plain = in(subject(), s -> s.toFloatArray(
                    s.matmul(s.fromHost(a, c.a().shape()), s.fromHost(b, c.b().shape()))));
            assertSameBits("matmul(a, b) = matmul(a, false, b, false)", got, plain);
        }
    }

    @Example
    void matmulWithEmptyDimensions() {
        in(subject(), s -> {
            Tensor zeroInner = s.matmul(s.fromHost(new float[0], 3, 0),
                    s.fromHost(new float[0], 0, 2));
            assertShape("matmul [3, 0]·[0, 2]", new int[] {3, 2}, zeroInner.shape());
            assertSameBits("matmul with k = 0", new float[6], s.toFloatArray(zeroInner));
            Tensor noRows = s.matmul(s.fromHost(new float[0], 0, 4), s.full(1f, 4, 5));
            assertShape("matmul [0, 4]·[4, 5]", new int[] {0, 5}, noRows.shape());
            return null;
        });
    }

    // ==== codebooks ============================================================================

    @Property(tries = 100)
    void gatherLooksUpEveryCode(@ForAll("anyTensors") HostTensor shapeOnly,
            @ForAll @IntRange(min = 1, max = 256) int tableSize, @ForAll long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        float[] table = LoftqArbitraries.values(Distribution.EXTREME, 1, tableSize, seed);
        byte[] codes = new byte[shapeOnly.size()];
        for (int i = 0; i < codes.length; i++) {
            codes[i] = (byte) rng.nextInt(tableSize);
        }
        float[] expected = new float[codes.length];
        for (int i = 0; i < codes.length; i++) {
            expected[i] = table[codes[i] & 0xFF];
        }
        float[] got = in(subject(), s -> {
            Tensor r = s.gather(s.fromHost(table, tableSize),
                    s.fromHostBytes(codes, shapeOnly.shape()));
            assertShape("gather", shapeOnly.shape(), r.shape());
            return s.toFloatArray(r);
        });
        assertSameBits("gather", expected, got);
    }

    @Property(tries = 150)
    void blockAbsMaxIsExact(@ForAll("anyTensors") HostTensor t,
            @ForAll("blockSizes") int blockSize) {
        if (t.size() == 0) {
            return;
        }
        float[] got = in(subject(), s -> {
            Tensor r = s.blockAbsMax(s.fromHost(t.data(), t.shape()), blockSize);
            assertShape("blockAbsMax", new int[] {HostKernels.blockCount(t.size(), blockSize)},
                    r.shape());
            return s.toFloatArray(r);
        });
        assertSameBits("blockAbsMax blockSize=" + blockSize,
                Oracle.blockAbsMax(t.data(), blockSize), got);
    }

    @Property(tries = 150)
    void encodeIsExact(@ForAll("anyTensors") HostTensor t, @ForAll("blockSizes") int blockSize,
            @ForAll ScaleMode mode, @ForAll("bucketTables") BucketTable table,
            @ForAll @IntRange(min = 0, max = 2) int scaleKind, @ForAll long seed) {
        float[] x = t.data();
        float[] scale = scales(x, blockSize, scaleKind, seed);
        byte[] expected = Oracle.encode(x, scale, blockSize, mode, table);
        Function<TensorScope, byte[]> run = s -> {
            Tensor r = s.encode(s.fromHost(x, t.shape()), s.fromHost(scale, scale.length),
                    blockSize, mode, table);
            assertEquals(DType.UINT8, r.dtype(), "encode dtype");
            assertShape("encode", t.shape(), r.shape());
            return s.toByteArray(r);
        };
        assertSameBytes("encode " + mode + " blockSize=" + blockSize + " " + table, expected,
                in(subject(), run));
    }

    /**
     * Statistics of the codebook fit at one scale set ([nb]) or several ([m, nb], m in 1..3, each
     * set drawn independently): the oracle's, bit for bit, set by set.
     */
    @Property(tries = 100)
    void blockCodebookFitIsExact(@ForAll("finiteTensors") HostTensor t,
            @ForAll("blockSizes") int blockSize, @ForAll ScaleMode mode,
            @ForAll("bucketTables") BucketTable table, @ForAll @IntRange(min = 0, max = 1) int scaleKind,
            @ForAll @IntRange(min = 0, max = 3) int sets, @ForAll long seed) {
        float[] x = t.data();
        if (x.length == 0) {
            return;
        }
        int[] codes = table.codes();
        int largest = table.nanCode();
        for (int c : codes) {
            largest = Math.max(largest, c);
        }
        int size = largest + 1;
        float[] values = new float[size];
        SplittableRandom rng = new SplittableRandom(seed);
        for (int i = 0; i < size; i++) {
            values[i] = (float) rng.nextDouble(-1, 1);
        }
        // sets == 0 stands for a plain [nb] scale.
        int m = Math.max(1, sets);
        int nb = HostKernels.blockCount(x.length, blockSize);
        float[] scale = new float[m * nb];
        float[] expected = new float[3 * m * nb];
        for (int j = 0; j < m; j++) {
            float[] one = scales(x, blockSize, j == 0 ? scaleKind : 1, seed + j);
            System.arraycopy(one, 0, scale, j * nb, nb);
            System.arraycopy(Oracle.blockCodebookFit(x, one, blockSize, mode, table, values), 0,
                    expected, 3 * j * nb, 3 * nb);
        }
        int[] scaleShape = sets == 0 ? new int[] {nb} : new int[] {m, nb};
        int[] resultShape = sets == 0 ? new int[] {nb, 3} : new int[] {m, nb, 3};
        Function<TensorScope, float[]> run = s -> {
            Tensor r = s.blockCodebookFit(s.fromHost(x, t.shape()), s.fromHost(scale, scaleShape),
                    blockSize, mode, table, s.fromHost(values, size));
            assertShape("blockCodebookFit", resultShape, r.shape());
            return s.toFloatArray(r);
        };
        assertSameBits("blockCodebookFit " + mode + " blockSize=" + blockSize + " sets=" + sets,
                expected, in(subject(), run));
    }

    /**
     * Block scales: absmax (kind 0), random magnitudes (1), or random with zeros, NaN and Inf
     * (2).
     */
    private static float[] scales(float[] x, int blockSize, int kind, long seed) {
        if (kind == 0 && x.length > 0) {
            return Oracle.blockAbsMax(x, blockSize);
        }
        SplittableRandom rng = new SplittableRandom(seed);
        float[] s = new float[HostKernels.blockCount(x.length, blockSize)];
        float[] special = {0f, Float.NaN, Float.POSITIVE_INFINITY, -1f, Float.MIN_VALUE};
        for (int b = 0; b < s.length; b++) {
            s[b] = kind == 2 && rng.nextInt(4) == 0 ? special[rng.nextInt(special.length)]
                    : (float) Math.pow(10, rng.nextDouble(-3, 3));
        }
        return s;
    }

    @Property(tries = 100)
    void decodeAndDecodeResidualAreExact(@ForAll("anyTensors") HostTensor x,
            @ForAll("blockSizes") int blockSize,
            @ForAll @IntRange(min = 1, max = 256) int tableSize, @ForAll long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        float[] table = LoftqArbitraries.values(Distribution.EXTREME, 1, tableSize, seed);
        byte[] codes = new byte[x.size()];
        for (int i = 0; i < codes.length; i++) {
            codes[i] = (byte) rng.nextInt(tableSize);
        }
        float[] scale = scales(new float[codes.length], blockSize, 2, seed);
        float[][] got = in(subject(), s -> {
            Tensor c = s.fromHostBytes(codes, x.shape());
            Tensor t = s.fromHost(table, tableSize);
            Tensor sc = s.fromHost(scale, scale.length);
            Tensor y = s.decode(c, t, sc, blockSize);
            // codes are read flat: a residual of x's shape from flat codes
            Tensor r = s.decodeResidual(s.fromHost(x.data(), x.shape()),
                    s.reshape(c, codes.length), t, sc, blockSize);
            for (Tensor out : new Tensor[] {y, r}) {
                assertEquals(DType.FLOAT32, out.dtype(), "decode dtype");
                assertShape("decode", x.shape(), out.shape());
            }
            return new float[][] {s.toFloatArray(y), s.toFloatArray(r)};
        });
        float[] decoded = Oracle.decode(codes, table, scale, blockSize);
        assertSameBits("decode blockSize=" + blockSize, decoded, got[0]);
        float[] residual = new float[decoded.length];
        for (int i = 0; i < residual.length; i++) {
            residual[i] = x.data()[i] - decoded[i];
        }
        assertSameBits("decodeResidual blockSize=" + blockSize, residual, got[1]);
    }

    @Property(tries = 100)
    void decodeThenEncodeRecoversTheCodes(@ForAll("bitWidths") int bits, @ForAll long seed,
            @ForAll("blockSizes") int blockSize, @ForAll ScaleMode mode,
            @ForAll @IntRange(min = 1, max = 3000) int n) {
        float[] book = LoftqArbitraries.codebook(bits, seed);
        SplittableRandom rng = new SplittableRandom(seed);
        byte[] codes = new byte[n];
        for (int i = 0; i < n; i++) {
            codes[i] = (byte) rng.nextInt(1 << bits);
        }
        float[] scale = scales(new float[n], blockSize, 1, seed);
        BucketTable nearest = LoftqArbitraries.nearestTable(book);
        byte[] got = in(subject(), s -> {
            Tensor y = s.decode(s.fromHostBytes(codes, n), s.fromHost(book, book.length),
                    s.fromHost(scale, scale.length), blockSize);
            return s.toByteArray(s.encode(y, s.fromHost(scale, scale.length), blockSize, mode,
                    nearest));
        });
        assertSameBytes("encode(decode(codes)) with " + bits + "-bit codebook", codes, got);
    }

    @Property(tries = 200)
    void packMatchesTheBitStream(@ForAll("bitWidths") int bits, @ForAll PackOrder order,
            @ForAll @IntRange(min = 0, max = 2000) int n, @ForAll long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        byte[] codes = new byte[n];
        for (int i = 0; i < n; i++) {
            codes[i] = (byte) rng.nextInt(1 << bits);
        }
        int pad = rng.nextInt(1 << bits);
        byte[] expected = Oracle.pack(codes, bits, order, pad);
        Function<TensorScope, byte[][]> run = s -> {
            Tensor p = s.pack(s.fromHostBytes(codes, n), bits, order, pad);
            assertShape("pack", new int[] {expected.length}, p.shape());
            Tensor u = s.unpack(p, bits, order, n);
            assertShape("unpack", new int[] {n}, u.shape());
            return new byte[][] {s.toByteArray(p), s.toByteArray(u)};
        };
        byte[][] got = in(subject(), run);
        String what = bits + "-bit " + order + " pad " + pad;
        assertSameBytes("pack " + what, expected, got[0]);
        assertSameBytes("unpack(pack(codes)) " + what, codes, got[1]);
    }

    @Property(tries = 100)
    void unpackReadsTheBitStream(@ForAll("bitWidths") int bits, @ForAll PackOrder order,
            @ForAll @IntRange(min = 0, max = 500) int bytes, @ForAll long seed) {
        byte[] packed = new byte[bytes];
        SplittableRandom rng = new SplittableRandom(seed);
        rng.nextBytes(packed);
        int count = rng.nextInt(bytes * 8 / bits + 1);
        byte[] got = in(subject(),
                s -> s.toByteArray(s.unpack(s.fromHostBytes(packed, bytes), bits, order, count)));
        assertSameBytes("unpack " + bits + "-bit " + order + " count " + count,
                Oracle.unpack(packed, bits, order, count), got);
    }

    // ==== scopes ===============================================================================

    /** A few tensors of every dtype, made by a spread of operations. */
    private static List<Tensor> makeTensors(TensorScope s) {
        List<Tensor> made = new ArrayList<>();
        Tensor x = s.fromHost(new float[] {1, -2, 3, -4, 5, -6, 7, -8}, 2, 4);
        made.add(x);
        made.add(s.fromHostBytes(new byte[] {0, 1, 2, 3}, 4));
        made.add(s.full(1f, 3));
        made.add(s.randomNormal(1, 0f, 1f, 2, 2));
        made.add(s.reshape(x, 4, 2));
        made.add(s.transpose(x));
        made.add(s.add(x, x));
        made.add(s.mul(x, 2f));
        made.add(s.gt(x, s.full(0f)));
        made.add(s.cast(x, DType.UINT8));
        made.add(s.matmul(x, false, x, true));
        made.add(s.sumLast(x));
        Tensor scale = s.blockAbsMax(x, 4);
        made.add(scale);
        Tensor codes = s.encode(x, scale, 4, ScaleMode.DIVIDE,
                BucketTable.identityCodes(new float[] {0f}));
        made.add(codes);
        made.add(s.pack(codes, 1, PackOrder.MSB_FIRST, 0));
        return made;
    }

    @Example
    void closeFreesEveryTensorMadeInsideAndInChildren() {
        TensorScope root = subject().newScope();
        TensorScope child = root.newChild();
        TensorScope grandchild = child.newChild();
        List<Tensor> made = new ArrayList<>(makeTensors(root));
        made.addAll(makeTensors(child));
        made.addAll(makeTensors(grandchild));
        for (Tensor t : made) {
            assertTrue(t.isAlive(), "alive before close: " + t);
        }
        root.close();
        assertFalse(root.isOpen(), "root closed");
        assertFalse(child.isOpen(), "a child closes with its parent");
        assertFalse(grandchild.isOpen(), "a grandchild closes with its ancestors");
        for (Tensor t : made) {
            assertFalse(t.isAlive(), "dead after close: " + t);
        }
        root.close(); // idempotent
        child.close();
    }

    @Example
    void keepMovesATensorOutOfAClosingChild() {
        TensorScope root = subject().newScope();
        Tensor kept;
        Tensor dropped;
        try (TensorScope child = root.newChild()) {
            kept = child.full(3f, 2);
            dropped = child.full(4f, 2);
            assertSame(kept, root.keep(kept), "keep returns its argument");
        }
        assertTrue(kept.isAlive(), "kept tensor survives its former scope");
        assertFalse(dropped.isAlive(), "the other tensor dies with the child");
        assertSameBits("kept tensor still usable", new float[] {6f, 6f},
                root.toFloatArray(root.add(kept, kept)));
        root.close();
        assertFalse(kept.isAlive(), "kept tensor dies with its new scope");
    }

    @Example
    void keepWorksBetweenAnyOpenScopes() {
        TensorScope a = subject().newScope();
        TensorScope b = subject().newScope();
        Tensor t = a.full(1f, 3);
        b.keep(t);
        a.close();
        assertTrue(t.isAlive(), "moved to a sibling root scope");
        TensorScope child = b.newChild();
        child.keep(t);
        assertTrue(t.isAlive(), "moved from the parent into its child");
        b.close();
        assertFalse(child.isOpen(), "the child closes with its parent");
        assertFalse(t.isAlive(), "a tensor kept into a child dies when the parent closes");
    }

    @Example
    void closingAChildFirstThenTheParentIsFine() {
        TensorScope root = subject().newScope();
        TensorScope child = root.newChild();
        Tensor inChild = child.full(1f, 1);
        child.close();
        assertFalse(inChild.isAlive(), "child tensor freed");
        assertTrue(root.isOpen(), "closing a child leaves the parent open");
        Tensor inRoot = root.full(1f, 1);
        root.close();
        assertFalse(inRoot.isAlive(), "root tensor freed");
        child.close(); // idempotent, also after the parent closed
    }

    @Property(tries = 30)
    void closedChildScopesLeaveNothingBehind(@ForAll("matrices") Matrix m,
            @ForAll @IntRange(min = 1, max = 4) int rounds) {
        TensorScope root = subject().newScope();
        Tensor x = root.fromHost(m.data(), m.shape());
        OptionalLong before = liveTensorCount(root);
        List<Tensor> temporaries = new ArrayList<>();
        Tensor result = x;
        for (int r = 0; r < rounds; r++) {
            try (TensorScope child = root.newChild()) {
                Tensor y = child.mul(child.add(result, 1f), 0.5f);
                temporaries.add(y);
                temporaries.add(child.matmul(y, true, y, false));
                result = root.keep(child.sub(y, x));
            }
        }
        for (Tensor t : temporaries) {
            assertFalse(t.isAlive(), "temporary of a closed child is freed");
        }
        assertTrue(result.isAlive(), "kept result is alive");
        OptionalLong after = liveTensorCount(root);
        root.close();
        assertFalse(x.isAlive() || result.isAlive(), "root tensors die with the root");
        if (before.isPresent() && after.isPresent()) {
            assertEquals(before.getAsLong() + rounds, after.getAsLong(),
                    "live tensors in the root after " + rounds + " child scopes, each keeping one");
        }
    }

    /** An SPI call with its op name, on inputs made by {@link Inputs}. */
    private record Call(String op, Consumer<Inputs> body) {}

    /** Valid inputs of every kind, made in one scope and used in another. */
    private record Inputs(TensorScope s, Tensor x, Tensor codes, Tensor mask, Tensor table,
            Tensor scale) {
        static Inputs make(TensorScope maker, TensorScope user) {
            Tensor x = maker.fromHost(new float[] {1, 2, 3, 4, 5, 6, 7, 8}, 2, 4);
            Tensor codes = maker.fromHostBytes(new byte[] {0, 1, 2, 3, 3, 2, 1, 0}, 8);
            Tensor mask = maker.gt(x, maker.full(4f));
            Tensor table = maker.fromHost(new float[] {-1, 0, 0.5f, 1}, 4);
            Tensor scale = maker.fromHost(new float[] {4, 8}, 2);
            return new Inputs(user, x, codes, mask, table, scale);
        }
    }

    private static final BucketTable TWO_BIT =
            BucketTable.identityCodes(new float[] {-0.5f, 0.25f, 0.75f});

    /** Every TensorScope operation that takes a tensor. */
    private static List<Call> tensorCalls() {
        return List.of(
                new Call("toFloatArray", i -> i.s().toFloatArray(i.x())),
                new Call("toByteArray", i -> i.s().toByteArray(i.codes())),
                new Call("reshape", i -> i.s().reshape(i.x(), 4, 2)),
                new Call("transpose", i -> i.s().transpose(i.x())),
                new Call("sliceRows", i -> i.s().sliceRows(i.x(), 0, 1)),
                new Call("sliceColumns", i -> i.s().sliceColumns(i.x(), 0, 1)),
                new Call("concat", i -> i.s().concat(0, i.x(), i.x())),
                new Call("cast", i -> i.s().cast(i.x(), DType.UINT8)),
                new Call("add", i -> i.s().add(i.x(), i.x())),
                new Call("sub", i -> i.s().sub(i.x(), i.x())),
                new Call("mul", i -> i.s().mul(i.x(), i.x())),
                new Call("div", i -> i.s().div(i.x(), i.x())),
                new Call("add", i -> i.s().add(i.x(), 1f)),
                new Call("mul", i -> i.s().mul(i.x(), 2f)),
                new Call("div", i -> i.s().div(i.x(), 2f)),
                new Call("abs", i -> i.s().abs(i.x())),
                new Call("neg", i -> i.s().neg(i.x())),
                new Call("sqrt", i -> i.s().sqrt(i.x())),
                new Call("round", i -> i.s().round(i.x())),
                new Call("clamp", i -> i.s().clamp(i.x(), 0f, 1f)),
                new Call("sigmoid", i -> i.s().sigmoid(i.x())),
                new Call("maximum", i -> i.s().maximum(i.x(), i.x())),
                new Call("minimum", i -> i.s().minimum(i.x(), i.x())),
                new Call("gt", i -> i.s().gt(i.x(), i.x())),
                new Call("lt", i -> i.s().lt(i.x(), i.x())),
                new Call("eq", i -> i.s().eq(i.x(), i.x())),
                new Call("where", i -> i.s().where(i.mask(), i.x(), i.x())),
                new Call("maxLast", i -> i.s().maxLast(i.x())),
                new Call("minLast", i -> i.s().minLast(i.x())),
                new Call("sumLast", i -> i.s().sumLast(i.x())),
                new Call("meanLast", i -> i.s().meanLast(i.x())),
                new Call("sumOfSquares", i -> i.s().sumOfSquares(i.x())),
                new Call("matmul", i -> i.s().matmul(i.x(), false, i.x(), true)),
                new Call("gather", i -> i.s().gather(i.table(), i.codes())),
                new Call("blockAbsMax", i -> i.s().blockAbsMax(i.x(), 4)),
                new Call("encode",
                        i -> i.s().encode(i.x(), i.scale(), 4, ScaleMode.DIVIDE, TWO_BIT)),
                new Call("decode", i -> i.s().decode(i.codes(), i.table(), i.scale(), 4)),
                new Call("decodeResidual",
                        i -> i.s().decodeResidual(i.x(), i.codes(), i.table(), i.scale(), 4)),
                new Call("pack", i -> i.s().pack(i.codes(), 2, PackOrder.MSB_FIRST, 0)),
                new Call("unpack", i -> i.s().unpack(i.codes(), 2, PackOrder.LSB_FIRST, 8)),
                new Call("keep", i -> i.s().keep(i.x())));
    }

    /** The operations that make a tensor from host data or make a scope. */
    private static List<Call> creatingCalls() {
        return List.of(
                new Call("fromHost", i -> i.s().fromHost(new float[] {1}, 1)),
                new Call("fromHostBytes", i -> i.s().fromHostBytes(new byte[] {1}, 1)),
                new Call("full", i -> i.s().full(1f, 1)),
                new Call("randomNormal", i -> i.s().randomNormal(1, 0f, 1f, 1)),
                new Call("newChild", i -> i.s().newChild()));
    }

    @Example
    void everyCallSucceedsOnLiveInputs() {
        try (TensorScope s = subject().newScope()) {
            Inputs inputs = Inputs.make(s, s);
            for (Call call : tensorCalls()) {
                call.body().accept(inputs);
            }
            for (Call call : creatingCalls()) {
                call.body().accept(inputs);
            }
        }
    }

    @Example
    void useOfADeadTensorThrowsNamingTheOp() {
        try (TensorScope user = subject().newScope()) {
            TensorScope maker = subject().newScope();
            Inputs inputs = Inputs.make(maker, user);
            maker.close();
            for (Call call : tensorCalls()) {
                expect(IllegalStateException.class, () -> call.body().accept(inputs), call.op());
            }
        }
    }

    @Example
    void useOfAClosedScopeThrowsNamingTheOp() {
        TensorScope maker = subject().newScope();
        TensorScope closed = subject().newScope();
        closed.close();
        Inputs inputs = Inputs.make(maker, closed);
        for (Call call : tensorCalls()) {
            expect(IllegalStateException.class, () -> call.body().accept(inputs), call.op());
        }
        for (Call call : creatingCalls()) {
            expect(IllegalStateException.class, () -> call.body().accept(inputs), call.op());
        }
        maker.close();
    }

    @Example
    void itemOfADeadTensorThrows() {
        TensorScope maker = subject().newScope();
        Tensor one = maker.full(1f, 1);
        maker.close();
        try (TensorScope s = subject().newScope()) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> s.item(one));
            assertTrue(e.getMessage().contains("item") || e.getMessage().contains("toFloatArray"),
                    "message names the op: " + e.getMessage());
        }
    }

    @Example
    void mixingBackendsIsRejected() {
        Tensor foreign = new ForeignTensor();
        try (TensorScope s = subject().newScope()) {
            Tensor x = s.full(1f, 2, 2);
            rejects(() -> s.add(x, foreign), "add");
            rejects(() -> s.matmul(foreign, x), "matmul");
            rejects(() -> s.toFloatArray(foreign), "toFloatArray");
            rejects(() -> s.keep(foreign), "keep");
            rejects(() -> s.where(s.gt(x, x), x, foreign), "where");
        }
    }

    // ==== bad input: exception type and message ===============================================

    /** Asserts that {@code call} throws {@code type} whose message contains every part. */
    protected static void expect(Class<? extends Throwable> type, Executable call,
            String... parts) {
        Throwable e = assertThrows(type, call, () -> "expected " + type.getSimpleName() + " naming "
                + Arrays.toString(parts));
        String message = String.valueOf(e.getMessage());
        for (String part : parts) {
            assertTrue(message.contains(part), "message \"" + message + "\" should contain \""
                    + part + "\"");
        }
    }

    /** Asserts that {@code call} throws IllegalArgumentException whose message has every part. */
    protected static void rejects(Executable call, String... parts) {
        expect(IllegalArgumentException.class, call, parts);
    }

    @Example
    void badShapesAreRejected() {
        try (TensorScope s = subject().newScope()) {
            rejects(() -> s.fromHost(new float[2], 2, -1), "fromHost", "[2, -1]");
            rejects(() -> s.fromHost(new float[5], 2, 3), "fromHost", "5", "6");
            rejects(() -> s.fromHostBytes(new byte[1], -1), "fromHostBytes", "[-1]");
            rejects(() -> s.full(0f, 3, -2), "full", "[3, -2]");
            rejects(() -> s.randomNormal(1, 0f, 1f, -4), "randomNormal", "[-4]");
            Tensor x = s.full(1f, 2, 3);
            rejects(() -> s.reshape(x, 4, 2), "reshape", "[2, 3]", "[4, 2]");
            rejects(() -> s.reshape(x, -1, -1), "reshape", "[-1, -1]");
            rejects(() -> s.reshape(x, 2, -3), "reshape", "[2, -3]");
            rejects(() -> s.reshape(x, -1, 4), "reshape", "[2, 3]", "[-1, 4]");
            rejects(() -> s.transpose(s.full(1f, 2, 2, 2)), "transpose", "[2, 2, 2]");
            rejects(() -> s.sliceRows(x, 1, 3), "sliceRows", "1", "3");
            rejects(() -> s.sliceRows(x, 2, 1), "sliceRows", "2", "1");
            rejects(() -> s.sliceRows(s.full(1f), 0, 0), "sliceRows", "[]");
            rejects(() -> s.sliceColumns(x, -1, 2), "sliceColumns", "-1");
            rejects(() -> s.sliceColumns(s.full(1f, 3), 0, 1), "sliceColumns", "[3]");
            rejects(() -> s.concat(1, x, s.full(1f, 3, 3)), "concat", "[2, 3]", "[3, 3]");
            rejects(() -> s.concat(2, x, x), "concat", "2");
            rejects(() -> s.concat(0), "concat");
            rejects(() -> s.concat(0, x, s.cast(x, DType.UINT8)), "concat", "UINT8");
            rejects(() -> s.item(x), "item", "[2, 3]");
        }
    }

    @Example
    void nonBroadcastableShapesAreRejected() {
        try (TensorScope s = subject().newScope()) {
            Tensor a = s.full(1f, 2, 3);
            Tensor b = s.full(1f, 4);
            rejects(() -> s.add(a, b), "add", "[2, 3]", "[4]");
            rejects(() -> s.maximum(a, b), "maximum", "[2, 3]", "[4]");
            rejects(() -> s.gt(b, a), "gt", "[4]", "[2, 3]");
            rejects(() -> s.where(s.gt(a, a), a, b), "where", "[2, 3]", "[4]");
        }
    }

    @Example
    void mismatchedMatmulShapesAreRejected() {
        try (TensorScope s = subject().newScope()) {
            Tensor a = s.full(1f, 2, 3);
            Tensor b = s.full(1f, 4, 5);
            rejects(() -> s.matmul(a, b), "matmul", "[2, 3]", "[4, 5]");
            rejects(() -> s.matmul(a, true, b, false), "matmul", "[2, 3]", "[4, 5]");
            rejects(() -> s.matmul(s.full(1f, 3), b), "matmul", "[3]");
            rejects(() -> s.matmul(a, s.full(1f, 3, 1, 1)), "matmul", "[3, 1, 1]");
        }
    }

    @Example
    void badRandomNormalParametersAreRejected() {
        try (TensorScope s = subject().newScope()) {
            rejects(() -> s.randomNormal(1, Float.NaN, 1f, 2), "randomNormal", "NaN");
            rejects(() -> s.randomNormal(1, 0f, Float.POSITIVE_INFINITY, 2),
                    "randomNormal", "Infinity");
            rejects(() -> s.randomNormal(1, Float.NEGATIVE_INFINITY, 1f, 2),
                    "randomNormal", "-Infinity");
            rejects(() -> s.randomNormal(1, 0f, Float.NaN, 2), "randomNormal", "NaN");
            rejects(() -> s.randomNormal(1, 0f, -1f, 2), "randomNormal", "-1.0");
        }
    }

    @Example
    void wrongDtypesAreRejected() {
        try (TensorScope s = subject().newScope()) {
            Tensor f = s.full(1f, 4);
            Tensor u = s.fromHostBytes(new byte[4], 4);
            Tensor mask = s.gt(f, f);
            rejects(() -> s.add(u, f), "add", "FLOAT32", "UINT8");
            rejects(() -> s.sqrt(mask), "sqrt", "FLOAT32", "BOOL");
            rejects(() -> s.matmul(s.reshape(u, 2, 2), s.reshape(f, 2, 2)),
                    "matmul", "UINT8");
            rejects(() -> s.sumLast(u), "sumLast", "UINT8");
            rejects(() -> s.where(f, f, f), "where", "BOOL", "FLOAT32");
            rejects(() -> s.where(mask, u, f), "where", "UINT8");
            rejects(() -> s.toFloatArray(u), "toFloatArray", "UINT8");
            rejects(() -> s.toByteArray(f), "toByteArray", "FLOAT32");
            rejects(() -> s.gather(f, f), "gather", "UINT8", "FLOAT32");
            rejects(() -> s.gather(u, u), "gather", "FLOAT32", "UINT8");
            rejects(() -> s.pack(f, 4, PackOrder.MSB_FIRST, 0), "pack", "UINT8");
            rejects(() -> s.blockAbsMax(u, 2), "blockAbsMax", "FLOAT32");
            rejects(() -> s.cast(u, DType.BOOL), "cast", "UINT8", "BOOL");
            rejects(() -> s.cast(f, DType.BOOL), "cast", "FLOAT32", "BOOL");
        }
    }

    @Example
    void badReductionInputsAreRejected() {
        try (TensorScope s = subject().newScope()) {
            Tensor scalar = s.full(1f);
            Tensor emptyRows = s.fromHost(new float[0], 2, 0);
            rejects(() -> s.maxLast(scalar), "maxLast", "[]");
            rejects(() -> s.sumLast(scalar), "sumLast", "[]");
            rejects(() -> s.maxLast(emptyRows), "maxLast", "[2, 0]");
            rejects(() -> s.minLast(emptyRows), "minLast", "[2, 0]");
            rejects(() -> s.meanLast(emptyRows), "meanLast", "[2, 0]");
            rejects(() -> s.clamp(scalar, 2f, 1f), "clamp", "2.0", "1.0");
            rejects(() -> s.clamp(scalar, Float.NaN, 1f), "clamp", "NaN");
        }
    }

    @Example
    void badCodebookInputsAreRejected() {
        try (TensorScope s = subject().newScope()) {
            Tensor x = s.full(1f, 10);
            Tensor table = s.fromHost(new float[] {-1, 0, 1}, 3);
            Tensor codes = s.fromHostBytes(new byte[] {0, 1, 7, 2}, 4);
            Tensor scale = s.full(1f, 3);
            rejects(() -> s.gather(table, codes), "gather", "7", "3");
            rejects(() -> s.decode(codes, table, s.full(1f, 1), 4), "decode", "7", "3");
            rejects(() -> s.decodeResidual(s.full(1f, 4), codes, table, s.full(1f, 1), 4),
                    "decodeResidual", "7", "3");
            rejects(() -> s.decodeResidual(x, codes, table, s.full(1f, 1), 4),
                    "decodeResidual", "10", "4");
            rejects(() -> s.gather(s.full(1f, 2, 2), codes), "gather", "[2, 2]");
            rejects(() -> s.blockAbsMax(x, 0), "blockAbsMax", "0");
            rejects(() -> s.blockAbsMax(s.fromHost(new float[0], 0), 4),
                    "blockAbsMax", "[0]");
            rejects(() -> s.encode(x, s.full(1f, 2), 4, ScaleMode.DIVIDE, TWO_BIT),
                    "encode", "[2]", "3");
            rejects(() -> s.encode(x, scale, -4, ScaleMode.DIVIDE, TWO_BIT),
                    "encode", "-4");
            rejects(() -> s.blockCodebookFit(x, s.full(1f, 2, 4), 4, ScaleMode.DIVIDE, TWO_BIT,
                    table), "blockCodebookFit", "[2, 4]", "[m, 3]");
            rejects(() -> s.blockCodebookFit(x, s.full(1f, 0, 3), 4, ScaleMode.DIVIDE, TWO_BIT,
                    table), "blockCodebookFit", "[0, 3]");
            rejects(() -> s.decode(codes, table, scale, 4), "decode", "[3]", "1");
            rejects(() -> s.pack(codes, 5, PackOrder.MSB_FIRST, 0),
                    "pack", "5", "[1, 2, 3, 4, 8]");
            rejects(() -> s.unpack(codes, 0, PackOrder.MSB_FIRST, 1),
                    "unpack", "0", "[1, 2, 3, 4, 8]");
            rejects(() -> s.pack(codes, 2, PackOrder.MSB_FIRST, 0), "pack", "7", "2");
            rejects(() -> s.pack(codes, 4, PackOrder.MSB_FIRST, 16), "pack", "16");
            rejects(() -> s.unpack(codes, 4, PackOrder.LSB_FIRST, 9), "unpack", "9", "4");
            rejects(() -> s.unpack(codes, 4, PackOrder.LSB_FIRST, -1), "unpack", "-1");
        }
    }
}
