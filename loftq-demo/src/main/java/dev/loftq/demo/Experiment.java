package dev.loftq.demo;

import dev.loftq.core.Checks;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.model.BertWeights;
import dev.loftq.djl.model.MiniLmModel;
import dev.loftq.djl.model.ModelResource;
import dev.loftq.djl.wrap.LayerSelector;
import dev.loftq.djl.wrap.LoraInitializer;
import dev.loftq.djl.wrap.LoraModel;
import dev.loftq.djl.wrap.LoraWrapper;
import dev.loftq.djl.wrap.WrappedLayer;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * all-MiniLM-L6-v2's weights and the fp32 embeddings of the evaluation sentences, from which each
 * {@link Variant} is built (a fresh DJL model, all 36 Linears wrapped) and measured against fp32.
 * Thread-safe: {@link #evaluate} and {@link #fineTune} may run on several threads at once (each
 * builds its own model; the backend is thread-safe).
 */
public final class Experiment {
    private final DjlBackend backend;
    private final BertWeights weights;
    private final ModelResource tokenizer;
    private final int iterations;
    private final long seed;
    private final List<String> evaluation;
    private final float[][] reference;

    /**
     * Embeds {@code evaluation} with the fp32 model.
     *
     * @param backend where the quantized weights live
     * @param weights the model's weights (read once, shared by every variant)
     * @param tokenizer the tokenizer.json
     * @param evaluation at least 3 sentences (so that there are 3 pairs to rank)
     * @param iterations LoftQ's T, in [1, 1000]
     * @param seed seed of every random choice
     */
    public Experiment(DjlBackend backend, BertWeights weights, ModelResource tokenizer, List<String> evaluation,
            int iterations, long seed) throws IOException {
        this.backend = Checks.notNull("backend", backend);
        this.weights = Checks.notNull("weights", weights);
        this.tokenizer = Checks.notNull("tokenizer", tokenizer);
        if (evaluation == null || evaluation.size() < 3) {
            throw new IllegalArgumentException("evaluation must hold at least 3 sentences, got "
                    + (evaluation == null ? "null" : evaluation.size()));
        }
        this.evaluation = List.copyOf(evaluation);
        this.iterations = Checks.inRange("iterations", iterations, 1, 1000);
        this.seed = seed;
        try (MiniLmModel fp32 = newModel()) {
            this.reference = fp32.embed(this.evaluation);
        }
    }

    /** A fresh fp32 model (the caller closes it). */
    public MiniLmModel newModel() throws IOException {
        return MiniLmModel.builder().setWeights(weights).setTokenizer(tokenizer).build();
    }

    /** The fp32 embeddings of the evaluation sentences. */
    public float[][] reference() {
        return reference;
    }

    /** The evaluation sentences. */
    public List<String> evaluation() {
        return evaluation;
    }

    /**
     * Wraps all 36 Linear layers of {@code model} as {@code variant} says (alpha = rank; the
     * dequantized weights are cached, as the backbone is frozen).
     *
     * @param onLayer called after each layer's initialization
     */
    public LoraModel wrap(MiniLmModel model, Variant variant, Runnable onLayer) {
        LoraInitializer init = variant.initialization().initializer(iterations, seed);
        LoraInitializer counted = (scope, w, path, spec) -> {
            LoraInitializer.Init result = init.initialize(scope, w, path, spec);
            onLayer.run();
            return result;
        };
        return LoraWrapper.builder(backend).setTargets(LayerSelector.allLinear())
                .setSpec(variant.format().quantizer(), variant.rank(), variant.rank())
                .optInitializer(counted).optCacheDequantized(true).build().wrap(model.block());
    }

    /** Builds, wraps and measures {@code variant}. */
    public VariantResult evaluate(Variant variant, Runnable onLayer) throws IOException {
        long start = System.nanoTime();
        try (MiniLmModel model = newModel(); LoraModel lora = wrap(model, variant, onLayer)) {
            return measure(variant, model, lora, start);
        }
    }

    /**
     * Builds, wraps and measures {@code variant}, then trains its adapters toward the fp32
     * embeddings of {@code training} and measures again.
     *
     * @param onLayer called after each layer's initialization
     * @param onStep called after each training step
     */
    public FineTuneResult fineTune(Variant variant, Distillation distillation, List<String> training,
            Runnable onLayer, IntConsumer onStep) throws IOException {
        long start = System.nanoTime();
        try (MiniLmModel model = newModel(); LoraModel lora = wrap(model, variant, onLayer)) {
            VariantResult before = measure(variant, model, lora, start);
            List<long[]> ids = Arrays.asList(model.tokenize(training));
            float[][] teacher;
            try (MiniLmModel fp32 = newModel()) {
                teacher = fp32.embedTokens(ids);
            }
            long trainStart = System.nanoTime();
            float[] losses = distillation.train(model, ids, teacher, onStep);
            double trainSeconds = (System.nanoTime() - trainStart) / 1e9;
            VariantResult after = measure(variant, model, lora, start);
            return new FineTuneResult(before, losses, after.cosine(), after.spearman(), trainSeconds);
        }
    }

    /** Measures a wrapped model; {@code start} is the {@link System#nanoTime} its work began. */
    private VariantResult measure(Variant variant, MiniLmModel model, LoraModel lora, long start) {
        float[][] embeddings = model.embed(evaluation);
        return new VariantResult(variant, meanInitialError(lora),
                EmbeddingAgreement.meanCosine(reference, embeddings),
                EmbeddingAgreement.similarityRankCorrelation(reference, embeddings),
                (System.nanoTime() - start) / 1e9);
    }

    private static double meanInitialError(LoraModel lora) {
        double sum = 0;
        for (WrappedLayer l : lora.layers()) {
            sum += l.initialError();
        }
        return sum / lora.layers().size();
    }
}
