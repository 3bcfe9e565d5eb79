package dev.loftq.quant.loftq;

import dev.loftq.core.tensor.Tensor;

/**
 * LoRA factors fitted to a fixed backbone by {@link Loftq#adaptersFor} or
 * {@link Loftq#tutorialBaseline}: {@code s·B·A ≈ W − Q}.
 *
 * @param loraA A, FLOAT32 [r, in]
 * @param loraB B, FLOAT32 [out, r]
 * @param scaling s
 * @param errorWithoutAdapters ‖W − Q‖ / ‖W‖
 * @param error ‖W − Q − s·B·A‖ / ‖W‖
 */
public record LoraFactors(Tensor loraA, Tensor loraB, float scaling, double errorWithoutAdapters,
        double error) {}
