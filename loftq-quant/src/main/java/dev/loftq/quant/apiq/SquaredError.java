package dev.loftq.quant.apiq;

import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.Map;

/**
 * The summed squared error of a fixed set of calibration samples (with the aug term when enabled)
 * as a function of a target's effective weights: what ApiQ's loss divides by {@link #count()}.
 */
interface SquaredError {
    /**
     * The sum, a one-element FLOAT32 tensor in {@code scope}, differentiable in {@code weights}.
     *
     * @param weights effective weights by name, as {@link ApiqTarget#weights()}
     */
    Tensor sum(TensorScope scope, Map<String, Tensor> weights);

    /** Output elements summed over (the loss's divisor). */
    long count();
}
