package dev.loftq.djl.wrap;

import dev.loftq.core.Checks;
import dev.loftq.quant.quantizer.Quantizer;

/**
 * How one layer is wrapped: the quantizer of its frozen weight, the LoRA rank and alpha, and
 * whether the scaling is rsLoRA's. Per-layer overrides of this (mixed precision, peft's
 * {@code rank_pattern}/{@code alpha_pattern}) go through {@link LoraWrapper.Builder#rule}.
 *
 * @param quantizer quantizes the layer's weight; not null
 * @param rank r >= 1 (checked against the layer's shape when wrapping)
 * @param alpha lora_alpha, finite and > 0
 * @param rsLora s = alpha / √r instead of alpha / r
 */
public record LoraSpec(Quantizer quantizer, int rank, float alpha, boolean rsLora) {
    /** Validates. */
    public LoraSpec {
        Checks.notNull("quantizer", quantizer);
        Checks.inRange("rank", rank, 1, Integer.MAX_VALUE);
        Checks.positive("alpha", alpha);
    }

    /** The LoRA scaling s: alpha / r, or alpha / √r with rsLoRA. */
    public float scaling() {
        return rsLora ? (float) (alpha / Math.sqrt(rank)) : alpha / rank;
    }
}
