package dev.loftq.demo;

/**
 * The distillation run of one {@link Variant}.
 *
 * @param start the variant as initialised (its table row)
 * @param losses the mini-batch loss of every step, before its update
 * @param cosineAfter mean held-out cosine to fp32 after training
 * @param spearmanAfter Spearman of the pairwise similarities after training
 * @param trainSeconds wall time of the training steps
 */
public record FineTuneResult(VariantResult start, float[] losses, double cosineAfter, double spearmanAfter,
        double trainSeconds) {}
