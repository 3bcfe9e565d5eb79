package dev.loftq.quant.quantizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import dev.loftq.core.io.SafetensorsFile;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.Vectors;
import dev.loftq.quant.codebook.Codebook;
import dev.loftq.quant.quantizer.CodebookQuantizer.BlockScale;
import dev.loftq.quant.quantizer.CodebookQuantizer.Convention;
import java.util.HexFormat;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every bitsandbytes and native-LoftQ case of the reference vectors ({@code FORMATS.md}), matched
 * bit for bit on {@link #backend()}: codes and packed bytes exactly, and every float (absmax,
 * nested state, scales, dequantized values, -0.0 included) with identical bits. A backend module
 * subclasses this and names its backend.
 */
public abstract class QuantizerVectorTests {
    /** The backend under test. */
    protected abstract Backend backend();

    static Stream<Arguments> bitsandbytes4bit() {
        return Vectors.cases(Set.of("bnb_4bit")).stream()
                .map(c -> Arguments.of(c.get("id").getAsString(), c));
    }

    static Stream<Arguments> bitsandbytesBlockwise8() {
        return Vectors.cases(Set.of("bnb_blockwise8")).stream()
                .map(c -> Arguments.of(c.get("id").getAsString(), c));
    }

    static Stream<Arguments> loftqNative() {
        return Vectors.cases(Set.of("native_nf", "native_uniform")).stream()
                .map(c -> Arguments.of(c.get("id").getAsString(), c));
    }

    @Test
    void everyQuantizerCaseOfTheManifestIsCovered() {
        assertEquals(21, bitsandbytes4bit().count());
        assertEquals(2, bitsandbytesBlockwise8().count());
        assertEquals(8, loftqNative().count());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("bitsandbytes4bit")
    void bitsandbytes4bitCase(String id, JsonObject entry) {
        SafetensorsFile f = Vectors.load(entry);
        JsonObject params = entry.getAsJsonObject("params");
        Codebook codebook = params.get("quant_type").getAsString().equals("nf4") ? Codebook.NF4
                : Codebook.FP4;
        boolean nested = params.get("compress_statistics").getAsBoolean();
        CodebookQuantizer quantizer = CodebookQuantizer.builder(codebook)
                .blockSize(params.get("blocksize").getAsInt()).doubleQuantization(nested).build();
        try (TensorScope scope = backend().newScope()) {
            QuantizedTensor q = quantize(scope, quantizer, f, id);

            assertBits(id + " quant_map", f.tensor("quant_map").floats(), codebook.values());
            assertCodesAndPacking(scope, q, f, entry);
            assertEquals(PackOrder.MSB_FIRST, q.packOrder());
            assertEquals(params.get("nblocks").getAsInt(), q.numBlocks());
            if (nested) {
                QuantizedTensor.NestedScales n = q.nestedScales().orElseThrow();
                assertArrayEquals(f.tensor("absmax_q").bytes(),
                        scope.toByteArray(n.quantized().codes(scope)), id + " absmax_q");
                assertBits(id + " nested_absmax", f.tensor("nested_absmax").floats(),
                        scope.toFloatArray(n.quantized().plainScales().orElseThrow()));
                assertBits(id + " nested_offset", f.tensor("nested_offset").floats(),
                        new float[] {n.offset()});
                assertEquals(entry.getAsJsonObject("expected").get("nested_offset_bits").getAsString(),
                        String.format("0x%08x", Float.floatToRawIntBits(n.offset())));
                assertBits(id + " nested_quant_map", f.tensor("nested_quant_map").floats(),
                        n.quantized().codebook().orElseThrow().values());
                assertBits(id + " absmax_dequantized", f.tensor("absmax_dequantized").floats(),
                        scope.toFloatArray(q.scales(scope)));
            } else {
                assertBits(id + " absmax", f.tensor("absmax").floats(),
                        scope.toFloatArray(q.plainScales().orElseThrow()));
            }
            JsonObject expected = entry.getAsJsonObject("expected");
            if (expected.has("absmax_bits")) {
                JsonArray bits = expected.getAsJsonArray("absmax_bits");
                float[] absmax = scope.toFloatArray(q.scales(scope));
                for (int b = 0; b < bits.size(); b++) {
                    assertEquals(bits.get(b).getAsString(),
                            String.format("0x%08x", Float.floatToRawIntBits(absmax[b])), id + " absmax_bits");
                }
            }
            assertDequantized(scope, q, f, id);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("bitsandbytesBlockwise8")
    void bitsandbytesBlockwise8Case(String id, JsonObject entry) {
        SafetensorsFile f = Vectors.load(entry);
        CodebookQuantizer quantizer = CodebookQuantizer.bitsandbytesBlockwise8(
                entry.getAsJsonObject("params").get("blocksize").getAsInt());
        try (TensorScope scope = backend().newScope()) {
            QuantizedTensor q = quantize(scope, quantizer, f, id);

            assertBits(id + " code", f.tensor("code").floats(), Codebook.DYNAMIC_8BIT.values());
            assertArrayEquals(f.tensor("codes").bytes(), scope.toByteArray(q.codes(scope)), id + " codes");
            assertArrayEquals(f.tensor("codes").bytes(), scope.toByteArray(q.packed()), id + " packed");
            assertBits(id + " absmax", f.tensor("absmax").floats(),
                    scope.toFloatArray(q.plainScales().orElseThrow()));
            assertDequantized(scope, q, f, id);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("loftqNative")
    void loftqNativeCase(String id, JsonObject entry) {
        SafetensorsFile f = Vectors.load(entry);
        JsonObject params = entry.getAsJsonObject("params");
        int bits = params.get("num_bits").getAsInt();
        boolean normal = params.get("method").getAsString().equals("normal");
        Codebook codebook = normal ? Codebook.normalFloat(bits) : Codebook.uniform(bits);
        CodebookQuantizer quantizer = CodebookQuantizer.builder(codebook)
                .convention(Convention.LOFTQ_NATIVE)
                .blockScale(normal ? BlockScale.ABSMAX : BlockScale.MEAN_PLUS_2_5_STD)
                .blockSize(params.get("block_size").getAsInt()).build();
        assertEquals(normal ? CodebookQuantizer.loftqNormalFloat(bits)
                : CodebookQuantizer.loftqUniform(bits), quantizer);
        try (TensorScope scope = backend().newScope()) {
            QuantizedTensor q = quantize(scope, quantizer, f, id);

            assertBits(id + " table", f.tensor("table").floats(), codebook.values());
            assertBits(id + " scale", f.tensor("scale").floats(),
                    scope.toFloatArray(q.plainScales().orElseThrow()));
            assertCodesAndPacking(scope, q, f, entry);
            assertEquals(PackOrder.LSB_FIRST, q.packOrder());
            assertDequantized(scope, q, f, id);
        }
    }

    private static QuantizedTensor quantize(TensorScope scope, Quantizer quantizer,
            SafetensorsFile f, String id) {
        int[] shape = f.tensor("input").shape();
        Tensor w = scope.fromHost(f.tensor("input").floats(), shape);
        QuantizedTensor q = quantizer.quantize(scope, w, id);
        assertArrayEquals(shape, q.shape());
        return q;
    }

    /**
     * Codes, one per element, are unpacked from the packed bytes, so they check the packing too;
     * the packed bytes are compared where the file has them (the native 3-bit case has none).
     */
    private static void assertCodesAndPacking(TensorScope scope, QuantizedTensor q,
            SafetensorsFile f, JsonObject entry) {
        String id = entry.get("id").getAsString();
        assertArrayEquals(f.tensor("codes").bytes(), scope.toByteArray(q.codes(scope)), id + " codes");
        byte[] packed = scope.toByteArray(q.packed());
        if (f.contains("packed")) {
            assertArrayEquals(f.tensor("packed").bytes(), packed, id + " packed");
            assertArrayEquals(new int[] {packed.length, 1}, f.tensor("packed").shape());
        }
        JsonObject expected = entry.getAsJsonObject("expected");
        if (expected.has("packed_hex")) {
            assertEquals(expected.get("packed_hex").getAsString(), HexFormat.of().formatHex(packed),
                    id + " packed_hex");
        }
    }

    private static void assertDequantized(TensorScope scope, QuantizedTensor q, SafetensorsFile f,
            String id) {
        Tensor y = q.dequantize(scope);
        assertArrayEquals(f.tensor("dequantized").shape(), y.shape(), id + " dequantized shape");
        assertBits(id + " dequantized", f.tensor("dequantized").floats(), scope.toFloatArray(y));
    }

    private static void assertBits(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + ": length");
        int bad = 0;
        int first = -1;
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                bad++;
                first = first < 0 ? i : first;
            }
        }
        if (bad > 0) {
            throw new AssertionError(what + ": " + bad + " of " + expected.length
                    + " differ; first at " + first + ": expected " + expected[first] + " (0x"
                    + Integer.toHexString(Float.floatToRawIntBits(expected[first])) + "), got "
                    + actual[first] + " (0x"
                    + Integer.toHexString(Float.floatToRawIntBits(actual[first])) + ")");
        }
    }
}
