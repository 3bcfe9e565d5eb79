package dev.loftq.djl.io;

import dev.loftq.core.Checks;
import dev.loftq.core.io.TensorData;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.codebook.Codebook;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes bitsandbytes 4-bit Linear weights as transformers saves them ({@code Linear4bit.
 * _save_to_state_dict}, FORMATS.md §3), so that {@code AutoModelForCausalLM.from_pretrained} with
 * bitsandbytes loads them unchanged:
 *
 * <table>
 *   <caption>Keys per module {@code <m>}</caption>
 *   <tr><th>key</th><th>dtype</th><th>shape</th></tr>
 *   <tr><td>{@code <m>.weight}</td><td>U8</td><td>{@code [(n+1)/2, 1]}, codes MSB first</td></tr>
 *   <tr><td>{@code <m>.weight.absmax}</td><td>F32, or U8 if nested</td><td>{@code [blocks]}</td></tr>
 *   <tr><td>{@code <m>.weight.quant_map}</td><td>F32</td><td>{@code [16]}</td></tr>
 *   <tr><td>{@code <m>.weight.nested_absmax}</td><td>F32</td><td>{@code [ceil(blocks/256)]}</td></tr>
 *   <tr><td>{@code <m>.weight.nested_quant_map}</td><td>F32</td><td>{@code [256]}</td></tr>
 *   <tr><td>{@code <m>.weight.quant_state.bitsandbytes__nf4} (or {@code __fp4})</td><td>U8</td>
 *       <td>UTF-8 bytes of {@code json.dumps} of the non-tensor items</td></tr>
 * </table>
 *
 * <p>The quant-state JSON is byte-identical to bitsandbytes' ({@link PythonJson}); the offset of
 * double quantization is printed as Python prints {@code float(offset)} (the float32 widened to a
 * double). Stateless and thread-safe.
 */
public final class BnbCheckpointWriter {
    /** The {@code __metadata__} transformers writes. */
    public static final Map<String, String> METADATA = Map.of("format", "pt");

    private BnbCheckpointWriter() {}

    /**
     * The checkpoint tensors of one 4-bit weight, keys as in the class comment.
     *
     * @param scope reads the weight's tensors (host copies are made; nothing is kept in it)
     * @param w not modified
     * @throws IllegalArgumentException if the weight is not a bitsandbytes-layout NF4 or FP4
     *     quantization (4-bit codes MSB first, the exact table), or its nested scales are not the
     *     8-bit dynamic map in blocks of 256
     */
    public static Map<String, TensorData> tensors(TensorScope scope, Bnb4bitWeight w) {
        QuantizedTensor q = w.weight();
        String quantType = quantType(w);
        int n = q.numel();
        String p = w.module() + ".weight";
        Map<String, TensorData> out = new LinkedHashMap<>();
        out.put(p, TensorData.ofBytes(scope.toByteArray(q.packed()), (n + 1) / 2, 1));
        Float offset = null;
        if (q.nestedScales().isPresent()) {
            QuantizedTensor.NestedScales nested = q.nestedScales().get();
            QuantizedTensor q8 = nested.quantized();
            Codebook map = q8.codebook().orElse(null);
            if (q8.bits() != 8 || q8.blockSize() != CodebookQuantizer.NESTED_BLOCK_SIZE
                    || map == null || map.size() != 256 || q8.plainScales().isEmpty()) {
                throw new IllegalArgumentException("weight " + p + ": nested scales must be 8-bit "
                        + "codes of a 256-entry map in blocks of 256 with plain scales, got " + q8);
            }
            out.put(p + ".absmax", TensorData.ofBytes(scope.toByteArray(q8.packed()),
                    q.numBlocks()));
            out.put(p + ".quant_map", TensorData.ofFloats(q.codebook().get().values(), 16));
            float[] absmax2 = scope.toFloatArray(q8.plainScales().get());
            out.put(p + ".nested_absmax", TensorData.ofFloats(absmax2, absmax2.length));
            out.put(p + ".nested_quant_map", TensorData.ofFloats(map.values(), 256));
            offset = nested.offset();
        } else {
            float[] absmax = scope.toFloatArray(q.plainScales().get());
            out.put(p + ".absmax", TensorData.ofFloats(absmax, absmax.length));
            out.put(p + ".quant_map", TensorData.ofFloats(q.codebook().get().values(), 16));
        }
        byte[] json = quantStateJson(quantType, q.blockSize(), w.dtype(), q.shape(), offset)
                .getBytes(java.nio.charset.StandardCharsets.UTF_8);
        out.put(p + ".quant_state.bitsandbytes__" + quantType, TensorData.ofBytes(json,
                json.length));
        return out;
    }

    /**
     * {@code QuantState.as_dict(packed=True)}'s JSON: {@code {"quant_type": "nf4", "blocksize": 64,
     * "dtype": "bfloat16", "shape": [4096, 4096]}}, plus {@code "nested_blocksize": 256,
     * "nested_dtype": "float32", "nested_offset": <float>} when {@code nestedOffset} is given.
     */
    public static String quantStateJson(String quantType, int blockSize, String dtype,
            int[] shape, Float nestedOffset) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("quant_type", quantType);
        m.put("blocksize", blockSize);
        m.put("dtype", dtype);
        m.put("shape", PythonJson.ints(shape));
        if (nestedOffset != null) {
            m.put("nested_blocksize", CodebookQuantizer.NESTED_BLOCK_SIZE);
            m.put("nested_dtype", "float32");
            m.put("nested_offset", nestedOffset);
        }
        return PythonJson.dumps(m);
    }

    /**
     * The text of a transformers {@code config.json}: {@code base} (the model's own config, e.g.
     * parsed with {@link PythonJson#parse}; may be empty) with {@code quantization_config} set,
     * printed as transformers does ({@code json.dumps(indent=2, sort_keys=True)} and a newline).
     *
     * @param base not modified
     */
    public static String configJson(Map<String, Object> base, BnbQuantizationConfig quantization) {
        Map<String, Object> m = new LinkedHashMap<>(Checks.notNull("base", base));
        m.put("quantization_config", quantization.toMap());
        return PythonJson.dumps(m, 2, true) + "\n";
    }

    /**
     * Writes a single-file checkpoint: {@code dir/model.safetensors} holding the 4-bit weights and
     * {@code others} (biases, norms, embeddings, {@code lm_head}, … copied as given), and
     * {@code dir/config.json}. Each file is written atomically; the directory must exist.
     *
     * @param weights not modified; module paths must be distinct
     * @param others tensors written unchanged; names must not collide with the 4-bit keys
     * @throws IllegalArgumentException for colliding names or weights the format cannot hold
     * @throws IOException if a file cannot be written (nothing partial is left)
     */
    public static void write(Path dir, TensorScope scope, List<Bnb4bitWeight> weights,
            Map<String, TensorData> others, Map<String, Object> baseConfig,
            BnbQuantizationConfig quantization) throws IOException {
        Map<String, TensorData> all = new LinkedHashMap<>(others);
        for (Bnb4bitWeight w : weights) {
            for (Map.Entry<String, TensorData> e : tensors(scope, w).entrySet()) {
                if (all.put(e.getKey(), e.getValue()) != null) {
                    throw new IllegalArgumentException("tensor '" + e.getKey()
                            + "' is given twice (a 4-bit weight's key collides with another)");
                }
            }
        }
        SafetensorsStreamWriter.writeAll(dir.resolve("model.safetensors"), all, METADATA);
        AtomicFiles.writeString(dir.resolve("config.json"), configJson(baseConfig, quantization));
    }

    private static String quantType(Bnb4bitWeight w) {
        QuantizedTensor q = w.weight();
        Codebook c = q.codebook().orElse(null);
        if (q.bits() != 4 || q.packOrder() != PackOrder.MSB_FIRST || c == null
                || !(q.quantizer() instanceof CodebookQuantizer cq)
                || cq.convention() != CodebookQuantizer.Convention.BITSANDBYTES) {
            throw new IllegalArgumentException("weight " + w.module() + ": bitsandbytes 4-bit "
                    + "needs a bitsandbytes-convention 4-bit codebook quantization (MSB first), got "
                    + q);
        }
        if (Arrays.equals(c.values(), Codebook.NF4.values())) {
            return "nf4";
        }
        if (Arrays.equals(c.values(), Codebook.FP4.values())) {
            return "fp4";
        }
        throw new IllegalArgumentException("weight " + w.module() + ": bitsandbytes 4-bit stores "
                + "the NF4 or FP4 table only, got codebook " + c.name());
    }
}
