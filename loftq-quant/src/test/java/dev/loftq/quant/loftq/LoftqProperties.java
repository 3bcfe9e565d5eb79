package dev.loftq.quant.loftq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.linalg.LowRankOptions;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.core.testkit.LoftqArbitraries;
import dev.loftq.core.testkit.LoftqArbitraries.Distribution;
import dev.loftq.core.testkit.Matrix;
import dev.loftq.quant.codebook.Codebook;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.Quantizer;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

/**
 * Invariants of {@link Loftq} on arbitrary weights, abstract over the backend: never worse than
 * the QLoRA start, keep-best returns the minimum, deterministic for a seed, finite factors, the
 * split honours the scaling; and its bad-input messages.
 */
public abstract class LoftqProperties {
    /** The backend under test. */
    protected abstract Backend backend();

    private static final Quantizer NF4 = CodebookQuantizer.bitsandbytesNf4();
    private static final Quantizer NF2 = CodebookQuantizer.builder(Codebook.NF2).build();

    /** Relative slack for float32 rounding in the error norms. */
    private static final double SLACK = 1e-5;

    @Provide
    Arbitrary<Matrix> weights() {
        return LoftqArbitraries.matrices(LoftqArbitraries.sides(2, 150),
                LoftqArbitraries.sides(2, 150),
                LoftqArbitraries.distributions(Distribution.GAUSSIAN, Distribution.HEAVY_TAILED,
                        Distribution.ZERO_ROWS, Distribution.CONSTANT_BLOCKS,
                        Distribution.HALF_INTEGERS));
    }

    @Provide
    Arbitrary<LoftqConfig.Builder> configs() {
        return Arbitraries.of(NF4, NF2).flatMap(q -> Arbitraries.of(true, false).flatMap(published ->
                Arbitraries.integers().between(1, 4).map(steps -> (published
                        ? LoftqConfig.published(q, 1).toBuilder().lowRank(LowRankOptions.fastDefaults())
                        : LoftqConfig.builder(q)).iterations(steps))));
    }

    private static LoftqConfig withRank(LoftqConfig.Builder b, Matrix w, int rankWish) {
        int rank = Math.min(rankWish, Math.min(w.rows(), w.cols()));
        return b.rank(rank).loraAlpha(rank).build();
    }

    @Property(tries = 40)
    void neverWorseThanTheQloraStart(@ForAll("weights") Matrix w, @ForAll("configs") LoftqConfig.Builder b,
            @ForAll("ranks") int rank) {
        LoftqConfig config = withRank(b, w, rank);
        try (TensorScope s = backend().newScope()) {
            LoftqResult r = Loftq.initialize(s, s.fromHost(w.data(), w.rows(), w.cols()), "W", config);
            assertTrue(r.errors()[0] <= r.qloraError() * (1 + SLACK) + 1e-12,
                    "step 1 error " + r.errors()[0] + " above the QLoRA start " + r.qloraError());
            if (config.keepBest()) {
                // Without keep-best (the published preset) later steps may rise again.
                assertTrue(r.error() <= r.qloraError() * (1 + SLACK) + 1e-12, "returned error "
                        + r.error() + " above the QLoRA start " + r.qloraError());
            }
            // The reported error is the error of the returned tensors.
            float[] approx = s.toFloatArray(s.add(r.quantized().dequantize(s),
                    s.mul(s.matmul(r.loraB(), r.loraA()), r.scaling())));
            double num = 0;
            double den = 0;
            for (int i = 0; i < approx.length; i++) {
                double d = w.data()[i] - (double) approx[i];
                num += d * d;
                den += w.data()[i] * (double) w.data()[i];
            }
            double measured = den > 0 ? Math.sqrt(num / den) : 0;
            assertEquals(r.error(), measured, 1e-4 * Math.max(1, r.error()) + 1e-6);
        }
    }

    @Provide
    Arbitrary<Integer> ranks() {
        return Arbitraries.integers().between(1, 8);
    }

    @Property(tries = 25)
    void keepBestReturnsTheLowestStep(@ForAll("weights") Matrix w, @ForAll("ranks") int rank) {
        LoftqConfig config = withRank(LoftqConfig.builder(NF2).iterations(4), w, rank);
        try (TensorScope s = backend().newScope()) {
            LoftqResult r = Loftq.initialize(s, s.fromHost(w.data(), w.rows(), w.cols()), "W", config);
            double min = Double.POSITIVE_INFINITY;
            for (double e : r.errors()) {
                min = Math.min(min, e);
            }
            assertEquals(min, r.error(), 0.0);
            assertEquals(min, r.errors()[r.returnedStep() - 1], 0.0);
        }
    }

    @Property(tries = 20)
    void sameSeedSameResultAndFiniteFactors(@ForAll("weights") Matrix w,
            @ForAll("configs") LoftqConfig.Builder b, @ForAll("ranks") int rank) {
        LoftqConfig config = withRank(b.seed(17), w, rank);
        try (TensorScope s = backend().newScope()) {
            Tensor weight = s.fromHost(w.data(), w.rows(), w.cols());
            LoftqResult r1 = Loftq.initialize(s, weight, "W", config);
            LoftqResult r2 = Loftq.initialize(s, weight, "W", config);
            float[] a = s.toFloatArray(r1.loraA());
            float[] bb = s.toFloatArray(r1.loraB());
            assertArrayEquals(a, s.toFloatArray(r2.loraA()));
            assertArrayEquals(bb, s.toFloatArray(r2.loraB()));
            assertArrayEquals(s.toByteArray(r1.quantized().packed()),
                    s.toByteArray(r2.quantized().packed()));
            assertArrayEquals(r1.errors(), r2.errors());
            for (float v : a) {
                assertTrue(Float.isFinite(v), "A has " + v);
            }
            for (float v : bb) {
                assertTrue(Float.isFinite(v), "B has " + v);
            }
        }
    }

    @Property(tries = 15)
    void theSplitHonoursTheScaling(@ForAll("weights") Matrix w, @ForAll("ranks") int rankWish) {
        int rank = Math.min(rankWish, Math.min(w.rows(), w.cols()));
        LoftqConfig base = LoftqConfig.builder(NF4).rank(rank).iterations(2).build();
        try (TensorScope s = backend().newScope()) {
            Tensor weight = s.fromHost(w.data(), w.rows(), w.cols());
            LoftqResult one = Loftq.initialize(s, weight, "W", base);
            LoftqResult four = Loftq.initialize(s, weight, "W",
                    base.toBuilder().loraAlpha(4f * rank).build());
            LoftqResult rs = Loftq.initialize(s, weight, "W",
                    base.toBuilder().loraAlpha(16f).rsLora(true).build());
            assertEquals(4f, four.scaling(), 0f);
            assertEquals((float) (16 / Math.sqrt(rank)), rs.scaling(), 1e-6f);
            float[] p1 = s.toFloatArray(s.mul(s.matmul(one.loraB(), one.loraA()), one.scaling()));
            for (LoftqResult other : new LoftqResult[] {four, rs}) {
                float[] p = s.toFloatArray(s.mul(s.matmul(other.loraB(), other.loraA()),
                        other.scaling()));
                double scale = 0;
                for (float v : p1) {
                    scale = Math.max(scale, Math.abs(v));
                }
                for (int i = 0; i < p.length; i++) {
                    assertEquals(p1[i], p[i], 1e-4 * scale + 1e-30, "s·B·A at " + i);
                }
            }
        }
    }

    @Test
    void adaptersForAGivenBackboneLowerItsError() {
        Matrix w = new Matrix(48, 80, LoftqArbitraries.values(Distribution.HEAVY_TAILED, 48, 80, 5));
        try (TensorScope s = backend().newScope()) {
            Tensor weight = s.fromHost(w.data(), 48, 80);
            Tensor q = NF2.quantize(s, weight, "W").dequantize(s);
            LoraFactors f = Loftq.adaptersFor(s, weight, q, 8, 2f, LowRankOptions.exactDefaults(), 1);
            assertTrue(f.error() < f.errorWithoutAdapters());
            assertArrayEquals(new int[] {8, 80}, f.loraA().shape());
            assertArrayEquals(new int[] {48, 8}, f.loraB().shape());
            LoraFactors tutorial = Loftq.tutorialBaseline(s, weight, 8, 2f, 1);
            assertTrue(tutorial.error() <= tutorial.errorWithoutAdapters() * (1 + SLACK));
        }
    }

    @Test
    void badInputIsRejectedWithTheParameterValueAndRange() {
        try (TensorScope s = backend().newScope()) {
            Tensor w = s.full(1f, 6, 4);
            expect("rank must be in [1, 4], got 5",
                    () -> Loftq.initialize(s, w, "W", LoftqConfig.builder(NF4).rank(5).build()));
            expect("rank must be in [1, 4096], got 0", () -> LoftqConfig.builder(NF4).rank(0).build());
            expect("iterations must be in [1, 1000], got 0",
                    () -> LoftqConfig.builder(NF4).iterations(0).build());
            expect("loraAlpha must be finite and > 0, got 0.0",
                    () -> LoftqConfig.builder(NF4).loraAlpha(0f).build());
            expect("loraAlpha must be finite and > 0, got -2.0",
                    () -> LoftqConfig.builder(NF4).loraAlpha(-2f).build());
            float[] bad = new float[24];
            bad[13] = Float.NaN;
            expect("tensor W has NaN at flat index 13", () -> Loftq.initialize(s,
                    s.fromHost(bad, 6, 4), "W", LoftqConfig.builder(NF4).rank(2).build()));
            bad[13] = Float.POSITIVE_INFINITY;
            expect("tensor W has Infinity at flat index 13", () -> Loftq.initialize(s,
                    s.fromHost(bad, 6, 4), "W", LoftqConfig.builder(NF4).rank(2).build()));
            expect("adaptersFor: Q must be FLOAT32 of W's shape [6, 4], got FLOAT32 [4, 6]",
                    () -> Loftq.adaptersFor(s, w, s.full(0f, 4, 6), 2, 1f,
                            LowRankOptions.fastDefaults(), 1));
            expect("tensor W must be a 2-D FLOAT32 weight [out, in], got FLOAT32 [24]",
                    () -> Loftq.initialize(s, s.full(1f, 24), "W",
                            LoftqConfig.builder(NF4).rank(1).build()));
        }
    }

    private static void expect(String messagePart, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(messagePart),
                "message '" + e.getMessage() + "' should contain '" + messagePart + "'");
    }
}
