package dev.loftq.djl.io;

import dev.loftq.core.Checks;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The {@code quantization_config} of a transformers {@code config.json} for a bitsandbytes 4-bit
 * checkpoint ({@code BitsAndBytesConfig.to_dict()}), with the fields that vary; the others take the
 * values transformers writes for {@code load_in_4bit=True} (FORMATS.md §3).
 *
 * @param quantType {@code nf4} or {@code fp4}
 * @param doubleQuant {@code bnb_4bit_use_double_quant}
 * @param computeDtype {@code bnb_4bit_compute_dtype}: {@code float32}, {@code float16} or
 *     {@code bfloat16}
 * @param skipModules {@code llm_int8_skip_modules}, or null
 */
public record BnbQuantizationConfig(String quantType, boolean doubleQuant, String computeDtype,
        java.util.List<String> skipModules) {
    /** A config with {@code llm_int8_skip_modules: null} (transformers then skips {@code lm_head}). */
    public BnbQuantizationConfig(String quantType, boolean doubleQuant, String computeDtype) {
        this(quantType, doubleQuant, computeDtype, null);
    }

    /**
     * Validates.
     *
     * @param skipModules {@code llm_int8_skip_modules}: modules loaded unquantized (the name
     *     matches a module path or its prefix), or null for transformers' default ({@code lm_head})
     */
    public BnbQuantizationConfig {
        skipModules = skipModules == null ? null : java.util.List.copyOf(skipModules);
        if (!"nf4".equals(quantType) && !"fp4".equals(quantType)) {
            throw new IllegalArgumentException("quantType must be 'nf4' or 'fp4', got '"
                    + quantType + "'");
        }
        Checks.notNull("computeDtype", computeDtype);
        if (!Bnb4bitWeight.DTYPES.contains(computeDtype)) {
            throw new IllegalArgumentException("computeDtype must be one of [bfloat16, float16, "
                    + "float32], got '" + computeDtype + "'");
        }
    }

    /** The {@code quantization_config} object, keys in the order transformers' {@code to_dict}. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("quant_method", "bitsandbytes");
        m.put("_load_in_8bit", false);
        m.put("_load_in_4bit", true);
        m.put("llm_int8_threshold", 6.0);
        m.put("llm_int8_skip_modules", skipModules == null ? null
                : new java.util.ArrayList<Object>(skipModules));
        m.put("llm_int8_enable_fp32_cpu_offload", false);
        m.put("llm_int8_has_fp16_weight", false);
        m.put("bnb_4bit_quant_type", quantType);
        m.put("bnb_4bit_use_double_quant", doubleQuant);
        m.put("bnb_4bit_compute_dtype", computeDtype);
        m.put("bnb_4bit_quant_storage", "uint8");
        m.put("load_in_4bit", true);
        m.put("load_in_8bit", false);
        return m;
    }
}
