package dev.loftq.djl.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

/** The graph walk that names the ONNX weights: on the real export and on altered copies of it. */
class BertWeightsTest {

    @Test
    void configIsReadOffTheWeights() {
        BertConfig c = MiniLmFixtures.weights().config();
        assertEquals(new BertConfig(30522, 384, 6, 12, 1536, 512, 2, 1e-12f), c);
        assertEquals(32, c.headSize());
    }

    @Test
    void all36LinearsAreFoundWithBertNamesAndShapes() {
        BertWeights w = MiniLmFixtures.weights();
        assertEquals(BertWeights.expectedLinearNames(6), new ArrayList<>(w.linears().keySet()));
        assertEquals(36, new HashSet<>(w.linears().keySet()).size());
        for (BertWeights.LinearWeights l : w.linears().values()) {
            int out = l.module().endsWith("intermediate.dense") ? 1536 : 384;
            int in = l.module().endsWith(".output.dense") && !l.module().contains("attention") ? 1536 : 384;
            assertEquals(out, l.outFeatures(), l.module());
            assertEquals(in, l.inFeatures(), l.module());
            assertEquals(out * in, l.weight().length, l.module());
            assertEquals(out, l.bias().length, l.module());
            assertTrue(l.onnxNode().startsWith("/" + l.module().replace('.', '/').replace("layer/", "layer.")), l.onnxNode());
        }
    }

    @Test
    void everyWeightMatMulIsAccountedForExactlyOnce() {
        OnnxGraph g = MiniLmFixtures.graph();
        Set<String> matMulWeights = new HashSet<>();
        int activationMatMuls = 0;
        for (OnnxNode n : g.nodes()) {
            if (n.opType().equals("MatMul")) {
                if (g.initializers().containsKey(n.inputs().get(1))) {
                    assertTrue(matMulWeights.add(n.inputs().get(1)), "weight used by two MatMuls: " + n.inputs().get(1));
                } else {
                    activationMatMuls++;
                }
            }
        }
        assertEquals(36, matMulWeights.size());
        assertEquals(12, activationMatMuls, "QKᵀ and PV per layer");
        Set<String> mapped = new HashSet<>();
        for (BertWeights.LinearWeights l : MiniLmFixtures.weights().linears().values()) {
            mapped.add(l.onnxWeight());
        }
        assertEquals(matMulWeights, mapped);
    }

    @Test
    void weightsAreTransposedToOutIn() {
        OnnxGraph g = MiniLmFixtures.graph();
        for (BertWeights.LinearWeights l : MiniLmFixtures.weights().linears().values()) {
            OnnxTensor t = g.initializers().get(l.onnxWeight());
            assertEquals(l.inFeatures(), t.dim(0));
            assertEquals(l.outFeatures(), t.dim(1));
            float[] onnx = t.floats(); // [in, out]
            for (int[] ij : new int[][] {{0, 0}, {1, 0}, {0, 1}, {l.inFeatures() - 1, l.outFeatures() - 2}, {7, 5}}) {
                int i = ij[0];
                int j = ij[1];
                assertEquals(onnx[i * l.outFeatures() + j], l.weight()[j * l.inFeatures() + i], l.module() + " [" + j + ", " + i + "]");
            }
            assertArrayEquals(g.initializers().get(l.module() + ".bias").floats(), l.bias(), l.module());
        }
    }

    @Test
    void layerNormsAndEmbeddingsAreNamed() {
        BertWeights w = MiniLmFixtures.weights();
        OnnxGraph g = MiniLmFixtures.graph();
        assertEquals(BertWeights.expectedLayerNormNames(6), new ArrayList<>(w.layerNorms().keySet()));
        for (BertWeights.LayerNormWeights n : w.layerNorms().values()) {
            assertArrayEquals(g.initializers().get(n.module() + ".weight").floats(), n.gamma(), n.module());
            assertArrayEquals(g.initializers().get(n.module() + ".bias").floats(), n.beta(), n.module());
        }
        for (BertWeights.EmbeddingWeights e : List.of(w.wordEmbeddings(), w.positionEmbeddings(), w.tokenTypeEmbeddings())) {
            OnnxTensor t = g.initializers().get(e.module() + ".weight");
            assertEquals(t.dim(0), e.rows(), e.module());
            assertArrayEquals(t.floats(), e.data(), e.module());
        }
    }

    @Test
    void anonymousExportIsMappedByGraphStructure() throws Exception {
        // every initializer but the embedding tables renamed, every node name blanked
        OnnxGraph g = MiniLmFixtures.graph();
        Map<String, String> renames = new HashMap<>();
        int k = 0;
        for (String name : g.initializers().keySet()) {
            if (!name.startsWith("embeddings.") || name.contains("LayerNorm")) {
                renames.put(name, "onnx::Anon_" + k++);
            }
        }
        OnnxGraph anon = rewrite(g, renames, n -> "");
        BertWeights a = BertWeights.fromOnnx(anon, 12, 1e-12f);
        BertWeights w = MiniLmFixtures.weights();
        assertEquals(w.linears().keySet(), a.linears().keySet());
        for (String name : w.linears().keySet()) {
            assertArrayEquals(w.linears().get(name).weight(), a.linears().get(name).weight(), name);
            assertArrayEquals(w.linears().get(name).bias(), a.linears().get(name).bias(), name);
        }
        for (String name : w.layerNorms().keySet()) {
            assertArrayEquals(w.layerNorms().get(name).gamma(), a.layerNorms().get(name).gamma(), name);
        }
    }

    @Test
    void biasNameDisagreeingWithNodeScopeIsRejected() {
        OnnxGraph g = MiniLmFixtures.graph();
        String q = "encoder.layer.0.attention.self.query.bias";
        String key = "encoder.layer.0.attention.self.key.bias";
        OnnxGraph swapped = rewrite(g, Map.of(q, key, key, q), n -> n);
        ModelResourceException e = assertThrows(ModelResourceException.class, () -> BertWeights.fromOnnx(swapped, 12, 1e-12f));
        assertTrue(e.getMessage().contains(key) && e.getMessage().contains("encoder.layer.0.attention.self.query"), e.getMessage());
        assertTrue(e.getMessage().contains(g.source()), e.getMessage());
    }

    @Test
    void missingMatMulIsReported() {
        OnnxGraph g = MiniLmFixtures.graph();
        List<OnnxNode> nodes = new ArrayList<>(g.nodes());
        assertTrue(nodes.removeIf(n -> n.name().equals("/encoder/layer.3/intermediate/dense/MatMul")));
        OnnxGraph cut = new OnnxGraph(g.source(), nodes, g.initializers(), g.inputs(), g.outputs());
        ModelResourceException e = assertThrows(ModelResourceException.class, () -> BertWeights.fromOnnx(cut, 12, 1e-12f));
        assertTrue(e.getMessage().contains("found 35 MatMul"), e.getMessage());
    }

    @Test
    void linearWithoutBiasIsReported() {
        OnnxGraph g = MiniLmFixtures.graph();
        Map<String, OnnxTensor> inits = new LinkedHashMap<>(g.initializers());
        inits.remove("encoder.layer.1.attention.self.value.bias");
        OnnxGraph cut = new OnnxGraph(g.source(), g.nodes(), inits, g.inputs(), g.outputs());
        ModelResourceException e = assertThrows(ModelResourceException.class, () -> BertWeights.fromOnnx(cut, 12, 1e-12f));
        assertTrue(e.getMessage().contains("/encoder/layer.1/attention/self/value/MatMul")
                && e.getMessage().contains("bias"), e.getMessage());
    }

    @Test
    void headsMustDivideHiddenSize() {
        ModelResourceException e = assertThrows(ModelResourceException.class,
                () -> BertWeights.fromOnnx(MiniLmFixtures.graph(), 5, 1e-12f));
        assertTrue(e.getMessage().contains("numHeads must divide hiddenSize 384, got 5"), e.getMessage());
    }

    @Test
    void scopeAndStripParseModulePaths() {
        assertEquals("encoder.layer.0.attention.self.query", BertWeights.scope("/encoder/layer.0/attention/self/query/MatMul"));
        assertEquals(null, BertWeights.scope("MatMul_12"));
        assertEquals(null, BertWeights.strip("onnx::MatMul_787", ".bias"));
        assertEquals("a.b", BertWeights.strip("a.b.bias", ".bias"));
        assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, BertWeights.transpose(new float[] {1, 2, 3, 4, 5, 6}, 2, 3));
    }

    /** A copy of {@code g} with initializers renamed (and their uses) and node names rewritten. */
    private static OnnxGraph rewrite(OnnxGraph g, Map<String, String> renames, UnaryOperator<String> nodeName) {
        Map<String, OnnxTensor> inits = new LinkedHashMap<>();
        g.initializers().forEach((name, t) -> {
            String n = renames.getOrDefault(name, name);
            inits.put(n, t.withName(n));
        });
        List<OnnxNode> nodes = new ArrayList<>();
        for (OnnxNode n : g.nodes()) {
            List<String> ins = new ArrayList<>();
            for (String in : n.inputs()) {
                ins.add(renames.getOrDefault(in, in));
            }
            nodes.add(new OnnxNode(nodeName.apply(n.name()), n.opType(), ins, n.outputs(), n.floatAttributes(), n.intAttributes()));
        }
        OnnxGraph out = new OnnxGraph(g.source(), nodes, inits, g.inputs(), g.outputs());
        assertSame(g.source(), out.source());
        return out;
    }
}
