package dev.loftq.djl.io;

import dev.loftq.core.Checks;
import dev.loftq.core.io.TensorData;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.Arrays;

/**
 * The LoRA factors of one module, on the host: {@code lora_A} {@code [r, in]} and {@code lora_B}
 * {@code [out, r]} (peft's names and layout; the forward adds {@code s · x·Aᵀ·Bᵀ}). Immutable.
 *
 * @param loraA floating point (F32, F16, BF16 or F64), 2-D {@code [r, in]}
 * @param loraB the same dtype, 2-D {@code [out, r]}
 */
public record LoraWeights(TensorData loraA, TensorData loraB) {
    /**
     * @throws IllegalArgumentException unless both are 2-D floating-point tensors of one dtype with
     *     {@code A.shape[0] == B.shape[1] >= 1}
     */
    public LoraWeights {
        Checks.notNull("loraA", loraA);
        Checks.notNull("loraB", loraB);
        int[] a = loraA.shape();
        int[] b = loraB.shape();
        if (a.length != 2 || b.length != 2 || a[0] != b[1] || a[0] < 1
                || !loraA.dtype().isFloatingPoint() || loraA.dtype() != loraB.dtype()) {
            throw new IllegalArgumentException("LoRA factors must be floating-point A [r, in] and "
                    + "B [out, r] of one dtype with r >= 1, got A " + loraA.dtype() + " "
                    + Arrays.toString(a) + " and B " + loraB.dtype() + " " + Arrays.toString(b));
        }
    }

    /** F32 copies of two FLOAT32 backend tensors A {@code [r, in]} and B {@code [out, r]}. */
    public static LoraWeights of(TensorScope scope, Tensor loraA, Tensor loraB) {
        return new LoraWeights(TensorData.ofFloats(scope.toFloatArray(loraA), loraA.shape()),
                TensorData.ofFloats(scope.toFloatArray(loraB), loraB.shape()));
    }

    /** The rank r. */
    public int rank() {
        return loraA.shape()[0];
    }

    /** Input features ({@code A}'s columns). */
    public int inFeatures() {
        return loraA.shape()[1];
    }

    /** Output features ({@code B}'s rows). */
    public int outFeatures() {
        return loraB.shape()[0];
    }

    /** A as a FLOAT32 tensor {@code [r, in]} owned by {@code scope}. */
    public Tensor loraA(TensorScope scope) {
        return scope.fromHost(loraA.floats(), loraA.shape());
    }

    /** B as a FLOAT32 tensor {@code [out, r]} owned by {@code scope}. */
    public Tensor loraB(TensorScope scope) {
        return scope.fromHost(loraB.floats(), loraB.shape());
    }
}
