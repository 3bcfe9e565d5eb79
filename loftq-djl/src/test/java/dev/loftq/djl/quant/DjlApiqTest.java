package dev.loftq.djl.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.tensor.Autograd;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.core.testkit.FloatAssertions;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.quant.apiq.AdamW;
import dev.loftq.quant.apiq.Apiq;
import dev.loftq.quant.apiq.ApiqConfig;
import dev.loftq.quant.apiq.ApiqDivergedException;
import dev.loftq.quant.apiq.ApiqProperties;
import dev.loftq.quant.apiq.ApiqResult;
import dev.loftq.quant.apiq.ApiqSample;
import dev.loftq.quant.apiq.ApiqTarget;
import dev.loftq.quant.apiq.LearnableClipCodebookQuantizer;
import dev.loftq.quant.apiq.LearnableClipQuantizer;
import dev.loftq.quant.apiq.LinearTarget;
import dev.loftq.quant.loftq.Loftq;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.loftq.LoftqConfig;
import dev.loftq.quant.loftq.LoftqResult;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import net.jqwik.api.Example;

/** ApiQ on the DJL backend, which has autograd: the shared properties plus training. */
class DjlApiqTest extends ApiqProperties {
    private static final DjlBackend BACKEND = DjlBackend.cpu();
    private static final int OUT = 64;
    private static final int IN = 128;

    @Override
    protected Backend backend() {
        return BACKEND;
    }

    @Example
    void straightThroughRoundingHasTheValuesOfRoundAndTheGradientOfIdentity() {
        Autograd ad = BACKEND.autograd().orElseThrow();
        try (TensorScope s = BACKEND.newScope()) {
            float[] v = {-2.5f, -1.49f, -0.5f, 0.2f, 0.5f, 1.5f, 2.51f, 7.3f};
            float[] c = {1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f};
            Tensor x = s.fromHost(v, 8);
            ad.requireGradient(x);
            Tensor r;
            try (Autograd.Tape tape = ad.record()) {
                r = LearnableClipQuantizer.round(s, x, ad);
                tape.backward(s.sumLast(s.mul(r, s.fromHost(c, 8))));
            }
            FloatAssertions.assertSameValues("round", s.toFloatArray(s.round(x)), s.toFloatArray(r));
            assertArrayEquals(c, s.toFloatArray(ad.gradient(x)));
        }
    }

    @Example
    void clippingLogitsGetFiniteNonZeroGradients() {
        Autograd ad = BACKEND.autograd().orElseThrow();
        ApiqConfig config = ApiqConfig.builder(1).build();
        LearnableClipQuantizer lwc = new LearnableClipQuantizer(config.quantizer(), 64);
        try (TensorScope s = BACKEND.newScope()) {
            Tensor w = s.fromHost(weights(5, OUT, IN, 64), OUT, IN);
            int groups = lwc.groups(w, "w");
            Tensor gamma = s.full(2f, groups);
            Tensor beta = s.full(2f, groups);
            ad.requireGradient(gamma);
            ad.requireGradient(beta);
            try (Autograd.Tape tape = ad.record()) {
                Tensor d = s.sub(lwc.fakeQuantize(s, w, gamma, beta, ad), w);
                tape.backward(s.sumLast(s.reshape(s.mul(d, d), -1)));
            }
            float[] g = s.toFloatArray(ad.gradient(gamma));
            int nonZero = 0;
            for (float x : g) {
                assertTrue(Float.isFinite(x));
                nonZero += x != 0f ? 1 : 0;
            }
            assertTrue(nonZero > groups / 2, nonZero + " of " + groups);
        }
    }

    /** A layer whose inputs have outlier channels, as transformer activations do. */
    private static List<ApiqSample> samples(TensorScope s, Tensor w, Tensor b, int count, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        List<ApiqSample> out = new ArrayList<>();
        for (int k = 0; k < count; k++) {
            int rows = 16 + r.nextInt(8);
            float[] x = new float[rows * IN];
            for (int i = 0; i < x.length; i++) {
                int ch = i % IN;
                x[i] = (float) (r.nextGaussian() * (ch % 17 == 0 ? 6 : 1));
            }
            Tensor xt = s.fromHost(x, rows, IN);
            out.add(new ApiqSample(xt, s.add(s.matmul(xt, false, w, true), b)));
        }
        return out;
    }

    private static double outputError(TensorScope s, List<ApiqSample> samples, Tensor weff, Tensor b) {
        double num = 0;
        double den = 0;
        for (ApiqSample e : samples) {
            Tensor y = s.add(s.matmul(e.input(), false, weff, true), b);
            num += s.sumOfSquares(s.sub(y, e.output()));
            den += s.sumOfSquares(e.output());
        }
        return num / den;
    }

    @Example
    void lowersTheOutputErrorBelowItsStartAndBelowLoftq() {
        // 150 steps: learning rates 10x the official ones (tuned for 500 steps per layer)
        ApiqConfig config = ApiqConfig.builder(7).rank(4).loraAlpha(4).steps(150).holdOut(0.25)
                .clipOptimizer(5e-2f, 0.1f).loraOptimizer(5e-3f, 0.1f).build();
        try (TensorScope s = BACKEND.newScope()) {
            Tensor w = s.fromHost(weights(11, OUT, IN, 64), OUT, IN);
            Tensor b = s.randomNormal(3, 0f, 0.1f, OUT);
            List<ApiqSample> samples = samples(s, w, b, 12, 21);
            ApiqResult r = Apiq.optimize(s, new LinearTarget("layer", w, b), samples, config);
            LoftqResult lq = Loftq.initialize(s, w, "layer",
                    LoftqConfig.published(config.quantizer(), 4).toBuilder().loraAlpha(4).build());
            Tensor loftqW = s.add(lq.quantized().dequantize(s),
                    s.mul(s.matmul(lq.loraB(), lq.loraA()), lq.scaling()));
            List<ApiqSample> heldOut = samples.subList(9, 12);
            double loftq = outputError(s, heldOut, loftqW, b);
            assertTrue(r.heldOutError() < r.heldOutStartError(), r.toString());
            assertTrue(r.calibrationError() < r.startError(), r.toString());
            assertTrue(r.heldOutError() < loftq, "ApiQ " + r.heldOutError() + " vs LoftQ " + loftq);
            // the stored Q, A, B give the reported error
            ApiqResult.Weight lw = r.weights().get(LinearTarget.WEIGHT);
            Tensor apiqW = s.add(lw.quantized().dequantize(s),
                    s.mul(s.matmul(lw.loraB(), lw.loraA()), r.scaling()));
            assertEquals(r.heldOutError(), outputError(s, heldOut, apiqW, b), 1e-4);
            assertEquals(r.evalSteps().length, r.evalLoss().length);
        }
    }

    /** {@code linear} as a target of no known kind: ApiQ evaluates it through its forward. */
    private static ApiqTarget opaque(LinearTarget linear) {
        return new ApiqTarget() {
            @Override
            public String name() {
                return linear.name();
            }

            @Override
            public Map<String, Tensor> weights() {
                return linear.weights();
            }

            @Override
            public int[] outputShape(int[] inputShape) {
                return linear.outputShape(inputShape);
            }

            @Override
            public Tensor forward(TensorScope scope, Tensor input, Map<String, Tensor> ws) {
                return linear.forward(scope, input, ws);
            }

            @Override
            public boolean rowwise() {
                return true;
            }
        };
    }

    @Example
    void aLinearsSufficientStatisticsGiveTheLossesOfItsForward() {
        // 12 samples of 16-23 tokens: more tokens than the 128 inputs, so the statistics are used
        for (boolean aug : new boolean[] {false, true}) {
            ApiqConfig config = ApiqConfig.builder(7).rank(4).loraAlpha(4).steps(30).evalEvery(5)
                    .holdOut(0).aug(aug).clipOptimizer(5e-2f, 0.1f).loraOptimizer(5e-3f, 0.1f).build();
            try (TensorScope s = BACKEND.newScope()) {
                Tensor w = s.fromHost(weights(11, OUT, IN, 64), OUT, IN);
                Tensor b = s.randomNormal(3, 0f, 0.1f, OUT);
                // outputs of a perturbed layer, so that the residual at the start is not only the
                // quantization error
                List<ApiqSample> samples = samples(s, s.mul(w, 1.1f), b, 12, 21);
                LinearTarget linear = new LinearTarget("layer", w, b);
                ApiqResult statistics = Apiq.optimize(s, linear, samples, config);
                ApiqResult forward = Apiq.optimize(s, opaque(linear), samples, config);
                assertEquals(30, statistics.trainLoss().length);
                for (int t = 0; t < 30; t++) {
                    double want = forward.trainLoss()[t];
                    assertEquals(want, statistics.trainLoss()[t], 1e-5 * want, "aug " + aug + " step " + t);
                }
                for (int i = 0; i < forward.evalLoss().length; i++) {
                    double want = forward.evalLoss()[i];
                    assertEquals(want, statistics.evalLoss()[i], 1e-5 * want, "aug " + aug + " eval " + i);
                }
                assertEquals(forward.calibrationError(), statistics.calibrationError(),
                        1e-5 * forward.calibrationError());
            }
        }
    }

    @Example
    void theNormalFloatVariantLowersTheOutputErrorBelowItsStartAndBelowPlainNf2() {
        ApiqConfig config = ApiqConfig.builder(7).bits(2).normalFloat(true).rank(4).loraAlpha(4).steps(150)
                .holdOut(0.25).clipOptimizer(5e-2f, 0.1f).loraOptimizer(5e-3f, 0.1f).build();
        try (TensorScope s = BACKEND.newScope()) {
            Tensor w = s.fromHost(weights(11, OUT, IN, 64), OUT, IN);
            Tensor b = s.randomNormal(3, 0f, 0.1f, OUT);
            List<ApiqSample> samples = samples(s, w, b, 12, 21);
            ApiqResult r = Apiq.optimize(s, new LinearTarget("layer", w, b), samples, config);
            CodebookQuantizer nf2 = config.codebookQuantizer();
            List<ApiqSample> heldOut = samples.subList(9, 12);
            double plain = outputError(s, heldOut, nf2.dequantize(s, nf2.quantize(s, w, "w")), b);
            assertTrue(r.heldOutError() < r.heldOutStartError(), r.toString());
            assertTrue(r.heldOutError() < plain, "ApiQ NF2 " + r.heldOutError() + " vs plain NF2 " + plain);
            ApiqResult.Weight lw = r.weights().get(LinearTarget.WEIGHT);
            assertEquals(nf2, lw.quantized().quantizer());
            assertEquals(OUT * IN / 64, lw.gamma().dim(0));
            assertNull(lw.beta());
            Tensor apiqW = s.add(lw.quantized().dequantize(s), s.mul(s.matmul(lw.loraB(), lw.loraA()), r.scaling()));
            assertEquals(r.heldOutError(), outputError(s, heldOut, apiqW, b), 1e-4);
        }
    }

    @Example
    void learnedClippingOfTheBlockAbsmaxLowersALayersOutputErrorBelowPlainNf2() {
        Autograd ad = BACKEND.autograd().orElseThrow();
        CodebookQuantizer nf2 = CodebookQuantizer.loftqNormalFloat(2);
        LearnableClipCodebookQuantizer nf = new LearnableClipCodebookQuantizer(nf2);
        try (TensorScope s = BACKEND.newScope()) {
            Tensor w = s.fromHost(weights(11, OUT, IN, 64), OUT, IN);
            List<ApiqSample> samples = samples(s, w, s.full(0f, OUT), 12, 21);
            Tensor[] inputs = new Tensor[samples.size()];
            for (int i = 0; i < inputs.length; i++) {
                inputs[i] = samples.get(i).input();
            }
            Tensor x = s.concat(0, inputs);
            Tensor y = s.matmul(x, false, w, true);
            double plain = relativeOutputError(s, x, y, nf2.dequantize(s, nf2.quantize(s, w, "w")));
            LearnableClipCodebookQuantizer.Blocked blocked = nf.block(s, w, "w");
            Tensor[] gamma = {s.full(4f, nf.blocks(w, "w"))};
            double start = relativeOutputError(s, x, y, nf.fakeQuantize(s, blocked, gamma[0], null));
            AdamW adam = new AdamW(new AdamW.Group(0.1f, 0f));
            for (int t = 0; t < 100; t++) {
                ad.requireGradient(gamma[0]);
                try (TensorScope step = s.newChild()) {
                    try (Autograd.Tape tape = ad.record()) {
                        Tensor d = step.sub(step.matmul(x, false,
                                nf.fakeQuantize(step, blocked, gamma[0], ad), true), y);
                        tape.backward(step.sumLast(step.reshape(step.mul(d, d), -1)));
                    }
                    gamma = adam.step(s, gamma, new Tensor[] {ad.gradient(gamma[0])});
                }
            }
            double learned = relativeOutputError(s, x, y, nf.quantize(s, w, "w", gamma[0]).dequantize(s));
            assertTrue(learned < start && learned < 0.9 * plain,
                    "plain NF2 " + plain + ", start " + start + ", learned " + learned);
        }
    }

    private static double relativeOutputError(TensorScope s, Tensor x, Tensor y, Tensor weight) {
        return s.sumOfSquares(s.sub(s.matmul(x, false, weight, true), y)) / s.sumOfSquares(y);
    }

    @Example
    void aNonFiniteLossStopsTheTargetNamingItAndTheStep() {
        ApiqConfig config = ApiqConfig.builder(7).rank(2).steps(30).evalEvery(5).holdOut(0).build();
        try (TensorScope s = BACKEND.newScope()) {
            Tensor w = s.fromHost(weights(11, OUT, IN, 64), OUT, IN);
            LinearTarget linear = new LinearTarget("enc.0.dense", w, null);
            int[] calls = {0};
            // a target that overflows from its 13th forward on (the 12th step)
            ApiqTarget exploding = new ApiqTarget() {
                @Override
                public String name() {
                    return linear.name();
                }

                @Override
                public Map<String, Tensor> weights() {
                    return linear.weights();
                }

                @Override
                public int[] outputShape(int[] inputShape) {
                    return linear.outputShape(inputShape);
                }

                @Override
                public Tensor forward(TensorScope scope, Tensor input, Map<String, Tensor> ws) {
                    Tensor y = linear.forward(scope, input, ws);
                    return ++calls[0] > 14 ? scope.mul(y, Float.POSITIVE_INFINITY) : y;
                }
            };
            List<ApiqSample> samples = samples(s, w, s.full(0f, OUT), 2, 5);
            ApiqDivergedException e = assertThrows(ApiqDivergedException.class,
                    () -> Apiq.optimize(s, exploding, samples, config));
            assertTrue(e.getMessage().contains("enc.0.dense") && e.getMessage().contains("step"),
                    e.getMessage());
            assertTrue(e.best().bestStep() <= 10, "best step " + e.best().bestStep());
            assertTrue(Double.isFinite(e.best().startError()));
        }
    }
}
