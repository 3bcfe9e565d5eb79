package dev.loftq.quant.apiq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.core.testkit.FloatAssertions;
import dev.loftq.quant.codebook.Codebook;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.IntAffineQuantizer;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.util.List;
import java.util.SplittableRandom;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.FloatRange;
import net.jqwik.api.constraints.IntRange;

/**
 * ApiQ's building blocks on one backend: the learnable-clipping fake quantizer stores what it
 * trains, AdamW steps as torch does, and bad settings are refused. Autograd-dependent properties
 * live with the backends that have autograd.
 */
public abstract class ApiqProperties {
    /** The backend under test. */
    protected abstract Backend backend();

    /** Heavy-tailed weights [rows, cols] with an occasional all-zero group. */
    protected static float[] weights(long seed, int rows, int cols, int group) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            double g = r.nextGaussian();
            w[i] = (float) (r.nextInt(20) == 0 ? 4 * g : g) * 0.05f;
        }
        if (r.nextBoolean()) {
            java.util.Arrays.fill(w, 0, group, 0f);
        }
        return w;
    }

    @Property(tries = 40)
    void fakeQuantizationEqualsTheStoredIntegerQuantization(@ForAll("seeds") long seed,
            @ForAll @IntRange(min = 2, max = 4) int bits, @ForAll boolean symmetric,
            @ForAll @IntRange(min = 1, max = 6) int rows, @ForAll @IntRange(min = 1, max = 3) int groupsPerRow,
            @ForAll @FloatRange(min = -3f, max = 6f) float logit) {
        int group = 16;
        int cols = group * groupsPerRow;
        IntAffineQuantizer q = IntAffineQuantizer.builder(bits).symmetric(symmetric)
                .grouping(dev.loftq.quant.quantizer.Grouping.ofSize(group)).build();
        LearnableClipQuantizer lwc = new LearnableClipQuantizer(q, group);
        try (TensorScope s = backend().newScope()) {
            Tensor w = s.fromHost(weights(seed, rows, cols, group), rows, cols);
            int groups = rows * groupsPerRow;
            float[] g = new float[groups];
            float[] b = new float[groups];
            SplittableRandom r = new SplittableRandom(seed + 1);
            for (int i = 0; i < groups; i++) {
                g[i] = logit + (float) r.nextDouble();
                b[i] = logit - (float) r.nextDouble();
            }
            Tensor gamma = s.fromHost(g, groups);
            Tensor beta = s.fromHost(b, groups);
            float[] fake = s.toFloatArray(lwc.fakeQuantize(s, w, gamma, beta, null));
            QuantizedTensor stored = lwc.quantize(s, w, "w", gamma, beta);
            FloatAssertions.assertSameValues("fake vs stored", s.toFloatArray(stored.dequantize(s)),
                    fake);
        }
    }

    @Example
    void largeLogitsAreTheUnclippedQuantizer() {
        IntAffineQuantizer q = IntAffineQuantizer.builder(2)
                .grouping(dev.loftq.quant.quantizer.Grouping.ofSize(8)).build();
        LearnableClipQuantizer lwc = new LearnableClipQuantizer(q, 8);
        try (TensorScope s = backend().newScope()) {
            Tensor w = s.fromHost(weights(3, 4, 16, 8), 4, 16);
            Tensor big = s.full(30f, 8); // sigmoid(30) == 1 in float32
            float[] fake = s.toFloatArray(lwc.fakeQuantize(s, w, big, big, null));
            FloatAssertions.assertSameValues("sigmoid = 1 vs no clipping",
                    s.toFloatArray(q.dequantize(s, q.quantize(s, w, "w"))), fake);
        }
    }

    @Property(tries = 40)
    void fakeCodebookQuantizationEqualsTheStoredOne(@ForAll("seeds") long seed,
            @ForAll @IntRange(min = 2, max = 4) int bits, @ForAll boolean bitsandbytes,
            @ForAll @IntRange(min = 1, max = 6) int rows, @ForAll @IntRange(min = 1, max = 3) int blocksPerRow,
            @ForAll @FloatRange(min = -3f, max = 6f) float logit) {
        int cols = 64 * blocksPerRow;
        LearnableClipCodebookQuantizer nf = new LearnableClipCodebookQuantizer(normalFloat(bits, bitsandbytes));
        try (TensorScope s = backend().newScope()) {
            Tensor w = s.fromHost(weights(seed, rows, cols, 64), rows, cols);
            int blocks = nf.blocks(w, "w");
            float[] g = new float[blocks];
            SplittableRandom r = new SplittableRandom(seed + 1);
            for (int i = 0; i < blocks; i++) {
                g[i] = logit + (float) r.nextDouble();
            }
            Tensor gamma = s.fromHost(g, blocks);
            float[] fake = s.toFloatArray(nf.fakeQuantize(s, nf.block(s, w, "w"), gamma, null));
            QuantizedTensor stored = nf.quantize(s, w, "w", gamma);
            FloatAssertions.assertSameValues("fake vs stored", s.toFloatArray(stored.dequantize(s)), fake);
        }
    }

    @Property(tries = 20)
    void codebookClipFactorOneIsThePlainQuantizer(@ForAll("seeds") long seed,
            @ForAll @IntRange(min = 2, max = 4) int bits, @ForAll boolean bitsandbytes) {
        CodebookQuantizer q = normalFloat(bits, bitsandbytes);
        LearnableClipCodebookQuantizer nf = new LearnableClipCodebookQuantizer(q);
        try (TensorScope s = backend().newScope()) {
            Tensor w = s.fromHost(weights(seed, 6, 128, 64), 6, 128);
            Tensor one = s.full(1f, 12);
            QuantizedTensor plain = q.quantize(s, w, "w");
            QuantizedTensor clipped = q.quantize(s, w, "w", one);
            assertArrayEquals(s.toByteArray(plain.packed()), s.toByteArray(clipped.packed()));
            float[] expected = s.toFloatArray(plain.dequantize(s));
            FloatAssertions.assertSameValues("clip 1 vs plain", expected, s.toFloatArray(clipped.dequantize(s)));
            Tensor big = s.full(30f, 12); // sigmoid(30) == 1 in float32
            FloatAssertions.assertSameValues("sigmoid = 1 vs plain", expected,
                    s.toFloatArray(nf.fakeQuantize(s, nf.block(s, w, "w"), big, null)));
        }
    }

    @Example
    void codebookClippingIsRefusedWhereItDoesNotApply() {
        CodebookQuantizer nf2 = CodebookQuantizer.loftqNormalFloat(2);
        try (TensorScope s = backend().newScope()) {
            Tensor w = s.fromHost(weights(1, 2, 64, 64), 2, 64);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> nf2.quantize(s, w, "w", s.full(0f, 2)));
            assertTrue(e.getMessage().contains("(0, 1], got 0.0"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> nf2.quantize(s, w, "w", s.full(1f, 3)));
            assertTrue(e.getMessage().contains("[2]") && e.getMessage().contains("[3]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> new LearnableClipCodebookQuantizer(
                    nf2.withBlockScale(CodebookQuantizer.BlockScale.MSE_OPTIMAL)));
            assertTrue(e.getMessage().contains("absmax"), e.getMessage());
        }
    }

    private static CodebookQuantizer normalFloat(int bits, boolean bitsandbytes) {
        return bitsandbytes ? CodebookQuantizer.builder(Codebook.normalFloat(bits)).build()
                : CodebookQuantizer.loftqNormalFloat(bits);
    }

    @Example
    void adamWStepsAsTorchDoes() {
        // torch.optim.AdamW([p], lr=0.1, weight_decay=0.5) with p = [1, -2], grads [0.5, 0.25] then
        // [-1, 2], by hand from its update rule, in double
        double lr = 0.1;
        double wd = 0.5;
        double[] p = {1, -2};
        double[][] g = {{0.5, 0.25}, {-1, 2}};
        double[] m = new double[2];
        double[] v = new double[2];
        AdamW adam = new AdamW(new AdamW.Group((float) lr, (float) wd));
        try (TensorScope s = backend().newScope()) {
            Tensor[] cur = {s.fromHost(new float[] {1f, -2f}, 2)};
            for (int t = 1; t <= 2; t++) {
                for (int i = 0; i < 2; i++) {
                    p[i] *= 1 - lr * wd;
                    m[i] = 0.9 * m[i] + 0.1 * g[t - 1][i];
                    v[i] = 0.999 * v[i] + 0.001 * g[t - 1][i] * g[t - 1][i];
                    double mh = m[i] / (1 - Math.pow(0.9, t));
                    double denom = Math.sqrt(v[i]) / Math.sqrt(1 - Math.pow(0.999, t)) + 1e-8;
                    p[i] -= lr * mh / denom;
                }
                Tensor grad = s.fromHost(new float[] {(float) g[t - 1][0], (float) g[t - 1][1]}, 2);
                cur = adam.step(s, cur, new Tensor[] {grad});
                float[] got = s.toFloatArray(cur[0]);
                for (int i = 0; i < 2; i++) {
                    assertEquals(p[i], got[i], 1e-6, "step " + t + " element " + i);
                }
            }
            assertEquals(2, adam.steps());
        }
    }

    @Example
    void badSettingsAreRefusedByName() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ApiqConfig.builder(1).loraOptimizer(0f, 0.1f).build());
        assertTrue(e.getMessage().contains("loraLr") && e.getMessage().contains("0.0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> ApiqConfig.builder(1).clipOptimizer(-1e-3f, 0.1f).build());
        assertTrue(e.getMessage().contains("clipLr"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ApiqConfig.builder(1).bits(1).build());
        assertTrue(e.getMessage().contains("bits must be in [2, 8], got 1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> ApiqConfig.builder(1).holdOut(0.95).build());
        assertTrue(e.getMessage().contains("holdOut"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Group(0f, 0f));
    }

    @Example
    void anEmptyCalibrationSetIsRefused() {
        try (TensorScope s = backend().newScope()) {
            LinearTarget t = new LinearTarget("l", s.fromHost(weights(1, 4, 64, 64), 4, 64), null);
            ApiqConfig c = ApiqConfig.builder(1).rank(2).build();
            if (!backend().hasAutograd()) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> Apiq.optimize(s, t, List.of(), c));
                assertTrue(e.getMessage().contains("autograd"), e.getMessage());
                return;
            }
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Apiq.optimize(s, t, List.of(), c));
            assertTrue(e.getMessage().contains("must not be empty"), e.getMessage());
            ApiqSample bad = new ApiqSample(s.full(1f, 3, 64), s.full(0f, 3, 5));
            e = assertThrows(IllegalArgumentException.class,
                    () -> Apiq.optimize(s, t, List.of(bad), c));
            assertTrue(e.getMessage().contains("[3, 4]") && e.getMessage().contains("[3, 5]"),
                    e.getMessage());
            ApiqSample wrongIn = new ApiqSample(s.full(1f, 3, 32), s.full(0f, 3, 4));
            e = assertThrows(IllegalArgumentException.class,
                    () -> Apiq.optimize(s, t, List.of(wrongIn), c));
            assertTrue(e.getMessage().contains("[3, 32]"), e.getMessage());
        }
    }

    @net.jqwik.api.Provide
    net.jqwik.api.Arbitrary<Long> seeds() {
        return net.jqwik.api.Arbitraries.longs();
    }
}
