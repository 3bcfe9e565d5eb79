package dev.loftq.djl.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.io.Safetensors;
import dev.loftq.core.io.TensorData;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The peft adapter directory against the reference example. */
class PeftAdapterTest {
    @TempDir
    Path tmp;

    @Test
    void readsTheExample() throws Exception {
        PeftAdapter a = PeftAdapterReader.read(ExampleFiles.peftAdapter());
        assertEquals(8, a.config().rank());
        assertEquals(8.0, a.config().loraAlpha());
        assertEquals(List.of("q_proj", "down_proj"), a.config().targetModules());
        assertEquals("../example_bnb_checkpoint", a.config().baseModelNameOrPath());
        assertEquals(1.0, a.config().scalingFor("model.layers.0.mlp.down_proj"));
        LoraWeights down = a.modules().get("model.layers.0.mlp.down_proj");
        assertArrayEquals(new int[] {8, 200}, down.loraA().shape());
        assertArrayEquals(new int[] {64, 8}, down.loraB().shape());
        assertTrue(a.config().targets("model.layers.0.self_attn.q_proj"));
        assertFalse(a.config().targets("model.layers.0.self_attn.k_proj"));
    }

    @Test
    void writesTheExampleByteForByte() throws Exception {
        PeftAdapter a = PeftAdapterReader.read(ExampleFiles.peftAdapter());
        PeftAdapterConfig built = PeftAdapterConfig.builder(8, 8)
                .targetModules(List.of("q_proj", "down_proj"))
                .baseModelNameOrPath("../example_bnb_checkpoint").build();
        assertEquals(a.config(), built);
        Path out = tmp.resolve("nested/adapter");
        PeftAdapterWriter.write(out, new PeftAdapter(built, a.modules()));
        for (String f : List.of(PeftAdapterWriter.CONFIG, PeftAdapterWriter.WEIGHTS)) {
            assertArrayEquals(Files.readAllBytes(ExampleFiles.peftAdapter().resolve(f)),
                    Files.readAllBytes(out.resolve(f)), f);
        }
        // Again into the existing directory: same bytes, no temporary files left.
        PeftAdapterWriter.write(out, new PeftAdapter(built, a.modules()));
        try (Stream<Path> s = Files.list(out)) {
            assertEquals(2, s.count());
        }
        try (Stream<Path> s = Files.list(out.getParent())) {
            assertEquals(1, s.count());
        }
    }

    @Test
    void patternsAndNonIntegerAlphaSurviveARoundTrip() throws Exception {
        PeftAdapterConfig c = PeftAdapterConfig.builder(4, 16).targetModules(List.of("query"))
                .taskType(null).useRslora(true).rankPattern("layer\\.0\\..*", 2)
                .alphaPattern("query", 2.5).build();
        Map<String, LoraWeights> m = new LinkedHashMap<>();
        m.put("encoder.layer.0.attention.self.query", factors(2, 3, 5));
        m.put("encoder.layer.1.attention.self.query", factors(4, 3, 5));
        Path out = tmp.resolve("a");
        PeftAdapterWriter.write(out, new PeftAdapter(c, m));
        PeftAdapter back = PeftAdapterReader.read(out);
        assertEquals(c, back.config());
        assertEquals(2.5 / Math.sqrt(2), back.config().scalingFor(
                "encoder.layer.0.attention.self.query"));
        assertTrue(Files.readString(out.resolve(PeftAdapterWriter.CONFIG))
                .contains("\"lora_alpha\": 16,\n"));
        assertArrayEquals(m.get("encoder.layer.1.attention.self.query").loraB().floats(),
                back.modules().get("encoder.layer.1.attention.self.query").loraB().floats());
    }

    @Test
    void malformedAdaptersNameTheFileAndKey() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("bad"));
        Files.writeString(dir.resolve(PeftAdapterWriter.CONFIG), PeftAdapterConfig.builder(2, 2)
                .targetModules(List.of("q")).build().toJson());
        Map<String, TensorData> t = new LinkedHashMap<>();
        t.put("base_model.model.a.q.lora_A.weight", factors(2, 3, 5).loraA());
        Safetensors.write(dir.resolve(PeftAdapterWriter.WEIGHTS), t, Map.of());
        CheckpointFormatException e = assertThrows(CheckpointFormatException.class,
                () -> PeftAdapterReader.read(dir));
        assertTrue(e.getMessage().endsWith("module 'a.q' has lora_A but no lora_B"),
                e.getMessage());
        t.put("base_model.model.a.q.lora_B.weight", factors(3, 3, 5).loraB());
        Safetensors.write(dir.resolve(PeftAdapterWriter.WEIGHTS), t, Map.of());
        e = assertThrows(CheckpointFormatException.class, () -> PeftAdapterReader.read(dir));
        assertTrue(e.getMessage().contains("module 'a.q': LoRA factors must be"), e.getMessage());
        t.put("model.a.q.weight", factors(3, 3, 5).loraB());
        Safetensors.write(dir.resolve(PeftAdapterWriter.WEIGHTS), t, Map.of());
        e = assertThrows(CheckpointFormatException.class, () -> PeftAdapterReader.read(dir));
        assertTrue(e.getMessage().contains("tensor 'model.a.q.weight' is not"), e.getMessage());
        Files.writeString(dir.resolve(PeftAdapterWriter.CONFIG), "{\"peft_type\": \"LORA\", "
                + "\"r\": 0, \"lora_alpha\": 8, \"target_modules\": [\"q\"]}");
        e = assertThrows(CheckpointFormatException.class, () -> PeftAdapterReader.read(dir));
        assertTrue(e.getMessage().endsWith("field 'r' must be an integer in [1, 4096], got 0"),
                e.getMessage());
        Files.writeString(dir.resolve(PeftAdapterWriter.CONFIG), "{\"peft_type\": \"LORA\", "
                + "\"r\": 2, \"lora_alpha\": 8, \"target_modules\": [\"q\"], "
                + "\"init_lora_weights\": \"loftq\"}");
        e = assertThrows(CheckpointFormatException.class, () -> PeftAdapterReader.read(dir));
        assertTrue(e.getMessage().contains("field 'init_lora_weights' must be true"),
                e.getMessage());
        Files.delete(dir.resolve(PeftAdapterWriter.CONFIG));
        assertThrows(java.nio.file.NoSuchFileException.class, () -> PeftAdapterReader.read(dir));
    }

    @Test
    void aRankThatDisagreesWithTheConfigIsRejectedOnWrite() {
        PeftAdapterConfig c = PeftAdapterConfig.builder(4, 4).targetModules(List.of("q")).build();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new PeftAdapter(c, Map.of("x.q", factors(2, 3, 5))));
        assertEquals("module x.q: factors have rank 2 but the config gives it r = 4 (set r or "
                + "rank_pattern accordingly)", e.getMessage());
    }

    private static LoraWeights factors(int r, int in, int out) {
        float[] a = new float[r * in];
        float[] b = new float[out * r];
        for (int i = 0; i < a.length; i++) {
            a[i] = i * 0.25f - 1;
        }
        for (int i = 0; i < b.length; i++) {
            b[i] = 0.5f - i * 0.125f;
        }
        return new LoraWeights(TensorData.ofFloats(a, r, in), TensorData.ofFloats(b, out, r));
    }
}
