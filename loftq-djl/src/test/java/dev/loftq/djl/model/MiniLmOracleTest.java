package dev.loftq.djl.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The fp32 DJL model against ONNX Runtime running the same .onnx, on real sentences. */
class MiniLmOracleTest {
    private static final Logger LOG = LoggerFactory.getLogger(MiniLmOracleTest.class);
    /** The acceptance bar. */
    private static final double MIN_COSINE = 0.9999;
    /**
     * What float32 rounding allows (measured: 1 − cos ≈ 1e-12). Tighter than the bar on
     * purpose: a tanh-approximate GELU already reaches cos ≈ 0.999998 and must fail here.
     */
    private static final double MAX_ONE_MINUS_COSINE = 1e-8;

    private static MiniLmModel model;
    private static OrtOracle oracle;

    @BeforeAll
    static void load() throws Exception {
        model = MiniLmModel.fromClasspath(); // the path a user takes: artifact on the classpath
        oracle = new OrtOracle(MiniLmFixtures.onnx());
    }

    @AfterAll
    static void close() throws Exception {
        if (model != null) {
            model.close();
        }
        if (oracle != null) {
            oracle.close();
        }
    }

    @Test
    void onnxExportTakesTheInputsTheOracleFeeds() {
        assertEquals(Set.of("input_ids", "attention_mask", "token_type_ids"), oracle.inputNames());
    }

    @Test
    void sentenceEmbeddingsMatchOnnxRuntime() throws Exception {
        List<String> sentences = MiniLmFixtures.sentences();
        assertTrue(sentences.size() >= 50, "need at least 50 sentences, have " + sentences.size());
        long t0 = System.nanoTime();
        float[][] djl = model.embed(sentences); // batched: padding and masking exercised
        long t1 = System.nanoTime();
        long[][] ids = model.tokenize(sentences);
        double min = 1;
        double sum = 0;
        int worst = -1;
        for (int i = 0; i < sentences.size(); i++) {
            float[] ref = oracle.embed(ids[i]);
            assertEquals(384, djl[i].length);
            double cos = MiniLmFixtures.cosine(djl[i], ref);
            sum += cos;
            if (cos < min) {
                min = cos;
                worst = i;
            }
        }
        long t2 = System.nanoTime();
        LOG.info("{} sentences: cosine DJL vs ONNX Runtime min {} (sentence {}), mean {}; DJL {} ms, ORT {} ms",
                sentences.size(), min, worst, sum / sentences.size(), (t1 - t0) / 1_000_000, (t2 - t1) / 1_000_000);
        assertTrue(min >= MIN_COSINE,
                "sentence " + worst + " \"" + (worst < 0 ? "" : sentences.get(worst)) + "\": cosine " + min + " < " + MIN_COSINE);
        assertTrue(1 - min <= MAX_ONE_MINUS_COSINE,
                "sentence " + worst + ": 1 - cosine = " + (1 - min) + " > " + MAX_ONE_MINUS_COSINE + ": not float32 rounding");
    }

    @Test
    void unitLengthAndBatchingDoesNotChangeResults() {
        List<String> sentences = MiniLmFixtures.sentences().subList(0, 4);
        float[][] batched = model.embed(sentences);
        for (int i = 0; i < sentences.size(); i++) {
            float[] alone = model.embed(List.of(sentences.get(i)))[0];
            double norm = Math.sqrt(dot(alone, alone));
            assertEquals(1.0, norm, 1e-5, "sentence " + i + " embedding norm");
            assertTrue(MiniLmFixtures.cosine(alone, batched[i]) >= 0.99999,
                    "sentence " + i + ": padded batch differs from the sentence alone");
        }
    }

    @Test
    void textsLongerThan512TokensAreTruncatedAndStillMatch() throws Exception {
        String paragraph = MiniLmFixtures.sentences().get(MiniLmFixtures.sentences().size() - 1);
        List<String> parts = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            parts.add(paragraph);
        }
        String longText = String.join(" ", parts);
        long[] ids = model.tokenize(List.of(longText))[0];
        assertEquals(512, ids.length, "truncated to the model's 512 positions");
        assertEquals(101, ids[0], "[CLS] first");
        assertEquals(102, ids[511], "[SEP] kept last after truncation");
        float[] djl = model.embed(List.of(longText))[0];
        double cos = MiniLmFixtures.cosine(djl, oracle.embed(ids));
        assertTrue(cos >= MIN_COSINE, "512-token text: cosine " + cos);
        // the text beyond the cut does not matter
        assertArrayEquals(ids, model.tokenize(List.of(longText + " " + paragraph))[0]);
    }

    private static double dot(float[] a, float[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += (double) a[i] * b[i];
        }
        return s;
    }
}
