package dev.loftq.djl.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.io.Safetensors;
import dev.loftq.core.io.SafetensorsFile;
import dev.loftq.core.io.TensorData;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.quant.codebook.Codebook;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The bitsandbytes 4-bit checkpoint format against the reference example, bit for bit. */
class BnbCheckpointTest {
    private static final Backend BACKEND = DjlBackend.cpu();
    private static final String Q = "model.layers.0.self_attn.q_proj";
    private static final String DOWN = "model.layers.0.mlp.down_proj";

    @TempDir
    Path tmp;

    @Test
    void readsTheExampleAndDequantizesAsBitsandbytes() throws Exception {
        Path file = ExampleFiles.bnbCheckpoint().resolve("model.safetensors");
        SafetensorsFile raw = Safetensors.read(file);
        try (TensorScope scope = BACKEND.newScope()) {
            Map<String, Bnb4bitWeight> weights = BnbCheckpointReader.readAll(scope, file);
            assertEquals(List.of(DOWN, Q), new ArrayList<>(weights.keySet()));
            Bnb4bitWeight q = weights.get(Q);
            assertArrayEquals(new int[] {64, 64}, q.weight().shape());
            assertEquals("float32", q.dtype());
            assertEquals(0.05883613973855972, (double) q.weight().nestedScales().get().offset());
            assertEquals(0.13703653216362,
                    (double) weights.get(DOWN).weight().nestedScales().get().offset());
            for (Bnb4bitWeight w : weights.values()) {
                // An independent plain-Java dequantization of the raw keys (FORMATS.md §1.3, §2.4).
                float[] expected = dequantizeByHand(raw, w.module(),
                        w.weight().nestedScales().get().offset());
                assertArrayEquals(expected, scope.toFloatArray(w.weight().dequantize(scope)),
                        w.module());
            }
        }
    }

    @Test
    void theExampleReproducesTheManifestErrorsWithItsAdapter() throws Exception {
        Map<String, Double> manifest = Map.of(Q, 0.06417466558456801, DOWN, 0.08837688833162306);
        SafetensorsFile original = Safetensors.read(ExampleFiles.originalWeights());
        PeftAdapter adapter = PeftAdapterReader.read(ExampleFiles.peftAdapter());
        try (TensorScope scope = BACKEND.newScope()) {
            Map<String, Bnb4bitWeight> weights = BnbCheckpointReader.readAll(scope,
                    ExampleFiles.bnbCheckpoint().resolve("model.safetensors"));
            for (String m : List.of(Q, DOWN)) {
                TensorData wData = original.tensor(m + ".weight");
                Tensor w = scope.fromHost(wData.floats(), wData.shape());
                LoraWeights f = adapter.modules().get(m);
                Tensor approx = scope.add(weights.get(m).weight().dequantize(scope),
                        scope.matmul(f.loraB(scope), f.loraA(scope)));
                double err = Math.sqrt(scope.sumOfSquares(scope.sub(w, approx))
                        / scope.sumOfSquares(w));
                assertEquals(manifest.get(m), err, 1e-6, m);
            }
        }
    }

    @Test
    void writingTheReadWeightsGivesTheExampleFileByteForByte() throws Exception {
        Path file = ExampleFiles.bnbCheckpoint().resolve("model.safetensors");
        SafetensorsFile raw = Safetensors.read(file);
        try (TensorScope scope = BACKEND.newScope()) {
            Map<String, Bnb4bitWeight> weights = BnbCheckpointReader.readAll(scope, file);
            Map<String, TensorData> others = Map.of("lm_head.weight", raw.tensor("lm_head.weight"));
            Path out = Files.createDirectories(tmp.resolve("ckpt"));
            BnbCheckpointWriter.write(out, scope, new ArrayList<>(weights.values()), others,
                    Map.of(), new BnbQuantizationConfig("nf4", true, "float32"));
            assertArrayEquals(Files.readAllBytes(file), Files.readAllBytes(
                    out.resolve("model.safetensors")));
            for (String m : List.of(Q, DOWN)) {
                String key = m + ".weight.quant_state.bitsandbytes__nf4";
                Map<String, TensorData> t = BnbCheckpointWriter.tensors(scope, weights.get(m));
                assertEquals(new String(raw.tensor(key).bytes(), StandardCharsets.UTF_8),
                        new String(t.get(key).bytes(), StandardCharsets.UTF_8));
            }
        }
    }

    @Test
    void configJsonMatchesTransformersText() throws Exception {
        Map<String, Object> base = new LinkedHashMap<>();
        base.put("architectures", List.of("ToyForCausalLM"));
        base.put("model_type", "toy");
        base.put("torch_dtype", "float32");
        String text = BnbCheckpointWriter.configJson(base,
                new BnbQuantizationConfig("nf4", true, "float32"));
        assertEquals(Files.readString(ExampleFiles.bnbCheckpoint().resolve("config.json")), text);
        // A config re-read keeps its number literals and layout.
        @SuppressWarnings("unchecked")
        Map<String, Object> reread = (Map<String, Object>) PythonJson.parse("config.json", text);
        assertEquals(text, PythonJson.dumps(reread, 2, true) + "\n");
    }

    @Test
    void freshQuantizationsRoundTripBitExact() throws Exception {
        float[] w = new float[37 * 53]; // odd count: pad nibble; short last block
        Random rnd = new Random(3);
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (rnd.nextGaussian() * 0.02);
        }
        w[100] = 0.9f;
        List<CodebookQuantizer> quantizers = List.of(CodebookQuantizer.bitsandbytesNf4(),
                CodebookQuantizer.bitsandbytesNf4DoubleQuant(), CodebookQuantizer.bitsandbytesFp4(),
                CodebookQuantizer.builder(Codebook.FP4).doubleQuantization(true).blockSize(128)
                        .build());
        try (TensorScope scope = BACKEND.newScope()) {
            Tensor x = scope.fromHost(w, 37, 53);
            int i = 0;
            for (CodebookQuantizer quantizer : quantizers) {
                QuantizedTensor q = quantizer.quantize(scope, x, "w");
                Bnb4bitWeight written = new Bnb4bitWeight("m" + i++, q, "bfloat16");
                Map<String, TensorData> t = BnbCheckpointWriter.tensors(scope, written);
                Path file = tmp.resolve("rt" + i + ".safetensors");
                Safetensors.write(file, t, BnbCheckpointWriter.METADATA);
                Bnb4bitWeight back = BnbCheckpointReader.readAll(scope, file).get(written.module());
                assertEquals("bfloat16", back.dtype());
                assertArrayEquals(scope.toByteArray(q.packed()),
                        scope.toByteArray(back.weight().packed()), quantizer.toString());
                assertArrayEquals(scope.toFloatArray(q.scales(scope)),
                        scope.toFloatArray(back.weight().scales(scope)), quantizer.toString());
                assertArrayEquals(scope.toFloatArray(q.dequantize(scope)),
                        scope.toFloatArray(back.weight().dequantize(scope)), quantizer.toString());
                // Writing what was read gives the same bytes again.
                assertArrayEquals(Safetensors.toBytes(t, BnbCheckpointWriter.METADATA),
                        Safetensors.toBytes(BnbCheckpointWriter.tensors(scope, back),
                                BnbCheckpointWriter.METADATA));
            }
        }
    }

    @Test
    void inconsistentKeysNameTheFileAndKey() throws Exception {
        SafetensorsFile raw = Safetensors.read(ExampleFiles.bnbCheckpoint()
                .resolve("model.safetensors"));
        String p = Q + ".weight";
        assertBad(raw, p + ".quant_state.bitsandbytes__nf4", null,
                "needs exactly one of " + p + ".quant_state.bitsandbytes__nf4 and __fp4");
        assertBad(raw, p + ".quant_map", TensorData.ofFloats(Codebook.FP4.values(), 16),
                "tensor '" + p + ".quant_map' must be bitsandbytes' nf4 table");
        assertBad(raw, p, TensorData.ofBytes(new byte[2047], 2047, 1),
                "tensor '" + p + "' shape must be [2048, 1]");
        assertBad(raw, p + ".absmax", TensorData.ofBytes(new byte[63], 63),
                "tensor '" + p + ".absmax' shape must be [64], got [63]");
        assertBad(raw, p + ".nested_absmax", null, "has nested_offset but " + p
                + ".nested_absmax is missing");
        assertBad(raw, p + ".quant_state.bitsandbytes__nf4", json("{\"quant_type\": \"nf4\", "
                + "\"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [64, 64], "
                + "\"nested_blocksize\": 128, \"nested_dtype\": \"float32\", \"nested_offset\": "
                + "0.5}"), "nested_blocksize must be 256, got 128");
        assertBad(raw, p + ".quant_state.bitsandbytes__nf4", json("{\"quant_type\": \"nf4\", "
                + "\"blocksize\": 64, \"dtype\": \"int8\", \"shape\": [64, 64]}"),
                "dtype must be one of [bfloat16, float16, float32], got 'int8'");
        assertBad(raw, p + ".quant_state.bitsandbytes__nf4", json("{\"quant_type\": \"nf4\""),
                "malformed JSON");
        assertBad(raw, p + ".quant_state.bitsandbytes__nf4", json("{\"quant_type\": \"fp4\", "
                + "\"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [64, 64]}"),
                "quant_type must be 'nf4' (the key's suffix), got 'fp4'");
    }

    private static TensorData json(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        return TensorData.ofBytes(b, b.length);
    }

    private void assertBad(SafetensorsFile raw, String key, TensorData replacement,
            String expected) {
        Map<String, TensorData> t = new LinkedHashMap<>(raw.tensors());
        if (replacement == null) {
            t.remove(key);
        } else {
            t.put(key, replacement);
        }
        try (TensorScope scope = BACKEND.newScope()) {
            CheckpointFormatException e = assertThrows(CheckpointFormatException.class,
                    () -> BnbCheckpointReader.decode(scope, "ckpt.safetensors", Q, t::get));
            assertTrue(e.getMessage().startsWith("ckpt.safetensors: ")
                    && e.getMessage().contains(expected), e.getMessage());
        }
    }

    /** FORMATS.md §1.3 and §2.4 in plain Java: a[i] = f32(f32(D[q]·absmax2) + offset), y = LUT·a. */
    private static float[] dequantizeByHand(SafetensorsFile f, String module, float offset) {
        String p = module + ".weight";
        byte[] packed = f.tensor(p).bytes();
        byte[] q = f.tensor(p + ".absmax").bytes();
        float[] absmax2 = f.tensor(p + ".nested_absmax").floats();
        float[] dyn = f.tensor(p + ".nested_quant_map").floats();
        float[] lut = f.tensor(p + ".quant_map").floats();
        float[] a = new float[q.length];
        for (int i = 0; i < a.length; i++) {
            a[i] = dyn[q[i] & 0xFF] * absmax2[i / 256];
            a[i] = a[i] + offset;
        }
        float[] y = new float[packed.length * 2];
        for (int i = 0; i < y.length; i++) {
            int code = i % 2 == 0 ? (packed[i / 2] >> 4) & 0xF : packed[i / 2] & 0xF;
            y[i] = lut[code] * a[i / 64];
        }
        return y;
    }
}
