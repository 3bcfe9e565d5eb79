package dev.loftq.demo;

/**
 * What the demo measures for one {@link Variant}.
 *
 * @param variant the configuration
 * @param weightError mean over the 36 Linear layers of ‖W − Q − s·B·A‖ / ‖W‖
 * @param cosine mean cosine of the held-out sentence embeddings to the fp32 model's
 * @param spearman Spearman correlation of the fp32 and quantized pairwise similarities
 * @param seconds wall time to initialise and evaluate
 */
public record VariantResult(Variant variant, double weightError, double cosine, double spearman, double seconds) {}
