package dev.loftq.djl.io;

import dev.loftq.core.Checks;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.util.Set;

/**
 * The weight of one bitsandbytes {@code Linear4bit} module as a transformers checkpoint stores it:
 * the module path, the quantized weight (NF4 or FP4, bitsandbytes layout, plain or double-quantized
 * block scales) and the dtype of the original weight ({@code quant_state.dtype}, which bitsandbytes
 * dequantizes to).
 *
 * @param module the module path, e.g. {@code model.layers.0.self_attn.q_proj} (keys are
 *     {@code <module>.weight}, {@code <module>.weight.absmax}, …)
 * @param weight made by a bitsandbytes-convention 4-bit {@code CodebookQuantizer}; its shape is
 *     {@code [out, in]}. Its tensors belong to the scope that made it.
 * @param dtype the torch dtype name of the original weight: {@code float32}, {@code float16} or
 *     {@code bfloat16}
 */
public record Bnb4bitWeight(String module, QuantizedTensor weight, String dtype) {
    /** The torch dtype names bitsandbytes accepts for {@code quant_state.dtype}. */
    public static final Set<String> DTYPES = Set.of("float32", "float16", "bfloat16");

    /** Validates non-null fields and the dtype name. */
    public Bnb4bitWeight {
        Checks.notNull("module", module);
        Checks.notNull("weight", weight);
        if (module.isEmpty()) {
            throw new IllegalArgumentException("module must be a non-empty module path");
        }
        if (!DTYPES.contains(dtype)) {
            throw new IllegalArgumentException("dtype must be one of [bfloat16, float16, float32], "
                    + "got '" + dtype + "'");
        }
    }
}
