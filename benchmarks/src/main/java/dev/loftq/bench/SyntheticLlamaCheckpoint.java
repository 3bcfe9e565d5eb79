package dev.loftq.bench;

import dev.loftq.core.io.FloatConversions;
import dev.loftq.core.io.SafetensorsDType;
import dev.loftq.core.io.SafetensorsHeader.TensorSpec;
import dev.loftq.djl.io.AtomicFiles;
import dev.loftq.djl.io.PythonJson;
import dev.loftq.djl.io.SafetensorsCheckpoint;
import dev.loftq.djl.io.SafetensorsStreamWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * Writes a synthetic checkpoint shaped like {@code meta-llama/Llama-2-7b-hf}: bf16, the same
 * tensor names and shapes (embeddings 32000×4096, per layer q/k/v/o 4096×4096, gate/up
 * 11008×4096, down 4096×11008, two RMSNorm vectors; final norm; {@code lm_head}), sharded by a
 * maximum shard size like transformers' {@code save_pretrained} (with
 * {@code model.safetensors.index.json}), and a {@code config.json}. Values are heavy-tailed
 * (Student-t with 3 degrees of freedom, scale 0.02, a few planted outliers per matrix), generated
 * from a per-tensor seed, so the bytes depend only on the shape and seed. Memory stays bounded:
 * each tensor is generated and written in 8 MB chunks.
 */
public final class SyntheticLlamaCheckpoint {
    /** Model dimensions. */
    public record Shape(int layers, int hidden, int intermediate, int vocab, int heads) {
        /** LLaMA-2-7B with {@code layers} decoder layers (32 in the real model). */
        public static Shape llama2_7b(int layers) {
            return new Shape(layers, 4096, 11008, 32000, 32);
        }
    }

    private static final int CHUNK = 4 << 20; // elements per chunk (8 MB of bf16)

    private SyntheticLlamaCheckpoint() {}

    /** The tensors in the order transformers saves them: name → [rows, cols] or [n]. */
    static Map<String, int[]> tensors(Shape s) {
        Map<String, int[]> t = new LinkedHashMap<>();
        t.put("model.embed_tokens.weight", new int[] {s.vocab(), s.hidden()});
        for (int l = 0; l < s.layers(); l++) {
            String p = "model.layers." + l + ".";
            for (String m : List.of("q_proj", "k_proj", "v_proj", "o_proj")) {
                t.put(p + "self_attn." + m + ".weight", new int[] {s.hidden(), s.hidden()});
            }
            t.put(p + "mlp.gate_proj.weight", new int[] {s.intermediate(), s.hidden()});
            t.put(p + "mlp.up_proj.weight", new int[] {s.intermediate(), s.hidden()});
            t.put(p + "mlp.down_proj.weight", new int[] {s.hidden(), s.intermediate()});
            t.put(p + "input_layernorm.weight", new int[] {s.hidden()});
            t.put(p + "post_attention_layernorm.weight", new int[] {s.hidden()});
        }
        t.put("model.norm.weight", new int[] {s.hidden()});
        t.put("lm_head.weight", new int[] {s.vocab(), s.hidden()});
        return t;
    }

    /**
     * Writes the checkpoint into {@code dir} (created if absent).
     *
     * @param maxShardBytes shard size limit (transformers' default for LLaMA-2 is 10 GB)
     * @return total tensor bytes
     */
    public static long write(Path dir, Shape shape, long maxShardBytes, long seed)
            throws IOException {
        Files.createDirectories(dir);
        Map<String, int[]> all = tensors(shape);
        List<Map<String, int[]>> shards = new ArrayList<>();
        Map<String, int[]> current = new LinkedHashMap<>();
        long size = 0;
        long total = 0;
        for (Map.Entry<String, int[]> e : all.entrySet()) {
            long bytes = 2L * numel(e.getValue());
            if (!current.isEmpty() && size + bytes > maxShardBytes) {
                shards.add(current);
                current = new LinkedHashMap<>();
                size = 0;
            }
            current.put(e.getKey(), e.getValue());
            size += bytes;
            total += bytes;
        }
        shards.add(current);
        Map<String, Object> weightMap = new TreeMap<>();
        int index = 0;
        for (Map<String, int[]> shard : shards) {
            index++;
            String file = shards.size() == 1 ? SafetensorsCheckpoint.SINGLE
                    : String.format("model-%05d-of-%05d.safetensors", index, shards.size());
            Map<String, TensorSpec> specs = new LinkedHashMap<>();
            shard.forEach((k, v) -> specs.put(k, new TensorSpec(SafetensorsDType.BF16, v)));
            try (SafetensorsStreamWriter w = SafetensorsStreamWriter.create(dir.resolve(file),
                    specs, Map.of("format", "pt"))) {
                for (Map.Entry<String, int[]> e : shard.entrySet()) {
                    writeTensor(w, e.getKey(), e.getValue(), seed);
                    weightMap.put(e.getKey(), file);
                }
                w.commit();
            }
        }
        if (shards.size() > 1) {
            Map<String, Object> idx = new LinkedHashMap<>();
            idx.put("metadata", Map.of("total_size", total));
            idx.put("weight_map", weightMap);
            AtomicFiles.writeString(dir.resolve(SafetensorsCheckpoint.INDEX),
                    PythonJson.dumps(idx, 2, true) + "\n");
        }
        AtomicFiles.writeString(dir.resolve("config.json"), PythonJson.dumps(config(shape), 2, true)
                + "\n");
        return total;
    }

    private static Map<String, Object> config(Shape s) {
        Map<String, Object> c = new LinkedHashMap<>();
        c.put("architectures", List.of("LlamaForCausalLM"));
        c.put("bos_token_id", 1);
        c.put("eos_token_id", 2);
        c.put("hidden_act", "silu");
        c.put("hidden_size", s.hidden());
        c.put("initializer_range", 0.02);
        c.put("intermediate_size", s.intermediate());
        c.put("max_position_embeddings", 4096);
        c.put("model_type", "llama");
        c.put("num_attention_heads", s.heads());
        c.put("num_hidden_layers", s.layers());
        c.put("num_key_value_heads", s.heads());
        c.put("rms_norm_eps", 1e-05);
        c.put("tie_word_embeddings", false);
        c.put("torch_dtype", "bfloat16");
        c.put("vocab_size", s.vocab());
        return c;
    }

    private static void writeTensor(SafetensorsStreamWriter w, String name, int[] shape,
            long seed) throws IOException {
        long n = numel(shape);
        SplittableRandom rnd = new SplittableRandom(seed * 1_000_003L + name.hashCode());
        boolean norm = shape.length == 1;
        float[] values = new float[(int) Math.min(n, CHUNK)];
        ByteBuffer bytes = ByteBuffer.allocate(values.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        long outlierEvery = Math.max(1, n / 8);
        for (long at = 0; at < n; at += values.length) {
            int k = (int) Math.min(values.length, n - at);
            for (int i = 0; i < k; i++) {
                if (norm) {
                    values[i] = (float) (1 + 0.05 * rnd.nextDouble());
                } else if ((at + i) % outlierEvery == outlierEvery / 2) {
                    values[i] = (float) ((rnd.nextBoolean() ? 1 : -1) * (10 + 30 * rnd.nextDouble())
                            * 0.02);
                } else {
                    values[i] = (float) (0.02 * studentT3(rnd));
                }
            }
            bytes.clear();
            FloatConversions.encode(SafetensorsDType.BF16, values, 0, k, bytes);
            bytes.flip();
            w.writeBytes(name, at * 2, bytes);
        }
    }

    /** Student-t with 3 degrees of freedom: Z / sqrt(chi²₃ / 3). */
    private static double studentT3(SplittableRandom r) {
        double z = gaussian(r);
        double c = 0;
        for (int i = 0; i < 3; i++) {
            double g = gaussian(r);
            c += g * g;
        }
        return z / Math.sqrt(c / 3);
    }

    private static double gaussian(SplittableRandom r) {
        double u1 = r.nextDouble();
        double u2 = r.nextDouble();
        return Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
    }

    private static long numel(int[] s) {
        long n = 1;
        for (int d : s) {
            n *= d;
        }
        return n;
    }
}
