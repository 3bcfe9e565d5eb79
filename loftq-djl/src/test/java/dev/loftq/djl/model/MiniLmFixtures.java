package dev.loftq.djl.model;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** Shared real data for the model tests: the artifact's ONNX graph and weights, and the sentences. */
final class MiniLmFixtures {
    private static OnnxGraph graph;
    private static BertWeights weights;

    private MiniLmFixtures() {}

    /** The ONNX resource of the langchain4j artifact. */
    static ModelResource onnx() {
        return ModelResource.classpath(MiniLmModel.ONNX_RESOURCE);
    }

    /** The tokenizer resource of the langchain4j artifact. */
    static ModelResource tokenizer() {
        return ModelResource.classpath(MiniLmModel.TOKENIZER_RESOURCE);
    }

    /** The parsed graph, read once per JVM. */
    static synchronized OnnxGraph graph() {
        if (graph == null) {
            try {
                graph = OnnxReader.read(onnx());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return graph;
    }

    /** The mapped weights, once per JVM. */
    static synchronized BertWeights weights() {
        if (weights == null) {
            try {
                weights = BertWeights.fromOnnx(graph(), BertConfig.MINILM_HEADS, BertConfig.BERT_LAYER_NORM_EPS);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return weights;
    }

    /** A model on the CPU from the shared weights; the caller closes it. */
    static MiniLmModel model() throws IOException {
        return MiniLmModel.builder().setWeights(weights()).setTokenizer(tokenizer()).build();
    }

    /** The test sentences (sentences.txt, comments and blank lines dropped). */
    static List<String> sentences() {
        List<String> out = new ArrayList<>();
        try (InputStream in = MiniLmFixtures.class.getClassLoader().getResourceAsStream("sentences.txt")) {
            if (in == null) {
                throw new IllegalStateException("test resource sentences.txt is missing");
            }
            BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
            String line;
            while ((line = r.readLine()) != null) {
                if (!line.isBlank() && !line.startsWith("#")) {
                    out.add(line.strip());
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out;
    }

    /** cos(a, b) in double. */
    static double cosine(float[] a, float[] b) {
        double dot = 0;
        double na = 0;
        double nb = 0;
        for (int i = 0; i < a.length; i++) {
            dot += (double) a[i] * b[i];
            na += (double) a[i] * a[i];
            nb += (double) b[i] * b[i];
        }
        return dot / Math.sqrt(na * nb);
    }
}
