package dev.loftq.demo;

import dev.loftq.core.Checks;
import dev.loftq.djl.apiq.BertApiq;
import dev.loftq.djl.apiq.TargetReport;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.model.BertWeights;
import dev.loftq.djl.model.MiniLmModel;
import dev.loftq.djl.model.ModelResource;
import dev.loftq.djl.wrap.LayerSelector;
import dev.loftq.djl.wrap.LoraInitializer;
import dev.loftq.djl.wrap.LoraModel;
import dev.loftq.djl.wrap.LoraWrapper;
import dev.loftq.quant.apiq.ApiqConfig;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.Quantizer;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The ApiQ comparison of issue 8 on all-MiniLM-L6-v2: each {@link ApiqMethod} quantizes the
 * Linears of the first {@link Settings#layers()} encoder layers of a fresh model (r16, alpha 16),
 * which is then measured against fp32: the per-Linear output error on the calibration sentences
 * (Y_q from the model's own propagated inputs; {@link BertApiq#linearOutputErrors}), averaged over
 * the 36 Linears, and the embedding cosine and Spearman on the evaluation sentences
 * ({@link EmbeddingAgreement}). Holds the fp32 model open; not thread-safe (ApiQ records autograd
 * tapes on the shared engine).
 */
public final class ApiqComparison implements AutoCloseable {
    /** LoRA rank and alpha of every row, as in the issue. */
    static final int RANK = 16;
    static final int ALPHA = 16;
    /** LoftQ's alternating steps T. */
    static final int LOFTQ_ITERATIONS = 5;
    /** ApiQ's model selection: a quarter of the calibration sentences held out, checked every 10 steps. */
    static final int EVAL_EVERY = 10;
    /** AdamW's decoupled weight decay for the clipping and for A, B (official). */
    static final float WEIGHT_DECAY = 0.1f;
    private static final int LINEARS_PER_LAYER = 6;

    /**
     * The comparison's settings (validated by {@link ApiqConfig} and {@link BertApiq}).
     *
     * @param layers encoder layers quantized, from the first, in [1, 6] for MiniLM
     * @param lwSteps ApiQ-lw steps per Linear, full batch
     * @param bwSteps ApiQ-bw steps per encoder layer
     * @param bwBatch ApiQ-bw sentences per step, 0 = all (full batch)
     * @param clipLr AdamW learning rate of the clipping logits, &gt; 0
     * @param loraLr AdamW learning rate of A and B, &gt; 0
     * @param holdOut fraction of the calibration sentences held out for model selection, in [0, 0.9]
     * @param patience evaluations without improvement before a target stops, 0 = never
     * @param seed seed of every random choice
     */
    public record Settings(int layers, int lwSteps, int bwSteps, int bwBatch, float clipLr, float loraLr,
            double holdOut, int patience, long seed) {}

    /**
     * One row's outcome.
     *
     * @param method the row
     * @param label its description with the settings, for tables
     * @param linearErrors relative output error per Linear path (all 36), in model order
     * @param cosine mean cosine of the evaluation embeddings to fp32
     * @param spearman Spearman of the evaluation sentences' pairwise similarities against fp32
     * @param seconds wall time of the initialization (wrapping or ApiQ), without the measuring
     * @param reports ApiQ's per-target reports, in model order; empty for the other rows
     */
    public record Row(ApiqMethod method, String label, Map<String, Double> linearErrors, double cosine,
            double spearman, double seconds, List<TargetReport> reports) {
        /** The mean of {@link #linearErrors}. */
        public double meanOutputError() {
            double sum = 0;
            for (double e : linearErrors.values()) {
                sum += e;
            }
            return sum / linearErrors.size();
        }
    }

    private final DjlBackend backend;
    private final BertWeights weights;
    private final ModelResource tokenizer;
    private final Settings settings;
    private final MiniLmModel fp;
    private final List<long[]> calibration;
    private final List<String> evaluation;
    private final float[][] reference;

    /**
     * Opens the fp32 model, tokenizes {@code calibration} and embeds {@code evaluation}.
     *
     * @param calibration at least one sentence (ApiQ's training and selection data, and where the
     *     output errors are measured)
     * @param evaluation at least 3 other sentences (so that there are 3 pairs to rank)
     */
    public ApiqComparison(DjlBackend backend, BertWeights weights, ModelResource tokenizer, List<String> calibration,
            List<String> evaluation, Settings settings) throws IOException {
        this.backend = Checks.notNull("backend", backend);
        this.weights = Checks.notNull("weights", weights);
        this.tokenizer = Checks.notNull("tokenizer", tokenizer);
        this.settings = Checks.notNull("settings", settings);
        if (calibration == null || calibration.isEmpty()) {
            throw new IllegalArgumentException("calibration must hold at least 1 sentence, got "
                    + (calibration == null ? "null" : 0));
        }
        if (evaluation == null || evaluation.size() < 3) {
            throw new IllegalArgumentException("evaluation must hold at least 3 sentences, got "
                    + (evaluation == null ? "null" : evaluation.size()));
        }
        this.evaluation = List.copyOf(evaluation);
        this.fp = newModel();
        try {
            this.calibration = Arrays.asList(fp.tokenize(calibration));
            this.reference = fp.embed(this.evaluation);
        } catch (RuntimeException e) {
            fp.close();
            throw e;
        }
    }

    /** How many progress units {@link #run} reports for {@code method}: its targets. */
    public int targets(ApiqMethod method) {
        return method.kind() == ApiqMethod.Kind.APIQ_BW ? settings.layers() : settings.layers() * LINEARS_PER_LAYER;
    }

    /** E.g. {@code ApiQ-bw, int2 g64, 100 steps per encoder layer, 4 sentences a step}. */
    public String label(ApiqMethod method) {
        int b = method.bits();
        return switch (method.kind()) {
            case QLORA -> "QLoRA init, int" + b + " g64 (B = 0: no adapter effect)";
            case LOFTQ_PUBLISHED -> "LoftQ published, NF" + b + " T" + LOFTQ_ITERATIONS;
            case LOFTQ_DEFAULT -> "LoftQ default, NF" + b + " T" + LOFTQ_ITERATIONS + " (MSE-optimal scales)";
            case APIQ_LW -> "ApiQ-lw, " + apiqQuantizer(method) + ", " + steps(settings.lwSteps()) + " per Linear";
            case APIQ_BW -> "ApiQ-bw, " + apiqQuantizer(method) + ", " + steps(settings.bwSteps()) + " per encoder layer, "
                    + (settings.bwBatch() == 0 ? "full batch" : settings.bwBatch() + " sentences a step");
        };
    }

    private static String apiqQuantizer(ApiqMethod method) {
        return method.normalFloat() ? "NF" + method.bits() + " g64 with learned absmax clipping"
                : "int" + method.bits() + " g64";
    }

    private static String steps(int n) {
        return n + (n == 1 ? " step" : " steps");
    }

    /**
     * Runs one row on a fresh copy of the model and measures it.
     *
     * @param onTarget called after each target (a wrapped Linear, an ApiQ-lw Linear or an ApiQ-bw layer)
     * @throws dev.loftq.quant.apiq.ApiqDivergedException if an ApiQ loss diverges
     */
    public Row run(ApiqMethod method, Runnable onTarget) throws IOException {
        Checks.notNull("method", method);
        Checks.notNull("onTarget", onTarget);
        long start = System.nanoTime();
        try (MiniLmModel model = newModel()) {
            if (method.apiq()) {
                BertApiq driver = BertApiq.builder(backend, apiqConfig(method)).optLayers(settings.layers())
                        .optListener(r -> onTarget.run()).build();
                try (BertApiq.Result r = method.kind() == ApiqMethod.Kind.APIQ_BW
                        ? driver.blockwise(fp.block(), model.block(), calibration)
                        : driver.layerwise(fp.block(), model.block(), calibration)) {
                    return measure(method, model, seconds(start), r.reports());
                }
            }
            try (LoraModel lora = wrapper(method, onTarget).wrap(model.block())) {
                return measure(method, model, seconds(start), List.of());
            }
        }
    }

    private LoraWrapper wrapper(ApiqMethod method, Runnable onTarget) {
        Quantizer q = method.kind() == ApiqMethod.Kind.QLORA ? apiqConfig(method).quantizer()
                : CodebookQuantizer.loftqNormalFloat(method.bits());
        LoraInitializer init = method.initialization().initializer(LOFTQ_ITERATIONS, settings.seed());
        LoraInitializer counted = (scope, w, path, spec) -> {
            LoraInitializer.Init result = init.initialize(scope, w, path, spec);
            onTarget.run();
            return result;
        };
        String[] layers = new String[settings.layers()];
        for (int i = 0; i < layers.length; i++) {
            layers[i] = "encoder.layer." + i + ".**";
        }
        return LoraWrapper.builder(backend).setTargets(LayerSelector.glob(layers).linearOnly())
                .setSpec(q, RANK, ALPHA).optInitializer(counted).optCacheDequantized(true).build();
    }

    /** ApiQ's settings for {@code method}'s bits (also the QLoRA row's int-k g64 quantizer). */
    private ApiqConfig apiqConfig(ApiqMethod method) {
        boolean blockwise = method.kind() == ApiqMethod.Kind.APIQ_BW;
        return ApiqConfig.builder(settings.seed()).bits(method.bits()).normalFloat(method.normalFloat())
                .rank(RANK).loraAlpha(ALPHA)
                .steps(blockwise ? settings.bwSteps() : settings.lwSteps())
                .batchSize(blockwise ? settings.bwBatch() : 0)
                .holdOut(settings.holdOut()).evalEvery(EVAL_EVERY).patience(settings.patience())
                .clipOptimizer(settings.clipLr(), WEIGHT_DECAY).loraOptimizer(settings.loraLr(), WEIGHT_DECAY)
                .build();
    }

    private Row measure(ApiqMethod method, MiniLmModel model, double seconds, List<TargetReport> reports) {
        Map<String, Double> errors = BertApiq.linearOutputErrors(fp.block(), model.block(), calibration, backend);
        float[][] embeddings = model.embed(evaluation);
        return new Row(method, label(method), errors, EmbeddingAgreement.meanCosine(reference, embeddings),
                EmbeddingAgreement.similarityRankCorrelation(reference, embeddings), seconds, reports);
    }

    private MiniLmModel newModel() throws IOException {
        return MiniLmModel.builder().setWeights(weights).setTokenizer(tokenizer).build();
    }

    private static double seconds(long start) {
        return (System.nanoTime() - start) / 1e9;
    }

    /** A one-line summary of the settings, for the results' header. */
    String describe() {
        return String.format(Locale.ROOT, "r%d alpha %d; LoftQ T=%d; ApiQ int-k asymmetric g64, clipping logits from "
                + "%s, AdamW lr %s (clipping) / %s (A, B), weight decay %s, %d%% of the calibration sentences held "
                + "out for model selection every %d steps, patience %d; seed %d", RANK, ALPHA, LOFTQ_ITERATIONS,
                apiqConfig(ApiqMethod.LW2).clipInit(), settings.clipLr(), settings.loraLr(), WEIGHT_DECAY, Math.round(settings.holdOut() * 100), EVAL_EVERY, settings.patience(),
                settings.seed());
    }

    /** Closes the fp32 model. */
    @Override
    public void close() {
        fp.close();
    }
}
