package dev.loftq.djl.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.io.SafetensorsDType;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.io.Bnb4bitWeight;
import dev.loftq.djl.io.BnbCheckpointReader;
import dev.loftq.djl.io.LazySafetensorsFile;
import dev.loftq.djl.io.LoraWeights;
import dev.loftq.djl.io.PeftAdapter;
import dev.loftq.djl.io.PeftAdapterReader;
import dev.loftq.djl.io.PythonJson;
import dev.loftq.djl.io.SafetensorsCheckpoint;
import dev.loftq.quant.loftq.LoftqPolicy;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** LoftQ over a whole (tiny, sharded, bf16) LLaMA-shaped checkpoint. */
class CheckpointQuantizerTest {
    static final Backend BACKEND = DjlBackend.cpu();

    @TempDir
    Path tmp;

    @Test
    void nf4RunWritesALoadableBackboneAdapterAndReport() throws Exception {
        Path model = TinyLlama.write(tmp.resolve("model"), 2);
        Path out = tmp.resolve("out");
        AtomicInteger done = new AtomicInteger();
        QuantizationResult r = CheckpointQuantizer.builder(model, out).rank(4).iterations(3)
                .threads(2).backend(BACKEND).listener(new ProgressListener() {
                    @Override
                    public void tensorDone(String module, long bytes, boolean skipped) {
                        done.incrementAndGet();
                    }
                }).build().run();
        assertEquals(14, r.layers().size());
        assertEquals(14, done.get());
        assertFalse(Files.exists(out.resolve(CheckpointQuantizer.WORK_DIR)));
        for (Path p : List.of(out.resolve("model-00002-of-00003.safetensors"),
                out.resolve("config.json"), out.resolve("loftq_init/adapter_model.safetensors"),
                out.resolve(CheckpointQuantizer.REPORT))) {
            assertEquals("rw-r--r--", java.nio.file.attribute.PosixFilePermissions.toString(
                    Files.getPosixFilePermissions(p)), p.toString());
        }
        assertEquals("rwxr-xr-x", java.nio.file.attribute.PosixFilePermissions.toString(
                Files.getPosixFilePermissions(out.resolve("loftq_init"))));
        PeftAdapter adapter = PeftAdapterReader.read(out.resolve(CheckpointQuantizer.ADAPTER_DIR));
        assertEquals(List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                "down_proj"), adapter.config().targetModules());
        assertEquals("CAUSAL_LM", adapter.config().taskType());
        try (SafetensorsCheckpoint in = SafetensorsCheckpoint.open(model);
                SafetensorsCheckpoint q = SafetensorsCheckpoint.open(out);
                TensorScope scope = BACKEND.newScope()) {
            assertTrue(q.isSharded());
            assertEquals(in.shards().keySet(), q.shards().keySet());
            // Non-targets byte for byte.
            for (String n : List.of("lm_head.weight", "model.embed_tokens.weight",
                    "model.layers.1.input_layernorm.weight")) {
                assertArrayEquals(in.read(n).rawBytes(), q.read(n).rawBytes(), n);
            }
            for (LayerReport layer : r.layers()) {
                String m = layer.module();
                Bnb4bitWeight w = BnbCheckpointReader.decode(scope, "out", m, n -> {
                    try {
                        return q.contains(n) ? q.read(n) : null;
                    } catch (java.io.IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                });
                assertEquals("bfloat16", w.dtype());
                assertTrue(w.weight().nestedScales().isPresent());
                LoraWeights f = adapter.modules().get(m);
                Tensor orig = scope.fromHost(in.floats(m + ".weight"), layer.shape());
                Tensor approx = scope.add(w.weight().dequantize(scope),
                        scope.matmul(f.loraB(scope), f.loraA(scope)));
                double err = Math.sqrt(scope.sumOfSquares(scope.sub(orig, approx))
                        / scope.sumOfSquares(orig));
                assertEquals(layer.error(), err, 1e-5, m);
                assertTrue(layer.error() < layer.qloraError(), m);
            }
        }
        String config = Files.readString(out.resolve("config.json"));
        assertTrue(config.contains("\"bnb_4bit_compute_dtype\": \"bfloat16\""), config);
        assertTrue(config.contains("\"llm_int8_skip_modules\": [\n      \"lm_head\",\n"
                + "      \"model.embed_tokens\"\n    ]"), config);
        assertTrue(config.contains("\"rms_norm_eps\": 1e-05"), config);
        assertEquals("{\"model\": {}}\n", Files.readString(out.resolve("tokenizer.json")));
        Map<?, ?> report = (Map<?, ?>) PythonJson.parse("report",
                Files.readString(out.resolve(CheckpointQuantizer.REPORT)));
        assertEquals(14, ((List<?>) report.get("layers")).size());
    }

    @Test
    void mixedPrecisionDequantizesLowBitLayersAndRollbacksGiveQloraInit() throws Exception {
        Path model = TinyLlama.write(tmp.resolve("model"), 2);
        Path out = tmp.resolve("out");
        QuantizationResult r = CheckpointQuantizer.builder(model, out).rank(4).iterations(2)
                .mixed(LoftqPolicy.parse("layers\\.0\\.=4,.*=2:8"))
                .callback(o -> !o.module().endsWith("v_proj")).backend(BACKEND).build().run();
        List<String> rolledBack = new ArrayList<>();
        for (LayerReport l : r.layers()) {
            assertEquals(l.module().contains("layers.0.") ? 4 : 2, l.bits(), l.module());
            assertEquals(l.module().contains("layers.0.") ? 4 : 8, l.rank(), l.module());
            if (!l.accepted()) {
                rolledBack.add(l.module());
            }
        }
        assertEquals(List.of("model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.v_proj"),
                rolledBack);
        PeftAdapter adapter = PeftAdapterReader.read(out.resolve(CheckpointQuantizer.ADAPTER_DIR));
        assertEquals(8, adapter.config().rankFor("model.layers.1.mlp.up_proj"));
        assertEquals(4, adapter.config().rankFor("model.layers.0.mlp.up_proj"));
        float[] b = adapter.modules().get("model.layers.1.self_attn.v_proj").loraB().floats();
        assertArrayEquals(new float[b.length], b);
        try (SafetensorsCheckpoint q = SafetensorsCheckpoint.open(out)) {
            // 2-bit layers: dequantized, original dtype and name; 4-bit layers: bnb keys.
            assertEquals(SafetensorsDType.BF16, q.info("model.layers.1.mlp.up_proj.weight").dtype());
            assertNull(q.shardOf().get("model.layers.1.mlp.up_proj.weight.absmax"));
            assertEquals(SafetensorsDType.U8, q.info("model.layers.0.mlp.up_proj.weight").dtype());
            float[] w = q.floats("model.layers.1.mlp.up_proj.weight");
            long distinctPerBlock = java.util.stream.IntStream.range(0, 64)
                    .mapToObj(i -> w[i]).distinct().count();
            assertTrue(distinctPerBlock <= 4, "NF2 gives at most 4 values per block");
        }
        String config = Files.readString(out.resolve("config.json"));
        assertTrue(config.contains("\"model.layers.1.mlp.up_proj\""), config);
    }

    @Test
    void bertNamesAreDefaultTargets() throws Exception {
        Path model = Files.createDirectories(tmp.resolve("bert"));
        java.util.Random rnd = new java.util.Random(2);
        Map<String, dev.loftq.core.io.TensorData> t = new java.util.LinkedHashMap<>();
        for (String n : List.of("encoder.layer.0.attention.self.query",
                "encoder.layer.0.attention.self.key", "encoder.layer.0.attention.output.dense")) {
            t.put(n + ".weight", TinyLlama.bf16(rnd, 64, 64));
        }
        t.put("embeddings.word_embeddings.weight", TinyLlama.bf16(rnd, 32, 64));
        dev.loftq.core.io.Safetensors.write(model.resolve("model.safetensors"), t, Map.of());
        Path out = tmp.resolve("out");
        QuantizationResult r = CheckpointQuantizer.builder(model, out).rank(2).iterations(1)
                .backend(BACKEND).build().run();
        assertEquals(3, r.layers().size());
        // A lone file of another name is read too, and written as model.safetensors.
        Files.move(model.resolve("model.safetensors"), model.resolve("bert.safetensors"));
        Path out2 = tmp.resolve("out2");
        CheckpointQuantizer.builder(model.resolve("bert.safetensors"), out2).rank(2).iterations(1)
                .backend(BACKEND).build().run();
        assertEquals(-1L, Files.mismatch(out.resolve("model.safetensors"),
                out2.resolve("model.safetensors")));
        try (LazySafetensorsFile f = LazySafetensorsFile.open(out.resolve("model.safetensors"))) {
            assertTrue(f.header().tensors().containsKey(
                    "encoder.layer.0.attention.output.dense.weight.quant_state.bitsandbytes__nf4"));
        }
        assertEquals(List.of("query", "key", "dense"), PeftAdapterReader.read(
                out.resolve("loftq_init")).config().targetModules());
    }
}
