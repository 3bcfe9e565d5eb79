package dev.loftq.quant.apiq;

import dev.loftq.core.Checks;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.Arrays;
import java.util.Map;

/**
 * One Linear layer, {@code y = x·Wᵀ + b}, as an {@link ApiqTarget} (ApiQ-lw). Input
 * FLOAT32 [tokens, in], output [tokens, out]; the weight is named {@value #WEIGHT}.
 */
public final class LinearTarget implements ApiqTarget {
    /** The weight's name in {@link #weights()}. */
    public static final String WEIGHT = "weight";

    private final String name;
    private final Tensor weight;
    private final Tensor bias;

    /**
     * @param name the layer's path
     * @param weight FLOAT32 [out, in]; not modified, not copied
     * @param bias FLOAT32 [out], or null; not modified, not copied
     */
    public LinearTarget(String name, Tensor weight, Tensor bias) {
        this.name = Checks.notNull("name", name);
        this.weight = Checks.notNull("weight", weight);
        if (weight.rank() != 2) {
            throw new IllegalArgumentException("weight of " + name + " must be [out, in], got "
                    + Arrays.toString(weight.shape()));
        }
        if (bias != null && (bias.rank() != 1 || bias.dim(0) != weight.dim(0))) {
            throw new IllegalArgumentException("bias of " + name + " must be [" + weight.dim(0)
                    + "], got " + Arrays.toString(bias.shape()));
        }
        this.bias = bias;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public Map<String, Tensor> weights() {
        return Map.of(WEIGHT, weight);
    }

    @Override
    public int[] outputShape(int[] inputShape) {
        if (inputShape.length != 2 || inputShape[1] != weight.dim(1)) {
            throw new IllegalArgumentException("Linear " + name + " takes input [tokens, "
                    + weight.dim(1) + "], got " + Arrays.toString(inputShape));
        }
        return new int[] {inputShape[0], weight.dim(0)};
    }

    @Override
    public Tensor forward(TensorScope scope, Tensor input, Map<String, Tensor> weights) {
        Tensor y = scope.matmul(input, false, weights.get(WEIGHT), true);
        return bias == null ? y : scope.add(y, bias);
    }

    @Override
    public boolean rowwise() {
        return true;
    }
}
