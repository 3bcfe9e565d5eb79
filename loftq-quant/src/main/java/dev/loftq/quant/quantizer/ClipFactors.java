package dev.loftq.quant.quantizer;

import dev.loftq.core.Checks;
import dev.loftq.core.tensor.Tensor;

/**
 * Per-group clipping of the quantization range (OmniQuant's and ApiQ's learnable weight clipping):
 * a group's maximum is multiplied by {@code upper[g]} and its minimum by {@code lower[g]} before the
 * scale is computed. ApiQ learns the logits and passes {@code sigmoid(logits)}.
 *
 * @param upper FLOAT32 {@code [groups]}, values in (0, 1]
 * @param lower FLOAT32 {@code [groups]}, values in (0, 1]
 */
public record ClipFactors(Tensor upper, Tensor lower) {
    /** Checks presence; shapes and values are checked when quantizing. */
    public ClipFactors {
        Checks.notNull("upper", upper);
        Checks.notNull("lower", lower);
    }
}
