package dev.loftq.quant.quantizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.ref.ReferenceBackend;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.core.testkit.HostTensor;
import dev.loftq.core.testkit.LoftqArbitraries;
import dev.loftq.core.testkit.LoftqArbitraries.Distribution;
import dev.loftq.quant.codebook.Codebook;
import dev.loftq.quant.quantizer.CodebookQuantizer.BlockScale;
import dev.loftq.quant.quantizer.CodebookQuantizer.Convention;
import java.math.BigDecimal;
import java.util.Arrays;
import java.util.SplittableRandom;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.constraints.IntRange;

/**
 * Properties of every quantizer on {@link #backend()}, over the shared arbitraries of the backend
 * test kit ({@link LoftqArbitraries}): awkward shapes (1 x 1, tall, wide, element counts that are
 * not multiples of the block size, 1-D and 3-D) and value distributions (Gaussian of any scale,
 * heavy tails with outliers, zero rows, constant blocks, a single spike, subnormals, ±MAX). A backend
 * module subclasses it and names its backend; results must also equal the reference backend's.
 *
 * <p>Where a property is exact only for some inputs, the arbitraries say so: scale invariance is
 * bit-exact for powers of two (any other factor rounds {@code c·x}); idempotence needs a codebook
 * holding both -1 and 1 and values whose products with the scale stay normal floats.
 */
public abstract class QuantizerProperties {
    /** Distributions without subnormal or near-overflow magnitudes. */
    private static final Distribution[] ORDINARY = {Distribution.GAUSSIAN,
        Distribution.HEAVY_TAILED, Distribution.ZERO_ROWS, Distribution.CONSTANT_BLOCKS,
        Distribution.SPIKE, Distribution.HALF_INTEGERS};

    private static final Codebook[] CODEBOOKS = {Codebook.NF4, Codebook.FP4, Codebook.NF2,
        Codebook.NF3, Codebook.UNIFORM2, Codebook.UNIFORM3, Codebook.UNIFORM4, Codebook.DYNAMIC_8BIT};

    /** Codebooks holding both -1 and 1, for which absmax quantization is idempotent. */
    private static final Codebook[] SYMMETRIC_RANGE_CODEBOOKS = {Codebook.NF4, Codebook.FP4,
        Codebook.NF2, Codebook.NF3, Codebook.UNIFORM2, Codebook.UNIFORM3, Codebook.UNIFORM4};

    private Backend subject;

    /** The backend under test. Called once per test instance; may return a shared instance. */
    protected abstract Backend backend();

    private Backend subject() {
        if (subject == null) {
            subject = backend();
        }
        return subject;
    }

    /** A quantizer and an input it accepts. */
    public record Case(Quantizer quantizer, HostTensor w) {
        @Override
        public String toString() {
            return quantizer.description() + " on " + w;
        }
    }

    /** What a quantizer made, copied to the host. */
    record Result(byte[] codes, byte[] packed, float[] scales, float[] dequantized, int blockSize,
            int bits, PackOrder order, long paddingBits) {}

    // ==== properties ===========================================================================

    /**
     * Absmax codebook quantizers: every element is within {@code maxRoundingError · absmax} of its
     * dequantized value (plus rounding slack), and an all-zero block gives zeros. Blocks whose
     * absmax has an infinite float32 reciprocal (below 2^-128) are exempt under the bitsandbytes
     * convention, as documented.
     */
    @Property(tries = 60)
    void codebookErrorIsWithinHalfTheLargestGapTimesTheScale(@ForAll("absmaxCodebookCases") Case c) {
        CodebookQuantizer q = (CodebookQuantizer) c.quantizer();
        Result r = run(subject(), c);
        float[] x = c.w().data();
        int b = q.blockSize();
        float[] absmax = absmax(x, b);
        assertBitsEqual("scales", absmax, r.scales());
        double err = q.codebook().maxRoundingError();
        for (int i = 0; i < x.length; i++) {
            float a = absmax[i / b];
            float y = r.dequantized()[i];
            if (a == 0f) {
                assertEquals(0f, y, 0f, "element " + i + " of an all-zero block");
            } else if (q.convention() == Convention.LOFTQ_NATIVE || Float.isFinite(1f / a)) {
                double bound = err * a + 1e-5 * a + 2 * Float.MIN_VALUE;
                double actual = Math.abs((double) y - x[i]);
                int at = i;
                assertTrue(actual <= bound, () -> "element " + at + ": x = " + x[at] + ", y = " + y
                        + ", |y - x| = " + actual + " > " + bound + " (absmax " + a + ")");
            }
        }
    }

    /**
     * Double quantization changes only the scales: the codes are those of the same quantizer
     * without it, the offset is the correctly rounded mean of the absmax values, the scales are
     * {@code f32(f32(D[q] · absmax2) + offset)} and the values {@code f32(table[code] · scale)}.
     * (So an all-zero block dequantizes to {@code table[0]} times its reconstructed, approximately
     * zero, scale, as in bitsandbytes.)
     */
    @Property(tries = 40)
    void doubleQuantizationOnlyChangesTheScales(@ForAll("doubleQuantizedCases") Case c) {
        CodebookQuantizer dq = (CodebookQuantizer) c.quantizer();
        CodebookQuantizer plain = CodebookQuantizer.builder(dq.codebook()).blockSize(dq.blockSize())
                .build();
        Result withDq = run(subject(), c);
        Result without = run(subject(), new Case(plain, c.w()));
        assertArrayEquals(without.codes(), withDq.codes());
        try (TensorScope scope = subject().newScope()) {
            QuantizedTensor q = dq.quantize(scope, tensor(scope, c.w()), "W");
            QuantizedTensor.NestedScales n = q.nestedScales().orElseThrow();
            float[] absmax = without.scales();
            assertCorrectlyRoundedMean(absmax, n.offset());
            byte[] q2 = scope.toByteArray(n.quantized().codes(scope));
            float[] absmax2 = scope.toFloatArray(n.quantized().plainScales().orElseThrow());
            float[] expected = new float[absmax.length];
            for (int i = 0; i < expected.length; i++) {
                float d = Codebook.DYNAMIC_8BIT.value(q2[i] & 0xFF) * absmax2[i / 256];
                expected[i] = d + n.offset();
            }
            assertBitsEqual("reconstructed scales", expected, withDq.scales());
            float[] values = new float[withDq.codes().length];
            for (int i = 0; i < values.length; i++) {
                values[i] = dq.codebook().value(withDq.codes()[i] & 0xFF)
                        * expected[i / dq.blockSize()];
            }
            assertBitsEqual("dequantized", values, withDq.dequantized());
            assertEquals(CodebookQuantizer.NESTED_BLOCK_SIZE, n.quantized().blockSize());
        }
    }

    /**
     * quantize(dequantize(q)) has the codes of q (for absmax codebooks also the scales), except
     * that FP4's -0.0 (code 8) comes back as +0.0 (code 0): equal values. Not with double
     * quantization: an all-zero block's reconstructed scale can be slightly negative, which flips
     * its codes on the second pass (bitsandbytes does the same).
     */
    @Property(tries = 60)
    void quantizingTheDequantizedTensorGivesTheSameCodes(@ForAll("idempotentCases") Case c) {
        Result first = run(subject(), c);
        Result second = run(subject(), new Case(c.quantizer(),
                new HostTensor(c.w().shape(), first.dequantized())));
        if (c.quantizer() instanceof CodebookQuantizer q) {
            for (int i = 0; i < first.codes().length; i++) {
                int a = first.codes()[i] & 0xFF;
                int b = second.codes()[i] & 0xFF;
                assertTrue(a == b || q.codebook().value(a) == q.codebook().value(b),
                        "element " + i + ": code " + a + " became " + b);
            }
            if (!q.doubleQuantization()) {
                assertBitsEqual("scales", first.scales(), second.scales());
            }
        } else {
            assertArrayEquals(first.codes(), second.codes());
        }
    }

    /** quantize(2^k · W) has the codes of quantize(W): scales scale exactly by powers of two. */
    @Property(tries = 60)
    void scalingByAPowerOfTwoKeepsTheCodes(@ForAll("anyOrdinaryCases") Case c,
            @ForAll @IntRange(min = -8, max = 8) int k) {
        float factor = Math.scalb(1f, k);
        float[] scaled = c.w().data();
        for (int i = 0; i < scaled.length; i++) {
            scaled[i] *= factor;
        }
        Result plain = run(subject(), c);
        Result times = run(subject(), new Case(c.quantizer(), new HostTensor(c.w().shape(), scaled)));
        assertArrayEquals(plain.codes(), times.codes(), "codes at factor " + factor);
        float[] expected = plain.dequantized();
        for (int i = 0; i < expected.length; i++) {
            expected[i] *= factor;
        }
        assertBitsEqual("dequantized · " + factor, expected, times.dequantized());
    }

    /**
     * A block (group, row) of zeros dequantizes to zeros, whatever the rest of the tensor holds
     * (for every quantizer with exact scales; see the double quantization property for the other).
     */
    @Property(tries = 60)
    void anAllZeroBlockDequantizesToZeros(@ForAll("exactScaleCases") Case c, @ForAll long seed) {
        int block = run(subject(), c).blockSize();
        float[] x = c.w().data();
        int blocks = (x.length + block - 1) / block;
        int b = new SplittableRandom(seed).nextInt(blocks);
        Arrays.fill(x, b * block, Math.min(x.length, (b + 1) * block), 0f);
        Result r = run(subject(), new Case(c.quantizer(), new HostTensor(c.w().shape(), x)));
        for (int i = b * block; i < Math.min(x.length, (b + 1) * block); i++) {
            assertEquals(0f, r.dequantized()[i], 0f, "element " + i + " of zero block " + b);
        }
    }

    /**
     * The packed bytes are the codes laid out as specified: bitsandbytes 4-bit {@code code[2j] << 4
     * | code[2j+1]}, LSB-first streams the other way round, 3-bit as a bit stream; unpack(pack(c))
     * is c. Padding bits are not compared.
     */
    @Property(tries = 60)
    void packedBytesFollowTheLayoutAndRoundTrip(@ForAll("anyCases") Case c) {
        Result r = run(subject(), c);
        byte[] expected = packSpec(r.codes(), r.bits(), r.order());
        assertEquals(expected.length, r.packed().length);
        int lastMask = lastByteMask(r.codes().length, r.bits(), r.order());
        for (int j = 0; j < expected.length; j++) {
            int mask = j == expected.length - 1 ? lastMask : 0xFF;
            assertEquals(expected[j] & mask, r.packed()[j] & mask, "byte " + j);
        }
        assertEquals((long) expected.length * 8 - (long) r.codes().length * r.bits(), r.paddingBits());
        try (TensorScope scope = subject().newScope()) {
            Tensor codes = scope.fromHostBytes(r.codes(), r.codes().length);
            Tensor packed = scope.pack(codes, r.bits(), r.order(), 0);
            assertArrayEquals(r.codes(),
                    scope.toByteArray(scope.unpack(packed, r.bits(), r.order(), r.codes().length)));
        }
    }

    /** Integer affine: every element within the clipped range is within scale / 2 of its dequantized value. */
    @Property(tries = 60)
    void affineErrorIsWithinHalfAStep(@ForAll("affineCases") Case c) {
        IntAffineQuantizer q = (IntAffineQuantizer) c.quantizer();
        Result r = run(subject(), c);
        float[] x = c.w().data();
        for (int i = 0; i < x.length; i++) {
            float s = r.scales()[i / r.blockSize()];
            double bound = halfStepBound(s, x[i], q.codeBits());
            double actual = Math.abs((double) r.dequantized()[i] - x[i]);
            int at = i;
            assertTrue(actual <= bound, () -> "element " + at + ": x = " + x[at] + ", y = "
                    + r.dequantized()[at] + ", scale " + s);
        }
    }

    /** Clipping: values inside the clipped range keep the half-step bound; the others saturate. */
    @Property(tries = 40)
    void clippedAffineSaturatesOutsideTheClippedRange(@ForAll("affineCases") Case c,
            @ForAll long seed) {
        IntAffineQuantizer q = (IntAffineQuantizer) c.quantizer();
        int groupSize = run(subject(), c).blockSize();
        float[] x = c.w().data();
        int groups = x.length / groupSize;
        SplittableRandom rng = new SplittableRandom(seed);
        float[] upper = new float[groups];
        float[] lower = new float[groups];
        for (int g = 0; g < groups; g++) {
            upper[g] = (float) rng.nextDouble(0.3, 1.0);
            lower[g] = rng.nextBoolean() ? 1f : (float) rng.nextDouble(0.3, 1.0);
        }
        try (TensorScope scope = subject().newScope()) {
            ClipFactors clip = new ClipFactors(scope.fromHost(upper, groups),
                    scope.fromHost(lower, groups));
            QuantizedTensor qt = q.quantize(scope, tensor(scope, c.w()), "W", clip);
            float[] y = scope.toFloatArray(qt.dequantize(scope));
            float[] s = scope.toFloatArray(qt.scales(scope));
            for (int g = 0; g < groups; g++) {
                float max = Float.NEGATIVE_INFINITY;
                float min = Float.POSITIVE_INFINITY;
                for (int i = g * groupSize; i < (g + 1) * groupSize; i++) {
                    max = Math.max(max, x[i]);
                    min = Math.min(min, x[i]);
                }
                float hi = upper[g] * max;
                float lo = lower[g] * min;
                for (int i = g * groupSize; i < (g + 1) * groupSize; i++) {
                    double step = 2 * halfStepBound(s[g], x[i], q.codeBits());
                    if (x[i] >= lo && x[i] <= hi) {
                        assertTrue(Math.abs((double) y[i] - x[i]) <= step / 2, "element " + i);
                    } else {
                        // outside: the nearest end of the representable range, at most a step beyond
                        assertTrue(Math.abs(y[i]) <= Math.max(Math.abs(hi), Math.abs(lo)) + step,
                                "element " + i);
                    }
                }
            }
        }
    }

    /** Row-wise int8: within absmax / 254 (half a step) of the input, and the row absmax is the scale. */
    @Property(tries = 40)
    void int8RowwiseErrorIsWithinHalfAStep(@ForAll("int8Cases") Case c) {
        Result r = run(subject(), c);
        float[] x = c.w().data();
        int in = r.blockSize();
        float[] absmax = absmax(x, in);
        assertBitsEqual("row absmax", absmax, r.scales());
        for (int i = 0; i < x.length; i++) {
            double bound = halfStepBound(absmax[i / in] / 127f, x[i], 8);
            assertTrue(Math.abs((double) r.dequantized()[i] - x[i]) <= bound, "element " + i);
        }
    }

    /** The backend under test gives exactly the reference backend's codes, bytes, scales and values. */
    @Property(tries = 40)
    void backendsGiveIdenticalResults(@ForAll("anyCases") Case c) {
        Result mine = run(subject(), c);
        Result reference = run(new ReferenceBackend(), c);
        assertArrayEquals(reference.codes(), mine.codes());
        assertArrayEquals(reference.packed(), mine.packed());
        assertBitsEqual("scales", reference.scales(), mine.scales());
        assertBitsEqual("dequantized", reference.dequantized(), mine.dequantized());
    }

    /**
     * NaN or ±Inf anywhere in W is rejected with the tensor's name, the flat index of the first one
     * and its value, by every built-in quantizer.
     */
    @Property(tries = 60)
    void nonFiniteValuesAreRejectedNamingTheFirstOne(@ForAll("builtInCases") Case c,
            @ForAll long seed) {
        float[] x = c.w().data();
        SplittableRandom rng = new SplittableRandom(seed);
        float[] bad = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
        int first = rng.nextInt(x.length);
        x[first] = bad[rng.nextInt(3)];
        if (first + 1 < x.length) {
            x[first + 1 + rng.nextInt(x.length - first - 1)] = bad[rng.nextInt(3)];
        }
        try (TensorScope scope = subject().newScope()) {
            Tensor w = scope.fromHost(x, c.w().shape());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> c.quantizer().quantize(scope, w, "layer.weight"));
            assertEquals("tensor layer.weight has " + x[first] + " at flat index " + first
                    + " (allowed: finite values)", e.getMessage());
        }
    }

    /**
     * What every quantizer, built-in or user-written, must do: a FLOAT32 result of the input's
     * shape, the same through {@link QuantizedTensor#dequantize} and the quantizer, storage
     * accounting consistent with the packed size, and results that survive in the scope they were
     * {@linkplain QuantizedTensor#keep kept} in.
     */
    @Property(tries = 40)
    void everyQuantizerKeepsTheContract(@ForAll("anyCases") Case c) {
        try (TensorScope outer = subject().newScope()) {
            QuantizedTensor q;
            try (TensorScope inner = outer.newChild()) {
                q = c.quantizer().quantize(inner, tensor(inner, c.w()), "W").keep(outer);
            }
            assertSame(c.quantizer(), q.quantizer());
            assertArrayEquals(c.w().shape(), q.shape());
            Tensor y = q.dequantize(outer);
            assertEquals(DType.FLOAT32, y.dtype());
            assertArrayEquals(c.w().shape(), y.shape());
            assertArrayEquals(outer.toFloatArray(y),
                    outer.toFloatArray(c.quantizer().dequantize(outer, q)));
            assertEquals(DType.UINT8, q.packed().dtype());
            assertEquals(c.quantizer().bits(), q.bits());
            long packedBits = q.packed().numel() * 8;
            assertEquals(packedBits - (long) q.numel() * q.bits(), q.paddingBits());
            assertTrue(q.storageBits() > packedBits);
            assertEquals((double) q.storageBits() / q.numel(), q.bitsPerParameter());
        }
    }

    /**
     * A round trip is quantize then dequantize, bit for bit, and the quantized tensor it makes on
     * demand, after the scope it was made in has closed (its needs kept), is quantize's: same
     * bytes, scales and padding.
     */
    @Property(tries = 60)
    void roundTripIsQuantizeThenDequantize(@ForAll("roundTripCases") Case c) {
        Result expected = run(subject(), c);
        try (TensorScope outer = subject().newScope()) {
            RoundTrip trip;
            try (TensorScope inner = outer.newChild()) {
                trip = c.quantizer().roundTrip(inner, tensor(inner, c.w()), "W");
                assertArrayEquals(c.w().shape(), trip.dequantized().shape());
                assertBitsEqual("dequantized", expected.dequantized(),
                        inner.toFloatArray(trip.dequantized()));
                trip.keep(outer);
            }
            QuantizedTensor q;
            try (TensorScope result = outer.newChild()) {
                q = trip.quantized(result).keep(outer);
            }
            assertSame(c.quantizer(), q.quantizer());
            assertArrayEquals(expected.packed(), outer.toByteArray(q.packed()));
            assertBitsEqual("scales", expected.scales(), outer.toFloatArray(q.scales(outer)));
            assertEquals(expected.paddingBits(), q.paddingBits());
        }
    }

    // ==== arbitraries ==========================================================================

    @Provide
    Arbitrary<Case> absmaxCodebookCases() {
        return Arbitraries.oneOf(bnbCases(Distribution.finiteValues(), CODEBOOKS, false),
                nativeCases(Distribution.finiteValues(), CODEBOOKS, BlockScale.ABSMAX));
    }

    @Provide
    Arbitrary<Case> doubleQuantizedCases() {
        return bnbCases(LoftqArbitraries.allBut(Distribution.EXTREME, Distribution.NON_FINITE),
                CODEBOOKS, true);
    }

    @Provide
    Arbitrary<Case> idempotentCases() {
        return Arbitraries.oneOf(
                bnbCases(ORDINARY, SYMMETRIC_RANGE_CODEBOOKS, false),
                nativeCases(ORDINARY, SYMMETRIC_RANGE_CODEBOOKS, BlockScale.ABSMAX),
                affineCases(ORDINARY, Arbitraries.just(true)),
                int8Cases(ORDINARY));
    }

    @Provide
    Arbitrary<Case> anyOrdinaryCases() {
        return allFamilies(ORDINARY, true, true);
    }

    @Provide
    Arbitrary<Case> anyCases() {
        return allFamilies(Distribution.wellScaledValues(), true, true);
    }

    /** Every family, and codebook quantizers with MSE-optimal scales. */
    @Provide
    Arbitrary<Case> roundTripCases() {
        Arbitrary<Case> mse = Combinators.combine(Arbitraries.of(CODEBOOKS),
                Arbitraries.of(16, 64, 256), Arbitraries.of(true, false))
                .as((book, block, dq) -> CodebookQuantizer.builder(book).blockSize(block)
                        .blockScale(BlockScale.MSE_OPTIMAL).doubleQuantization(dq).build())
                .flatMap(q -> tensors(anyShapes(), Distribution.wellScaledValues())
                        .map(w -> new Case(q, w)));
        return Arbitraries.frequencyOf(Tuple.of(3, anyCases()), Tuple.of(1, mse));
    }

    @Provide
    Arbitrary<Case> exactScaleCases() {
        return allFamilies(Distribution.wellScaledValues(), true, false);
    }

    @Provide
    Arbitrary<Case> builtInCases() {
        return allFamilies(Distribution.wellScaledValues(), false, true);
    }

    @Provide
    Arbitrary<Case> affineCases() {
        return affineCases(Distribution.wellScaledValues(), Arbitraries.of(true, false));
    }

    @Provide
    Arbitrary<Case> int8Cases() {
        return int8Cases(Distribution.wellScaledValues());
    }

    private static Arbitrary<Case> allFamilies(Distribution[] distributions, boolean withUser,
            boolean withDoubleQuantization) {
        Arbitrary<Case> builtIn = Arbitraries.oneOf(
                bnbCases(distributions, CODEBOOKS, false),
                bnbCases(distributions, CODEBOOKS, withDoubleQuantization),
                nativeCases(distributions, CODEBOOKS, BlockScale.ABSMAX),
                nativeCases(distributions, new Codebook[] {Codebook.UNIFORM2, Codebook.UNIFORM3,
                    Codebook.UNIFORM4}, BlockScale.MEAN_PLUS_2_5_STD),
                affineCases(distributions, Arbitraries.of(true, false)),
                int8Cases(distributions));
        if (!withUser) {
            return builtIn;
        }
        Arbitrary<Case> user = tensors(anyShapes(), distributions)
                .map(w -> new Case(new TernaryQuantizer(), w));
        return Arbitraries.frequencyOf(Tuple.of(6, builtIn), Tuple.of(1, user));
    }

    /** bitsandbytes convention: any shape, any block size. */
    private static Arbitrary<Case> bnbCases(Distribution[] distributions, Codebook[] codebooks,
            boolean doubleQuantization) {
        Arbitrary<CodebookQuantizer> quantizers = Combinators.combine(Arbitraries.of(codebooks),
                Arbitraries.of(16, 32, 64, 64, 128, 256, 1024, 4096)).as((book, block) ->
                        CodebookQuantizer.builder(book).blockSize(block)
                                .doubleQuantization(doubleQuantization).build());
        return Combinators.combine(quantizers, tensors(anyShapes(), distributions)).as(Case::new);
    }

    /** LoftQ native convention: shapes whose element count is a multiple of the block size. */
    private static Arbitrary<Case> nativeCases(Distribution[] distributions, Codebook[] codebooks,
            BlockScale scale) {
        return Combinators.combine(Arbitraries.of(codebooks), Arbitraries.of(16, 32, 64))
                .flatAs((book, block) -> tensors(multipleShapes(block), distributions)
                        .map(w -> new Case(CodebookQuantizer.builder(book)
                                .convention(Convention.LOFTQ_NATIVE).blockScale(scale)
                                .blockSize(block).build(), w)));
    }

    private static Arbitrary<Case> affineCases(Distribution[] distributions,
            Arbitrary<Boolean> symmetric) {
        Arbitrary<Integer> groupSizes = Arbitraries.of(0, -1, 1, 8, 32, 64, 128);
        return Combinators.combine(Arbitraries.integers().between(2, 8), symmetric, groupSizes)
                .flatAs((bits, sym, g) -> {
                    Grouping grouping = g == 0 ? Grouping.perRow()
                            : g < 0 ? Grouping.perTensor() : Grouping.ofSize(g);
                    IntAffineQuantizer q = IntAffineQuantizer.builder(bits).symmetric(sym)
                            .grouping(grouping).build();
                    Arbitrary<int[]> shapes = g > 0 ? multipleShapes(g) : anyShapes();
                    return tensors(shapes, distributions).map(w -> new Case(q, w));
                });
    }

    private static Arbitrary<Case> int8Cases(Distribution[] distributions) {
        return tensors(anyShapes(), distributions)
                .map(w -> new Case(Int8RowwiseQuantizer.bitsandbytes(), w));
    }

    /** Rank 1 to 3: 1 x 1, tall, wide and odd sizes; 1-D up to 3000 elements. */
    private static Arbitrary<int[]> anyShapes() {
        return Arbitraries.frequencyOf(
                Tuple.of(3, Combinators.combine(LoftqArbitraries.sides(1, 200),
                        LoftqArbitraries.sides(1, 200)).as((r, c) -> new int[] {r, c})),
                Tuple.of(1, LoftqArbitraries.sides(1, 3000).map(n -> new int[] {n})),
                Tuple.of(1, Arbitraries.integers().between(1, 12).array(int[].class).ofSize(3)));
    }

    /** [rows, m · unit], [m · unit] or [2, rows, m · unit]: the last axis a multiple of unit. */
    private static Arbitrary<int[]> multipleShapes(int unit) {
        Arbitrary<Integer> rows = LoftqArbitraries.sides(1, 64);
        Arbitrary<Integer> multiples = Arbitraries.integers().between(1, Math.max(1, 512 / unit));
        return Arbitraries.frequencyOf(
                Tuple.of(3, Combinators.combine(rows, multiples).as((r, m) -> new int[] {r, m * unit})),
                Tuple.of(1, multiples.map(m -> new int[] {m * unit})),
                Tuple.of(1, Combinators.combine(rows, multiples).as((r, m) -> new int[] {2, r, m * unit})));
    }

    private static Arbitrary<HostTensor> tensors(Arbitrary<int[]> shapes, Distribution[] distributions) {
        return LoftqArbitraries.tensors(shapes, distributions);
    }

    // ==== helpers ==============================================================================

    /** Quantizes and dequantizes {@code c} on {@code backend}; everything copied to the host. */
    static Result run(Backend backend, Case c) {
        try (TensorScope scope = backend.newScope()) {
            QuantizedTensor q = c.quantizer().quantize(scope, tensor(scope, c.w()), "W");
            return new Result(scope.toByteArray(q.codes(scope)), scope.toByteArray(q.packed()),
                    scope.toFloatArray(q.scales(scope)), scope.toFloatArray(q.dequantize(scope)),
                    q.blockSize(), q.bits(), q.packOrder(), q.paddingBits());
        }
    }

    /**
     * {@code mean} is the float nearest to the exact mean of {@code values}, the even one on a tie:
     * no neighbour is closer, by exact decimal arithmetic.
     */
    private static void assertCorrectlyRoundedMean(float[] values, float mean) {
        BigDecimal sum = BigDecimal.ZERO;
        for (float v : values) {
            sum = sum.add(new BigDecimal(v));
        }
        BigDecimal n = BigDecimal.valueOf(values.length);
        BigDecimal error = new BigDecimal(mean).multiply(n).subtract(sum).abs();
        for (float neighbour : new float[] {Math.nextDown(mean), Math.nextUp(mean)}) {
            int cmp = new BigDecimal(neighbour).multiply(n).subtract(sum).abs().compareTo(error);
            assertTrue(cmp > 0 || (cmp == 0 && (Float.floatToRawIntBits(mean) & 1) == 0),
                    () -> "offset " + mean + " is not the correctly rounded mean; " + neighbour
                            + " is as close or closer");
        }
    }

    /**
     * Half a quantization step plus the float32 rounding of x / scale, of the product
     * {@code (q - zero) · scale} and of the scale itself: 1e-6 of |x| (about 16 ulps), 1e-6 of a
     * step, and subnormal spacing.
     */
    private static double halfStepBound(float scale, float x, int bits) {
        return scale / 2.0 + 1e-6 * (Math.abs(x) + scale) + (2 << bits) * (double) Float.MIN_VALUE;
    }

    private static Tensor tensor(TensorScope scope, HostTensor w) {
        return scope.fromHost(w.data(), w.shape());
    }

    private static float[] absmax(float[] x, int block) {
        float[] out = new float[(x.length + block - 1) / block];
        for (int i = 0; i < x.length; i++) {
            out[i / block] = Math.max(out[i / block], Math.abs(x[i]));
        }
        return out;
    }

    /** The packing of the spec, written directly: code j at stream bits [j·bits, (j+1)·bits). */
    private static byte[] packSpec(byte[] codes, int bits, PackOrder order) {
        byte[] out = new byte[(int) (((long) codes.length * bits + 7) / 8)];
        for (int j = 0; j < codes.length; j++) {
            for (int k = 0; k < bits; k++) {
                long pos = (long) j * bits + k;
                int bit = order == PackOrder.MSB_FIRST ? (codes[j] >> (bits - 1 - k)) & 1
                        : (codes[j] >> k) & 1;
                int shift = order == PackOrder.MSB_FIRST ? 7 - (int) (pos % 8) : (int) (pos % 8);
                out[(int) (pos / 8)] |= (byte) (bit << shift);
            }
        }
        return out;
    }

    /** The bits of the last byte that hold codes (padding bits cleared). */
    private static int lastByteMask(int n, int bits, PackOrder order) {
        int used = (int) (((long) n * bits - 1) % 8) + 1;
        int low = (1 << used) - 1;
        return order == PackOrder.MSB_FIRST ? (low << (8 - used)) & 0xFF : low;
    }

    private static void assertBitsEqual(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(actual[i])) {
                throw new AssertionError(what + "[" + i + "]: expected " + expected[i] + ", got "
                        + actual[i]);
            }
        }
    }
}
