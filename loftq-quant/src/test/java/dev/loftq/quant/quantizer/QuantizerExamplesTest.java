package dev.loftq.quant.quantizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.ref.ReferenceBackend;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.codebook.Codebook;
import dev.loftq.quant.quantizer.CodebookQuantizer.BlockScale;
import dev.loftq.quant.quantizer.CodebookQuantizer.Convention;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Hand-computed examples, storage accounting and every documented error message. */
class QuantizerExamplesTest {
    private static final List<Quantizer> ALL = List.of(CodebookQuantizer.bitsandbytesNf4(),
            CodebookQuantizer.bitsandbytesNf4DoubleQuant(), CodebookQuantizer.loftqNormalFloat(2),
            CodebookQuantizer.loftqUniform(2), IntAffineQuantizer.builder(4).build(),
            Int8RowwiseQuantizer.bitsandbytes());

    private TensorScope scope;

    @BeforeEach
    void open() {
        scope = new ReferenceBackend().newScope();
    }

    @AfterEach
    void close() {
        scope.close();
    }

    @Test
    void asymmetricInt4PerTensorByHand() {
        IntAffineQuantizer q = IntAffineQuantizer.builder(4).grouping(Grouping.perTensor()).build();
        QuantizedTensor t = q.quantize(scope, scope.fromHost(new float[] {-1f, 0f, 0.5f, 2f}, 4), "W");
        float scale = 3f / 15;
        assertArrayEquals(new float[] {scale}, scope.toFloatArray(t.scales(scope)));
        assertArrayEquals(new float[] {5f}, scope.toFloatArray(t.zeroPoints().orElseThrow()));
        // -1/0.2 = -5 -> 0; 0 -> 5; 0.5/0.2 = 2.5 rounds half to even -> 2 + 5; 2/0.2 = 10 -> 15
        assertArrayEquals(new byte[] {0, 5, 7, 15}, scope.toByteArray(t.codes(scope)));
        assertArrayEquals(new byte[] {0x50, (byte) 0xF7}, scope.toByteArray(t.packed()));
        assertArrayEquals(new float[] {-5 * scale, 0f, 2 * scale, 10 * scale},
                scope.toFloatArray(t.dequantize(scope)));
        assertEquals("int4-asym-tensor", t.format());
        assertEquals(PackOrder.LSB_FIRST, t.packOrder());
    }

    @Test
    void symmetricInt4PerRowByHand() {
        IntAffineQuantizer q = IntAffineQuantizer.builder(4).symmetric(true).build();
        QuantizedTensor t = q.quantize(scope,
                scope.fromHost(new float[] {-1f, 0.5f, 0.25f, 0f, 0f, 0f}, 2, 3), "W");
        float s = 1f / 7;
        assertArrayEquals(new float[] {s, 1f}, scope.toFloatArray(t.scales(scope)));
        assertTrue(t.zeroPoints().isEmpty());
        // zero point 7: -1/s = -7 -> 0; f32(1/7) is above 1/7, so 0.5/s = 3.4999998 -> 3 -> 10 and
        // 0.25/s = 1.7499999 -> 2 -> 9; the zero row (scale 1) -> 7
        assertArrayEquals(new byte[] {0, 10, 9, 7, 7, 7}, scope.toByteArray(t.codes(scope)));
        assertArrayEquals(new float[] {-7 * s, 3 * s, 2 * s, 0f, 0f, 0f},
                scope.toFloatArray(t.dequantize(scope)));
    }

    @Test
    void int8RowwiseByHand() {
        Quantizer q = Int8RowwiseQuantizer.bitsandbytes();
        QuantizedTensor t = q.quantize(scope,
                scope.fromHost(new float[] {2f, -1f, 0.5f, 0f, 0f, 0f, 0f, 0f}, 2, 4), "W");
        assertArrayEquals(new float[] {2f, 0f}, scope.toFloatArray(t.scales(scope)));
        // factor 127/2 = 63.5: 127, -63.5 -> -64 (half to even), 31.75 -> 32, 0; offset 128
        assertArrayEquals(new byte[] {(byte) 255, 64, (byte) 160, (byte) 128, (byte) 128, (byte) 128,
            (byte) 128, (byte) 128}, scope.toByteArray(t.codes(scope)));
        float c = 7.874015718698502e-3f;
        assertArrayEquals(new float[] {127 * 2f * c, -64 * 2f * c, 32 * 2f * c, 0f, 0f, 0f, 0f, 0f},
                scope.toFloatArray(t.dequantize(scope)));
    }

    @Test
    void int8RowsWithATinyAbsmaxArePrescaledExactly() {
        float tiny = 0x1p-130f; // 127 / tiny overflows float32
        QuantizedTensor t = Int8RowwiseQuantizer.bitsandbytes().quantize(scope,
                scope.fromHost(new float[] {tiny, -tiny / 2, 0f}, 1, 3), "W");
        // 127 and -63.5 (half to even: -64), as for any other absmax
        assertArrayEquals(new byte[] {(byte) 255, 64, (byte) 128}, scope.toByteArray(t.codes(scope)));
    }

    @Test
    void bitsandbytesStorageAccounting() {
        Tensor w = scope.randomNormal(1, 0f, 1f, 64, 64);
        QuantizedTensor plain = CodebookQuantizer.bitsandbytesNf4().quantize(scope, w, "W");
        assertEquals(4.5, plain.bitsPerParameter());
        QuantizedTensor nested = CodebookQuantizer.bitsandbytesNf4DoubleQuant().quantize(scope, w, "W");
        // 2048 packed bytes, 64 8-bit absmax codes, one nested absmax and the offset
        assertEquals(2048 * 8 + 64 * 8 + 32 + 32, nested.storageBits());
        QuantizedTensor odd = CodebookQuantizer.bitsandbytesNf4().quantize(scope,
                scope.randomNormal(2, 0f, 1f, 3, 43), "W");
        assertEquals(4, odd.paddingBits());
        assertEquals(65, odd.packed().numel());
        QuantizedTensor int4 = IntAffineQuantizer.builder(4).grouping(Grouping.ofSize(128)).build()
                .quantize(scope, scope.randomNormal(3, 0f, 1f, 8, 256), "W");
        assertEquals(4 + 32.0 / 128 + 4.0 / 128, int4.bitsPerParameter());
        assertEquals(16, int4.numBlocks());
        QuantizedTensor int5 = IntAffineQuantizer.builder(5).build()
                .quantize(scope, scope.randomNormal(3, 0f, 1f, 8, 256), "W");
        assertEquals(8, int5.bits());
        assertEquals(8 + 37.0 / 256, int5.bitsPerParameter());
    }

    @Test
    void tensorsOfAnyRankAreFlattenedRowMajor() {
        float[] x = new float[2 * 3 * 50];
        SplittableRandom rng = new SplittableRandom(5);
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rng.nextGaussian();
        }
        Quantizer q = CodebookQuantizer.bitsandbytesNf4();
        QuantizedTensor cube = q.quantize(scope, scope.fromHost(x, 2, 3, 50), "cube");
        QuantizedTensor flat = q.quantize(scope, scope.fromHost(x, 300), "flat");
        assertArrayEquals(scope.toByteArray(flat.packed()), scope.toByteArray(cube.packed()));
        assertArrayEquals(new int[] {2, 3, 50}, cube.dequantize(scope).shape());
        assertArrayEquals(scope.toFloatArray(flat.dequantize(scope)),
                scope.toFloatArray(cube.dequantize(scope)));
    }

    @Test
    void nativeThreeBitCodesAreAnLsbFirstBitStream() {
        float[] x = new float[64];
        x[0] = 1f; // code 7
        x[1] = -1f; // code 0
        x[2] = 0.5626170039176941f; // code 6
        QuantizedTensor t = CodebookQuantizer.loftqNormalFloat(3).quantize(scope,
                scope.fromHost(x, 64), "W");
        byte[] packed = scope.toByteArray(t.packed());
        assertEquals(24, packed.length);
        // bits 0-2: 111, bits 3-5: 000, bits 6-8: 011 (6 LSB first), then zeros (code 3: 110 ...)
        assertEquals(0b1000_0111, packed[0] & 0xFF);
        assertEquals(0, t.paddingBits());
        assertEquals(3, t.bits());
    }

    @Test
    void descriptionsNameTheFormat() {
        assertEquals("bitsandbytes NF4, block 64", CodebookQuantizer.bitsandbytesNf4().description());
        assertEquals("bitsandbytes NF4, block 64, double quantization (dynamic 8-bit, block 256)",
                CodebookQuantizer.bitsandbytesNf4DoubleQuant().description());
        assertEquals("LoftQ native NF2 (argmin of x / absmax), block 64",
                CodebookQuantizer.loftqNormalFloat(2).description());
        assertEquals("LoftQ native UNIFORM2 (argmin of x / mean + 2.5·std), block 64",
                CodebookQuantizer.loftqUniform(2).description());
        assertEquals("int5 asymmetric, groups of 64 (stored in 8-bit slots)",
                IntAffineQuantizer.builder(5).grouping(Grouping.ofSize(64)).build().description());
        assertEquals("bnb-fp4", CodebookQuantizer.bitsandbytesFp4()
                .quantize(scope, scope.full(1f, 3), "W").format());
    }

    @Test
    void rankZeroEmptyAndNonFloatTensorsAreRejected() {
        for (Quantizer q : ALL) {
            assertMessage("tensor W has rank 0 (a scalar); quantizers need rank >= 1",
                    () -> q.quantize(scope, scope.full(1f), "W"));
            assertMessage("tensor W is empty (shape [0, 4]); quantizers need at least one element",
                    () -> q.quantize(scope, scope.full(1f, 0, 4), "W"));
            assertMessage("tensor W must be FLOAT32, got UINT8",
                    () -> q.quantize(scope, scope.fromHostBytes(new byte[4], 4), "W"));
        }
    }

    @Test
    void unsupportedWidthsAndBlockSizesListTheSupportedOnes() {
        assertMessage("blockSize must be one of [16, 32, 64, 128, 256, 512, 1024, 2048, 4096], got 100",
                () -> CodebookQuantizer.builder(Codebook.NF4).blockSize(100));
        assertMessage("bits must be in [2, 8], got 9", () -> IntAffineQuantizer.builder(9));
        assertMessage("bits must be in [2, 8], got 1", () -> IntAffineQuantizer.builder(1));
        assertMessage("NormalFloat bits must be one of [2, 3, 4], got 8",
                () -> CodebookQuantizer.loftqNormalFloat(8));
        assertMessage("uniform bits must be one of [2, 3, 4], got 1", () -> CodebookQuantizer.loftqUniform(1));
        assertMessage("groupSize must be in [1, 1048576], got 0", () -> Grouping.ofSize(0));
    }

    @Test
    void invalidCombinationsAreRejectedAtBuild() {
        assertMessage("doubleQuantization needs convention BITSANDBYTES and blockScale ABSMAX or "
                + "MSE_OPTIMAL, got LOFTQ_NATIVE and ABSMAX", () -> CodebookQuantizer.builder(Codebook.NF2)
                        .convention(Convention.LOFTQ_NATIVE).doubleQuantization(true).build());
        assertMessage("blockScale MEAN_PLUS_2_5_STD needs convention LOFTQ_NATIVE, got BITSANDBYTES",
                () -> CodebookQuantizer.builder(Codebook.UNIFORM2)
                        .blockScale(BlockScale.MEAN_PLUS_2_5_STD).build());
        assertMessage("codebook mine must be strictly increasing for the bitsandbytes encoder "
                + "(only FP4 is special-cased), got [1.0, -1.0]",
                () -> CodebookQuantizer.builder(Codebook.of("mine", 1f, -1f)).build());
        float tiny = 0x1p-24f;
        assertMessage("codebook close: values 5.9604644775390625E-8 apart are too close for the LoftQ "
                + "native convention (allowed: gaps >= 2^-22)",
                () -> CodebookQuantizer.builder(Codebook.of("close", -1f, 0f, tiny, 1f))
                        .convention(Convention.LOFTQ_NATIVE).build());
    }

    @Test
    void layoutErrorsNameTheTensorAndWhatIsAllowed() {
        assertMessage("tensor W has 100 elements, not a multiple of the block size 64, which the "
                + "LoftQ native convention requires (bitsandbytes allows a short last block)",
                () -> CodebookQuantizer.loftqNormalFloat(2).quantize(scope, scope.full(1f, 10, 10), "W"));
        assertMessage("group size 64 must divide the input dimension (last axis) of tensor W, got "
                + "shape [4, 96]", () -> IntAffineQuantizer.builder(4).grouping(Grouping.ofSize(64))
                        .build().quantize(scope, scope.full(1f, 4, 96), "W"));
    }

    @Test
    void clipFactorsAreValidated() {
        IntAffineQuantizer q = IntAffineQuantizer.builder(4).build();
        Tensor w = scope.full(1f, 2, 8);
        assertMessage("clip factors upper must be FLOAT32 [2] (one per group), got FLOAT32 [3]",
                () -> q.quantize(scope, w, "W",
                        new ClipFactors(scope.full(1f, 3), scope.full(1f, 2))));
        assertMessage("clip factors lower[1] must be in (0, 1], got 0.0",
                () -> q.quantize(scope, w, "W", new ClipFactors(scope.full(1f, 2),
                        scope.fromHost(new float[] {1f, 0f}, 2))));
        QuantizedTensor clipped = q.quantize(scope,
                scope.fromHost(new float[] {-1f, 0f, 0.25f, 1f}, 1, 4), "W",
                new ClipFactors(scope.full(0.5f, 1), scope.full(1f, 1)));
        float[] y = scope.toFloatArray(clipped.dequantize(scope));
        assertEquals(0.5f, y[3], 1.5f / 15 / 2 + 1e-6f, "1.0 saturates near the clipped maximum 0.5");
    }

    @Test
    void aForeignQuantizedTensorIsRejected() {
        QuantizedTensor t = CodebookQuantizer.bitsandbytesNf4().quantize(scope, scope.full(1f, 64), "W");
        assertMessage("dequantize: QuantizedTensor[bnb-nf4 [64], 4-bit codes, block 64] was made by "
                + "bitsandbytes NF4, block 64, not by bitsandbytes FP4, block 64",
                () -> CodebookQuantizer.bitsandbytesFp4().dequantize(scope, t));
        assertMessage("dequantize: QuantizedTensor[bnb-nf4 [64], 4-bit codes, block 64] was made by "
                + "bitsandbytes NF4, block 64, not by bitsandbytes int8 row-wise absmax",
                () -> Int8RowwiseQuantizer.bitsandbytes().dequantize(scope, t));
        assertEquals(CodebookQuantizer.bitsandbytesNf4(), t.quantizer());
        assertEquals(CodebookQuantizer.bitsandbytesNf4().hashCode(), t.quantizer().hashCode());
    }

    /**
     * A block whose mean is about -2.5 standard deviations has a scale near zero; torch's argmin of
     * |x/scale - t| would then tie far values, so it is rejected rather than encoded differently.
     */
    @Test
    void aDegenerateUniformScaleIsRejected() {
        Function<Float, float[]> block = v -> {
            float[] x = new float[16];
            java.util.Arrays.fill(x, -1f);
            x[15] = v;
            return x;
        };
        float lo = 0f; // scale < 0
        float hi = 100f; // scale > 0
        for (int i = 0; i < 200; i++) {
            float mid = (lo + hi) / 2;
            if (FloatStats.meanPlus2p5Std(block.apply(mid), 16)[0] < 0f) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        float root = hi;
        float scale = FloatStats.meanPlus2p5Std(block.apply(root), 16)[0];
        assertTrue(Math.abs(scale) < 1e-5f, "scale " + scale);
        Quantizer q = CodebookQuantizer.builder(Codebook.UNIFORM2).convention(Convention.LOFTQ_NATIVE)
                .blockScale(BlockScale.MEAN_PLUS_2_5_STD).blockSize(16).build();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> q.quantize(scope, scope.fromHost(block.apply(root), 16), "W"));
        assertTrue(e.getMessage().startsWith("tensor W, block 0: the scale mean + 2.5·std = "
                + scale + " is too small for max |x| = 1.0 (allowed: max |x| / |scale| <= "
                + "2097152.0"), e.getMessage());
        QuantizedTensor fine = q.quantize(scope, scope.fromHost(block.apply(root + 1f), 16), "W");
        assertEquals(1, fine.numBlocks());
    }

    @Test
    void quantizedTensorBuilderValidates() {
        Quantizer q = new TernaryQuantizer();
        Tensor packed = scope.fromHostBytes(new byte[2], 2);
        assertMessage("packed must be UINT8 [3], got UINT8 [2]",
                () -> QuantizedTensor.builder(q, "x", 2, 6).packed(packed, 2, PackOrder.MSB_FIRST));
        assertMessage("exactly one of scales and nested scales is required, got neither",
                () -> QuantizedTensor.builder(q, "x", 8).packed(packed, 2, PackOrder.MSB_FIRST).build());
        assertMessage("scales must be FLOAT32 [2], got FLOAT32 [1]",
                () -> QuantizedTensor.builder(q, "x", 8).scales(scope.full(1f, 1), 4));
        assertMessage("shape must have rank >= 1, got []", () -> QuantizedTensor.builder(q, "x"));
        assertMessage("bits must be one of [1, 2, 3, 4, 8], got 5",
                () -> QuantizedTensor.builder(q, "x", 8).packed(packed, 5, PackOrder.MSB_FIRST));
        assertMessage("offset must be finite, got NaN", () -> new QuantizedTensor.NestedScales(
                CodebookQuantizer.bitsandbytesNf4().quantize(scope, scope.full(1f, 4), "W"), Float.NaN));
    }

    private static void assertMessage(String expected, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertEquals(expected, e.getMessage());
    }
}
