package dev.loftq.djl.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.core.Linear;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class QuantizedLoraLinearTest {
    private static final int OUT = 24;
    private static final int IN = 40;
    private static final int R = 4;
    private static DjlBackend backend;
    private static NDManager manager;

    @BeforeAll
    static void start() {
        backend = DjlBackend.cpu();
        manager = NDManager.newBaseManager();
    }

    @AfterAll
    static void stop() {
        manager.close();
        backend.close();
    }

    private static float[] gaussian(long seed, int n, float std) {
        Random r = new Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) r.nextGaussian() * std;
        }
        return v;
    }

    private static QuantizedLoraLinear layer(boolean cache, boolean withBias) {
        TensorScope scope = backend.newScope();
        Tensor w = scope.fromHost(gaussian(1, OUT * IN, 0.2f), OUT, IN);
        QuantizedTensor q = CodebookQuantizer.bitsandbytesNf4().quantize(scope, w, "w");
        return QuantizedLoraLinear.loraBuilder().optName("test.layer")
                .setQuantized(scope, q)
                .setLora(scope.fromHost(gaussian(2, R * IN, 0.1f), R, IN),
                        scope.fromHost(gaussian(3, OUT * R, 0.1f), OUT, R))
                .setScaling(2f)
                .optBias(withBias ? scope.fromHost(gaussian(4, OUT, 1f), OUT) : null)
                .optCacheDequantized(cache).build();
    }

    /** y = x·deq(Q)ᵀ + s·(x·Aᵀ)·Bᵀ + b written out with NDArray matmuls. */
    private static NDArray reference(NDManager m, QuantizedLoraLinear l, NDArray x) {
        try (TensorScope tmp = l.scope().newChild()) {
            NDArray w = DjlBackend.ndArray(l.quantized().dequantize(tmp));
            NDArray a = l.loraA().getArray();
            NDArray b = l.loraB().getArray();
            NDArray x2 = x.reshape(-1, IN);
            NDArray y = x2.matMul(w.transpose()).add(x2.matMul(a.transpose()).matMul(b.transpose())
                    .mul(l.scaling()));
            if (l.bias() != null) {
                y = y.add(l.bias());
            }
            y.attach(m);
            long[] s = x.getShape().getShape();
            return y.reshape(s[0], s[1], OUT);
        }
    }

    @Test
    void forwardMatchesTheFormulaOverLeadingDimensionsWithAndWithoutCache() {
        try (QuantizedLoraLinear fly = layer(false, true); QuantizedLoraLinear cached = layer(true, true);
                NDManager m = manager.newSubManager()) {
            NDArray x = m.create(gaussian(5, 2 * 3 * IN, 1f), new Shape(2, 3, IN));
            NDArray y = fly.forward(new ParameterStore(m, false), new NDList(x), false).head();
            NDArray yc = cached.forward(new ParameterStore(m, false), new NDList(x), false).head();
            assertEquals(new Shape(2, 3, OUT), y.getShape());
            assertArrayEquals(reference(m, fly, x).toFloatArray(), y.toFloatArray(), 1e-4f);
            assertArrayEquals(y.toFloatArray(), yc.toFloatArray(), 0f);
            assertEquals(new Shape(2, 3, OUT), fly.getOutputShapes(new Shape[] {new Shape(2, 3, IN)})[0]);
        }
    }

    @Test
    void forwardDequantizationIsBitForBitTheQuantizers() {
        dev.loftq.quant.quantizer.Quantizer[] quantizers = {
            CodebookQuantizer.bitsandbytesNf4DoubleQuant(), CodebookQuantizer.bitsandbytesFp4(),
            CodebookQuantizer.loftqNormalFloat(4), CodebookQuantizer.loftqNormalFloat(2)};
        int[][] shapes = {{7, 45}, {33, 64}, {1, 1}, {300, 9}};
        for (dev.loftq.quant.quantizer.Quantizer quantizer : quantizers) {
            for (int[] s : shapes) {
                boolean bnb = quantizer.description().contains("bitsandbytes");
                if (!bnb && s[0] * s[1] % 64 != 0) {
                    continue; // LoftQ's native convention needs whole blocks
                }
                TensorScope scope = backend.newScope();
                Tensor w = scope.fromHost(gaussian(s[0] * 31L + s[1], s[0] * s[1], 1f), s);
                QuantizedTensor q = quantizer.quantize(scope, w, "w");
                int r = 1;
                try (QuantizedLoraLinear l = QuantizedLoraLinear.loraBuilder().setQuantized(scope, q)
                        .setLora(scope.fromHost(new float[r * s[1]], r, s[1]),
                                scope.fromHost(new float[s[0] * r], s[0], r))
                        .setScaling(1f).build();
                        TensorScope tmp = backend.newScope()) {
                    float[] fast = tmp.toFloatArray(l.dequantize(tmp));
                    float[] spi = tmp.toFloatArray(q.dequantize(tmp));
                    String what = quantizer.description() + " " + java.util.Arrays.toString(s);
                    for (int i = 0; i < spi.length; i++) {
                        assertEquals(Float.floatToRawIntBits(spi[i]),
                                Float.floatToRawIntBits(fast[i]), what + " at " + i);
                    }
                }
            }
        }
    }

    @Test
    void onlyLoraFactorsAreParametersAndOnlyTheyGetGradients() {
        try (QuantizedLoraLinear l = layer(false, true); NDManager m = manager.newSubManager()) {
            assertEquals(List.of(QuantizedLoraLinear.LORA_A, QuantizedLoraLinear.LORA_B),
                    l.getParameters().keys());
            NDArray x = m.create(gaussian(6, 5 * IN, 1f), new Shape(5, IN));
            x.setRequiresGradient(true);
            byte[] packedBefore = DjlBackend.ndArray(l.quantized().packed()).toByteArray();
            float[] biasBefore = l.bias().toFloatArray();
            try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                NDArray y = l.forward(new ParameterStore(m, false), new NDList(x), true).head();
                gc.backward(y.square().sum());
            }
            assertTrue(l.loraA().getArray().getGradient().abs().sum().getFloat() > 0f);
            assertTrue(l.loraB().getArray().getGradient().abs().sum().getFloat() > 0f);
            // the input's gradient needs deq(Q) after forward's temporary scope closed
            float[] gx = x.getGradient().toFloatArray();
            assertTrue(Math.abs(gx[0]) + Math.abs(gx[1]) > 0f);
            assertFalse(l.bias().hasGradient());
            assertFalse(DjlBackend.ndArray(l.quantized().packed()).hasGradient());
            assertArrayEquals(packedBefore, DjlBackend.ndArray(l.quantized().packed()).toByteArray());
            assertArrayEquals(biasBefore, l.bias().toFloatArray(), 0f);
        }
    }

    @Test
    void mergeGivesAnFp32LinearWithTheSameOutputs() {
        try (QuantizedLoraLinear l = layer(false, true); NDManager m = manager.newSubManager()) {
            Linear merged = l.merge(m);
            assertEquals(Linear.class, merged.getClass());
            NDArray x = m.create(gaussian(7, 4 * IN, 1f), new Shape(4, IN));
            NDArray y = l.forward(new ParameterStore(m, false), new NDList(x), false).head();
            NDArray ym = merged.forward(new ParameterStore(m, false), new NDList(x), false).head();
            assertArrayEquals(y.toFloatArray(), ym.toFloatArray(), 1e-4f);
            // the adapters stay separate
            assertEquals(List.of("lora_A", "lora_B"), l.getParameters().keys());
        }
    }

    @Test
    void inputFeatureMismatchNamesTheLayerAndShapes() {
        try (QuantizedLoraLinear l = layer(false, false); NDManager m = manager.newSubManager()) {
            NDArray x = m.zeros(new Shape(3, IN + 1));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> l.forward(new ParameterStore(m, false), new NDList(x), false));
            assertTrue(e.getMessage().contains("test.layer"), e.getMessage());
            assertTrue(e.getMessage().contains("(3, 41)"), e.getMessage());
            assertTrue(e.getMessage().contains("[..., 40]"), e.getMessage());
        }
    }

    @Test
    void builderRejectsFactorsThatDoNotFitQ() {
        try (TensorScope scope = backend.newScope()) {
            Tensor w = scope.fromHost(gaussian(1, OUT * IN, 0.2f), OUT, IN);
            QuantizedTensor q = CodebookQuantizer.bitsandbytesNf4().quantize(scope, w, "w");
            IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
                    () -> QuantizedLoraLinear.loraBuilder().optName("p.q").setQuantized(scope, q)
                            .setLora(scope.fromHost(new float[R * (IN - 1)], R, IN - 1),
                                    scope.fromHost(new float[OUT * R], OUT, R))
                            .setScaling(1f).build());
            assertTrue(shape.getMessage().contains("p.q") && shape.getMessage().contains("[4, 39]"),
                    shape.getMessage());
            int big = OUT + 1;
            IllegalArgumentException rank = assertThrows(IllegalArgumentException.class,
                    () -> QuantizedLoraLinear.loraBuilder().optName("p.q").setQuantized(scope, q)
                            .setLora(scope.fromHost(new float[big * IN], big, IN),
                                    scope.fromHost(new float[OUT * big], OUT, big))
                            .setScaling(1f).build());
            assertTrue(rank.getMessage().contains("rank must be in [1, min(out, in) = 24], got 25"),
                    rank.getMessage());
        }
    }

    @Test
    void closedLayerRefusesForwardAndFreesItsArrays() {
        int before = backend.liveArrayCount();
        QuantizedLoraLinear l = layer(true, true);
        try (NDManager m = manager.newSubManager()) {
            NDArray x = m.ones(new Shape(1, IN));
            l.forward(new ParameterStore(m, false), new NDList(x), false);
            l.close();
            assertThrows(IllegalStateException.class,
                    () -> l.forward(new ParameterStore(m, false), new NDList(x), false));
        }
        assertEquals(before, backend.liveArrayCount());
    }

    @Test
    void dropoutActsOnTheLoraInputOnlyAndOnlyWhileTraining() {
        TensorScope scope = backend.newScope();
        Tensor w = scope.fromHost(gaussian(1, OUT * IN, 0.2f), OUT, IN);
        QuantizedTensor q = CodebookQuantizer.bitsandbytesNf4().quantize(scope, w, "w");
        try (QuantizedLoraLinear l = QuantizedLoraLinear.loraBuilder().setQuantized(scope, q)
                .setLora(scope.fromHost(gaussian(2, R * IN, 0.1f), R, IN),
                        scope.fromHost(gaussian(3, OUT * R, 0.1f), OUT, R))
                .setScaling(1f).optDropout(0.5f).build();
                NDManager m = manager.newSubManager()) {
            NDArray x = m.create(gaussian(9, 6 * IN, 1f), new Shape(6, IN));
            float[] inference = l.forward(new ParameterStore(m, false), new NDList(x), false)
                    .head().toFloatArray();
            assertArrayEquals(reference(m, l, x.reshape(1, 6, IN)).toFloatArray(), inference, 1e-4f);
            float[] training = l.forward(new ParameterStore(m, false), new NDList(x), true)
                    .head().toFloatArray();
            assertFalse(java.util.Arrays.equals(inference, training));
            l.loraB().getArray().set(new float[OUT * R]); // B = 0: the LoRA term vanishes
            float[] base = l.forward(new ParameterStore(m, false), new NDList(x), false)
                    .head().toFloatArray();
            assertArrayEquals(base, l.forward(new ParameterStore(m, false), new NDList(x), true)
                    .head().toFloatArray(), 0f);
        }
    }

    @Test
    void halfPrecisionInputComesBackInItsType() {
        try (QuantizedLoraLinear l = layer(false, true); NDManager m = manager.newSubManager()) {
            NDArray x = m.create(gaussian(8, 2 * IN, 1f), new Shape(2, IN));
            NDArray y32 = l.forward(new ParameterStore(m, false), new NDList(x), false).head();
            NDArray y16 = l.forward(new ParameterStore(m, false),
                    new NDList(x.toType(DataType.FLOAT16, false)), false).head();
            assertEquals(DataType.FLOAT16, y16.getDataType());
            assertArrayEquals(y32.toFloatArray(), y16.toType(DataType.FLOAT32, false).toFloatArray(), 0.05f);
        }
    }
}
