package dev.loftq.quant.apiq;

import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.Map;

/**
 * What ApiQ fits: a function of an input and of weights by name, e.g. one Linear layer (ApiQ-lw,
 * {@link LinearTarget}) or a transformer block with all its Linears (ApiQ-bw, supplied by a model
 * binding). ApiQ replaces each weight W by {@code Q_{γ,β}(W) + s·B·A} and learns γ, β, A, B so that
 * the outputs match the calibration outputs.
 */
public interface ApiqTarget {
    /** The target's name (a module path), for messages and reports. */
    String name();

    /**
     * The full-precision weights to quantize, FLOAT32 [out, in] each, by name, in a fixed order.
     * Owned by the caller; not modified.
     */
    Map<String, Tensor> weights();

    /**
     * The output shape for an input of shape {@code inputShape}.
     *
     * @throws IllegalArgumentException naming the shapes if the target does not take such input
     */
    int[] outputShape(int[] inputShape);

    /**
     * The output for {@code input} with {@code weights} in place of {@link #weights()} (same names
     * and shapes), in SPI operations only, so that autograd can differentiate it.
     *
     * @param scope owns the result and temporaries
     */
    Tensor forward(TensorScope scope, Tensor input, Map<String, Tensor> weights);

    /**
     * Whether samples may be stacked along axis 0 into one input (true for a Linear over tokens,
     * so a batch is one matmul; false for a block whose samples are sentences of different
     * lengths).
     */
    default boolean rowwise() {
        return false;
    }
}
