package dev.loftq.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.model.BertWeights;
import dev.loftq.djl.model.MiniLmModel;
import dev.loftq.djl.model.ModelResource;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The check, kept quick: on 16 held-out sentences (plus one text longer than the model's
 * 512 positions, which is truncated), NF2 r16 started by LoftQ is closer to fp32 than QLoRA's start.
 * One LoftQ step (T = 1) keeps it to seconds; the demo runs T = 5.
 */
class LoftqBeatsQloraTest {
    private static final Logger LOG = LoggerFactory.getLogger(LoftqBeatsQloraTest.class);

    private static DjlBackend backend;
    private static BertWeights weights;
    private static Experiment experiment;

    @BeforeAll
    static void setUp() throws Exception {
        backend = DjlBackend.cpu();
        weights = MiniLmModel.readWeights(ModelResource.classpath(MiniLmModel.ONNX_RESOURCE));
        List<String> heldOut = Sentences.bundled().heldOut();
        List<String> evaluation = new ArrayList<>(heldOut.subList(0, 16));
        evaluation.add(String.join(" ", heldOut)); // thousands of tokens: truncated to 512
        experiment = new Experiment(backend, weights, ModelResource.classpath(MiniLmModel.TOKENIZER_RESOURCE),
                evaluation, 1, 42L);
    }

    @AfterAll
    static void tearDown() {
        backend.close();
    }

    @Test
    void loftqBeatsQloraOnEmbeddingCosineAtNf2Rank16() throws Exception {
        VariantResult qlora = experiment.evaluate(new Variant(Format.NF2, 16, Initialization.QLORA), () -> { });
        VariantResult loftq = experiment.evaluate(new Variant(Format.NF2, 16, Initialization.LOFTQ_DEFAULT), () -> { });
        LOG.info("NF2 r16, 17 texts: QLoRA {}, LoftQ default T=1 {}", qlora, loftq);
        assertTrue(loftq.weightError() < qlora.weightError(), loftq + " vs " + qlora);
        // measured: QLoRA about 0.3, LoftQ T=5 about 0.73 (demo); a clear margin, not a coin toss
        assertTrue(loftq.cosine() > qlora.cosine() + 0.15, "cosine LoftQ " + loftq.cosine() + " vs QLoRA " + qlora.cosine());
        assertTrue(loftq.spearman() > qlora.spearman(), "Spearman LoftQ " + loftq.spearman() + " vs QLoRA " + qlora.spearman());
    }

    @Test
    void fp32EmbeddingsAgreeWithThemselvesAndTheLongTextIsTruncated() throws Exception {
        try (MiniLmModel fp32 = experiment.newModel()) {
            List<String> texts = experiment.evaluation();
            assertEquals(512, fp32.tokenize(texts.subList(16, 17))[0].length, "the long text is cut at 512 tokens");
            float[][] again = fp32.embed(texts);
            assertEquals(1.0, EmbeddingAgreement.meanCosine(experiment.reference(), again), 1e-6);
        }
    }

    @Test
    void emptyEvaluationIsAClearError() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Experiment(backend, weights,
                ModelResource.classpath(MiniLmModel.TOKENIZER_RESOURCE), List.of(), 1, 0L));
        assertTrue(e.getMessage().contains("evaluation") && e.getMessage().contains("got 0"), e.getMessage());
    }
}
