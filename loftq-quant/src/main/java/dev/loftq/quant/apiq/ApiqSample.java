package dev.loftq.quant.apiq;

import dev.loftq.core.Checks;
import dev.loftq.core.tensor.Tensor;

/**
 * One calibration sample of a target: the input the quantized model feeds it (X_q) and the output
 * the full-precision model produces on its own input, f_fp(X_fp). Typically one sentence.
 *
 * @param input X_q, FLOAT32, in the target's input shape
 * @param output f_fp(X_fp), FLOAT32, in the target's output shape for that input
 */
public record ApiqSample(Tensor input, Tensor output) {
    /** Checks presence; shapes are checked against the target. */
    public ApiqSample {
        Checks.notNull("input", input);
        Checks.notNull("output", output);
    }
}
