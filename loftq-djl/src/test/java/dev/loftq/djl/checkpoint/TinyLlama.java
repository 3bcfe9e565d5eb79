package dev.loftq.djl.checkpoint;

import dev.loftq.core.io.FloatConversions;
import dev.loftq.core.io.Safetensors;
import dev.loftq.core.io.SafetensorsDType;
import dev.loftq.core.io.TensorData;
import dev.loftq.djl.io.PythonJson;
import dev.loftq.djl.io.SafetensorsCheckpoint;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * A tiny LLaMA-shaped bf16 checkpoint for tests: {@code layers} decoder layers of hidden size 64
 * and intermediate 128, heavy-tailed weights, one shard per layer plus one for embeddings and the
 * head, an index, a config.json and a tokenizer file.
 */
final class TinyLlama {
    static final int HIDDEN = 64;
    static final int INTERMEDIATE = 128;
    static final int VOCAB = 48;

    private TinyLlama() {}

    static Path write(Path dir, int layers) throws IOException {
        Files.createDirectories(dir);
        Random rnd = new Random(11);
        int shards = layers + 1;
        Map<String, Object> weightMap = new LinkedHashMap<>();
        long total = 0;
        for (int s = 0; s < shards; s++) {
            String file = String.format("model-%05d-of-%05d.safetensors", s + 1, shards);
            Map<String, TensorData> t = new LinkedHashMap<>();
            if (s == 0) {
                t.put("model.embed_tokens.weight", bf16(rnd, VOCAB, HIDDEN));
                t.put("model.norm.weight", bf16Ones(HIDDEN));
                t.put("lm_head.weight", bf16(rnd, VOCAB, HIDDEN));
            } else {
                String p = "model.layers." + (s - 1) + ".";
                for (String m : List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                        "self_attn.o_proj")) {
                    t.put(p + m + ".weight", bf16(rnd, HIDDEN, HIDDEN));
                }
                t.put(p + "mlp.gate_proj.weight", bf16(rnd, INTERMEDIATE, HIDDEN));
                t.put(p + "mlp.up_proj.weight", bf16(rnd, INTERMEDIATE, HIDDEN));
                t.put(p + "mlp.down_proj.weight", bf16(rnd, HIDDEN, INTERMEDIATE));
                t.put(p + "input_layernorm.weight", bf16Ones(HIDDEN));
                t.put(p + "post_attention_layernorm.weight", bf16Ones(HIDDEN));
            }
            Safetensors.write(dir.resolve(file), t, Map.of("format", "pt"));
            for (Map.Entry<String, TensorData> e : t.entrySet()) {
                weightMap.put(e.getKey(), file);
                total += e.getValue().byteSize();
            }
        }
        Map<String, Object> index = new LinkedHashMap<>();
        index.put("metadata", Map.of("total_size", total));
        index.put("weight_map", weightMap);
        Files.writeString(dir.resolve(SafetensorsCheckpoint.INDEX),
                PythonJson.dumps(index, 2, true) + "\n");
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("architectures", List.of("LlamaForCausalLM"));
        config.put("hidden_size", HIDDEN);
        config.put("intermediate_size", INTERMEDIATE);
        config.put("model_type", "llama");
        config.put("num_hidden_layers", layers);
        config.put("rms_norm_eps", new PythonJson.Literal("1e-05"));
        config.put("torch_dtype", "bfloat16");
        config.put("vocab_size", VOCAB);
        Files.writeString(dir.resolve("config.json"), PythonJson.dumps(config, 2, true) + "\n");
        Files.writeString(dir.resolve("tokenizer.json"), "{\"model\": {}}\n");
        return dir;
    }

    /** Student-t-like (ratio of Gaussians clipped) heavy-tailed values, bf16. */
    static TensorData bf16(Random rnd, int rows, int cols) {
        ByteBuffer b = ByteBuffer.allocate(rows * cols * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < rows * cols; i++) {
            double g = rnd.nextGaussian();
            double chi = Math.sqrt((Math.pow(rnd.nextGaussian(), 2) + Math.pow(rnd.nextGaussian(), 2)
                    + Math.pow(rnd.nextGaussian(), 2)) / 3);
            b.putShort(FloatConversions.floatToBfloat16((float) (0.02 * g / Math.max(chi, 0.05))));
        }
        return TensorData.ofRaw(SafetensorsDType.BF16, b.array(), rows, cols);
    }

    static TensorData bf16Ones(int n) {
        ByteBuffer b = ByteBuffer.allocate(n * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) {
            b.putShort(FloatConversions.floatToBfloat16(1f));
        }
        return TensorData.ofRaw(SafetensorsDType.BF16, b.array(), n);
    }
}
