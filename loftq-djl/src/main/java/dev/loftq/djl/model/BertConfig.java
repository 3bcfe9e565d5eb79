package dev.loftq.djl.model;

import dev.loftq.core.Checks;

/**
 * The shape of a BERT encoder (the part of HF {@code BertConfig} that building the blocks needs).
 * Everything but {@code numHeads} and {@code layerNormEps} is read off the weights by
 * {@link BertWeights}; those two are not in the weights and come from the model card.
 *
 * @param vocabSize rows of {@code embeddings.word_embeddings}
 * @param hiddenSize model width H
 * @param numLayers number of {@code encoder.layer.{i}} blocks
 * @param numHeads attention heads; must divide {@code hiddenSize}
 * @param intermediateSize width of {@code intermediate.dense}
 * @param maxPositions rows of {@code embeddings.position_embeddings}: the longest input, in tokens
 * @param typeVocabSize rows of {@code embeddings.token_type_embeddings}
 * @param layerNormEps LayerNorm epsilon (BERT: 1e-12)
 */
public record BertConfig(
        int vocabSize,
        int hiddenSize,
        int numLayers,
        int numHeads,
        int intermediateSize,
        int maxPositions,
        int typeVocabSize,
        float layerNormEps) {
    /** all-MiniLM-L6-v2: 12 heads of width 32. */
    public static final int MINILM_HEADS = 12;
    /** BERT's LayerNorm epsilon. */
    public static final float BERT_LAYER_NORM_EPS = 1e-12f;

    /** Validates every field. */
    public BertConfig {
        Checks.inRange("vocabSize", vocabSize, 1, Integer.MAX_VALUE);
        Checks.inRange("hiddenSize", hiddenSize, 1, 1 << 16);
        Checks.inRange("numLayers", numLayers, 1, 1024);
        Checks.inRange("numHeads", numHeads, 1, hiddenSize);
        if (hiddenSize % numHeads != 0) {
            throw new IllegalArgumentException(
                    "numHeads must divide hiddenSize " + hiddenSize + ", got " + numHeads);
        }
        Checks.inRange("intermediateSize", intermediateSize, 1, 1 << 20);
        Checks.inRange("maxPositions", maxPositions, 1, 1 << 20);
        Checks.inRange("typeVocabSize", typeVocabSize, 1, 1 << 16);
        Checks.positive("layerNormEps", layerNormEps);
    }

    /** Width of one attention head. */
    public int headSize() {
        return hiddenSize / numHeads;
    }
}
