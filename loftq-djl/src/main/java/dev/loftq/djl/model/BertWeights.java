package dev.loftq.djl.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The weights of a BERT encoder exported to ONNX (HF {@code BertModel} through torch.onnx /
 * optimum), under their HF module names, mapped by walking the graph.
 *
 * <h2>How the 6·L Linear layers are found and named</h2>
 *
 * A Linear layer is exported as {@code MatMul(x, W)} with {@code W} a FLOAT rank-2 initializer of
 * shape [in, out], followed by {@code Add(b, ·)} with a rank-1 initializer of length out. Exporters
 * often name {@code W} anonymously ({@code onnx::MatMul_787}), so the name is derived from the
 * graph, in this order of preference:
 *
 * <ol>
 *   <li>the bias initializer's name minus {@code .bias}
 *       ({@code encoder.layer.0.attention.self.query.bias});
 *   <li>the MatMul node's scope ({@code /encoder/layer.0/attention/self/query/MatMul} →
 *       {@code encoder.layer.0.attention.self.query});
 *   <li>its position among the weight MatMuls in graph order: the k-th is layer k / 6, role
 *       k % 6 of query, key, value, attention.output.dense, intermediate.dense, output.dense.
 * </ol>
 *
 * When (1) and (2) are both present they must agree. The resolved names must be exactly the
 * expected set {@code encoder.layer.{i}.{role}} (each once), with shapes [H, H] for the four
 * attention projections, [I, H] for {@code intermediate.dense} and [H, I] for
 * {@code output.dense} (after transposing to [out, in]). LayerNorms are found the same way (the
 * {@code Mul} by a rank-1 gamma and the {@code Add} of a rank-1 beta that follows, or a fused
 * {@code LayerNormalization}); the three embedding tables from the {@code Gather} nodes that read
 * the graph inputs {@code input_ids} and {@code token_type_ids} (the remaining table Gather is
 * the position table). Anything missing, duplicated or of the wrong shape raises an
 * {@link ModelResourceException} naming the source, the node or initializer, and what was expected.
 *
 * <p>Linear weights are returned as [out, in] (torch / DJL Linear convention), row-major. All
 * arrays are owned by this object and handed out without copying: do not modify them.
 */
public final class BertWeights {
    /** Per-layer Linear roles, in the order a BERT layer computes them. */
    public static final List<String> LINEAR_ROLES =
            List.of(
                    "attention.self.query",
                    "attention.self.key",
                    "attention.self.value",
                    "attention.output.dense",
                    "intermediate.dense",
                    "output.dense");

    /** Per-layer LayerNorm roles, in graph order. */
    public static final List<String> LAYER_NORM_ROLES =
            List.of("attention.output.LayerNorm", "output.LayerNorm");

    /** The embeddings' LayerNorm module name. */
    public static final String EMBEDDINGS_LAYER_NORM = "embeddings.LayerNorm";

    /**
     * One Linear layer.
     *
     * @param module HF module name, e.g. {@code encoder.layer.0.attention.self.query}
     * @param onnxWeight the ONNX initializer the weight came from (maybe anonymous)
     * @param onnxNode the ONNX MatMul node's name
     * @param outFeatures rows of {@code weight}
     * @param inFeatures columns of {@code weight}
     * @param weight [out, in] row-major (transposed from ONNX's [in, out])
     * @param bias [out]
     */
    public record LinearWeights(
            String module,
            String onnxWeight,
            String onnxNode,
            int outFeatures,
            int inFeatures,
            float[] weight,
            float[] bias) {}

    /**
     * A LayerNorm's affine parameters.
     *
     * @param module HF module name, e.g. {@code encoder.layer.0.output.LayerNorm}
     * @param gamma [H] (HF {@code .weight})
     * @param beta [H] (HF {@code .bias})
     */
    public record LayerNormWeights(String module, float[] gamma, float[] beta) {}

    /**
     * An embedding table.
     *
     * @param module HF module name, e.g. {@code embeddings.word_embeddings}
     * @param rows table rows (vocabulary, positions or token types)
     * @param cols H
     * @param data [rows, cols] row-major
     */
    public record EmbeddingWeights(String module, int rows, int cols, float[] data) {}

    private final String source;
    private final BertConfig config;
    private final Map<String, LinearWeights> linears;
    private final Map<String, LayerNormWeights> layerNorms;
    private final EmbeddingWeights wordEmbeddings;
    private final EmbeddingWeights positionEmbeddings;
    private final EmbeddingWeights tokenTypeEmbeddings;

    private BertWeights(
            String source,
            BertConfig config,
            Map<String, LinearWeights> linears,
            Map<String, LayerNormWeights> layerNorms,
            EmbeddingWeights word,
            EmbeddingWeights position,
            EmbeddingWeights tokenType) {
        this.source = source;
        this.config = config;
        this.linears = Collections.unmodifiableMap(linears);
        this.layerNorms = Collections.unmodifiableMap(layerNorms);
        this.wordEmbeddings = word;
        this.positionEmbeddings = position;
        this.tokenTypeEmbeddings = tokenType;
    }

    /** Where the weights were read from. */
    public String source() {
        return source;
    }

    /** The encoder's shape. */
    public BertConfig config() {
        return config;
    }

    /** The 6·L Linear layers by HF module name, in layer order then {@link #LINEAR_ROLES} order. */
    public Map<String, LinearWeights> linears() {
        return linears;
    }

    /** The 2·L + 1 LayerNorms by HF module name: embeddings first, then layer order. */
    public Map<String, LayerNormWeights> layerNorms() {
        return layerNorms;
    }

    /** {@code embeddings.word_embeddings}: [vocab, H]. */
    public EmbeddingWeights wordEmbeddings() {
        return wordEmbeddings;
    }

    /** {@code embeddings.position_embeddings}: [maxPositions, H]. */
    public EmbeddingWeights positionEmbeddings() {
        return positionEmbeddings;
    }

    /** {@code embeddings.token_type_embeddings}: [typeVocab, H]. */
    public EmbeddingWeights tokenTypeEmbeddings() {
        return tokenTypeEmbeddings;
    }

    /** The Linear module names BERT with {@code numLayers} layers has, in canonical order. */
    public static List<String> expectedLinearNames(int numLayers) {
        List<String> names = new ArrayList<>(numLayers * LINEAR_ROLES.size());
        for (int i = 0; i < numLayers; i++) {
            for (String role : LINEAR_ROLES) {
                names.add(layerPrefix(i) + role);
            }
        }
        return names;
    }

    /** The LayerNorm module names, in canonical order. */
    public static List<String> expectedLayerNormNames(int numLayers) {
        List<String> names = new ArrayList<>();
        names.add(EMBEDDINGS_LAYER_NORM);
        for (int i = 0; i < numLayers; i++) {
            for (String role : LAYER_NORM_ROLES) {
                names.add(layerPrefix(i) + role);
            }
        }
        return names;
    }

    private static String layerPrefix(int layer) {
        return "encoder.layer." + layer + ".";
    }

    /**
     * Maps the graph's initializers to BERT modules.
     *
     * @param graph a parsed BERT encoder export; not modified
     * @param numHeads attention heads (not recorded in the weights)
     * @param layerNormEps LayerNorm epsilon, used unless the graph has fused LayerNormalization nodes
     *     that carry their own
     * @throws ModelResourceException if the graph is not a BERT encoder as described above
     */
    public static BertWeights fromOnnx(OnnxGraph graph, int numHeads, float layerNormEps)
            throws ModelResourceException {
        return new Mapper(graph).map(numHeads, layerNormEps);
    }

    /** The graph walk; one use. */
    private static final class Mapper {
        private final OnnxGraph g;
        private final String src;
        private final Map<String, List<OnnxNode>> consumers = new LinkedHashMap<>();

        Mapper(OnnxGraph g) {
            this.g = g;
            this.src = "ONNX model " + g.source();
            for (OnnxNode n : g.nodes()) {
                for (String in : n.inputs()) {
                    consumers.computeIfAbsent(in, k -> new ArrayList<>()).add(n);
                }
            }
        }

        BertWeights map(int numHeads, float eps) throws ModelResourceException {
            Map<String, EmbeddingWeights> tables = embeddings();
            EmbeddingWeights word = tables.get("embeddings.word_embeddings");
            EmbeddingWeights position = tables.get("embeddings.position_embeddings");
            EmbeddingWeights type = tables.get("embeddings.token_type_embeddings");
            int hidden = word.cols();

            Map<String, LinearWeights> linears = linears();
            int layers = linears.size() / LINEAR_ROLES.size();
            LinearWeights inter = linears.get(layerPrefix(0) + "intermediate.dense");
            int intermediate = inter.outFeatures();
            for (LinearWeights l : linears.values()) {
                String role = l.module().substring(l.module().indexOf('.', "encoder.layer.".length()) + 1);
                int out = role.equals("intermediate.dense") ? intermediate : hidden;
                int in = role.equals("output.dense") ? intermediate : hidden;
                if (l.outFeatures() != out || l.inFeatures() != in) {
                    throw new ModelResourceException(
                            src + ": MatMul weight " + l.onnxWeight() + " (" + l.module() + ") is [in "
                                    + l.inFeatures() + ", out " + l.outFeatures() + "], expected [in " + in
                                    + ", out " + out + "] for hidden size " + hidden);
                }
            }

            float[] epsHolder = {eps};
            Map<String, LayerNormWeights> norms = layerNorms(layers, hidden, epsHolder);
            for (EmbeddingWeights t : List.of(position, type)) {
                if (t.cols() != hidden) {
                    throw new ModelResourceException(
                            src + ": embedding table " + t.module() + " has width " + t.cols()
                                    + ", expected the hidden size " + hidden);
                }
            }
            BertConfig config;
            try {
                config = new BertConfig(
                        word.rows(), hidden, layers, numHeads, intermediate, position.rows(), type.rows(),
                        epsHolder[0]);
            } catch (IllegalArgumentException e) {
                throw new ModelResourceException(src + ": not a valid BERT shape: " + e.getMessage(), e);
            }
            return new BertWeights(g.source(), config, linears, norms, word, position, type);
        }

        private Map<String, EmbeddingWeights> embeddings() throws ModelResourceException {
            Map<String, EmbeddingWeights> tables = new LinkedHashMap<>();
            List<OnnxNode> other = new ArrayList<>();
            for (OnnxNode n : g.nodes()) {
                if (!n.opType().equals("Gather") || n.inputs().size() < 2) {
                    continue;
                }
                OnnxTensor t = floatInit(n.inputs().get(0), 2);
                if (t == null) {
                    continue;
                }
                String index = n.inputs().get(1);
                String module;
                if (index.equals("input_ids")) {
                    module = "embeddings.word_embeddings";
                } else if (index.equals("token_type_ids")) {
                    module = "embeddings.token_type_embeddings";
                } else {
                    other.add(n);
                    continue;
                }
                put(tables, module, n, t);
            }
            if (other.size() == 1) {
                OnnxNode n = other.get(0);
                put(tables, "embeddings.position_embeddings", n, floatInit(n.inputs().get(0), 2));
            }
            for (String m : List.of(
                    "embeddings.word_embeddings", "embeddings.position_embeddings", "embeddings.token_type_embeddings")) {
                if (!tables.containsKey(m)) {
                    throw new ModelResourceException(
                            src + ": no embedding table for " + m + " (expected a Gather of a FLOAT [rows, H]"
                                    + " initializer by input_ids, token_type_ids and one by the position ids; found "
                                    + "table Gathers by " + tables.keySet() + " and " + other.size() + " other)");
                }
            }
            return tables;
        }

        private void put(Map<String, EmbeddingWeights> tables, String module, OnnxNode n, OnnxTensor t)
                throws ModelResourceException {
            EmbeddingWeights w = new EmbeddingWeights(module, (int) t.dim(0), (int) t.dim(1), t.floats());
            if (tables.put(module, w) != null) {
                throw new ModelResourceException(
                        src + ": two Gather nodes read " + module + " (second: " + n.name()
                                + "; expected one)");
            }
        }

        private Map<String, LinearWeights> linears() throws ModelResourceException {
            List<LinearWeights> found = new ArrayList<>();
            for (OnnxNode n : g.nodes()) {
                if (!n.opType().equals("MatMul") || n.inputs().size() != 2) {
                    continue;
                }
                OnnxTensor w = floatInit(n.inputs().get(1), 2);
                if (w == null) {
                    continue; // activation × activation (attention scores)
                }
                int in = (int) w.dim(0);
                int out = (int) w.dim(1);
                OnnxNode add = null;
                OnnxTensor bias = null;
                for (OnnxNode c : consumers.getOrDefault(n.outputs().get(0), List.of())) {
                    if (!c.opType().equals("Add")) {
                        continue;
                    }
                    for (String ci : c.inputs()) {
                        OnnxTensor b = floatInit(ci, 1);
                        if (b != null && b.dim(0) == out) {
                            add = c;
                            bias = b;
                        }
                    }
                }
                if (bias == null) {
                    throw new ModelResourceException(
                            src + ": MatMul node " + n.name() + " (weight " + w.name() + ", [" + in + ", " + out
                                    + "]) is not followed by an Add of a FLOAT [" + out
                                    + "] bias initializer (expected a BERT Linear layer)");
                }
                int k = found.size();
                String structural = layerPrefix(k / LINEAR_ROLES.size()) + LINEAR_ROLES.get(k % LINEAR_ROLES.size());
                String name = resolve(
                        strip(bias.name(), ".bias"), scope(n.name()), structural, "MatMul node " + n.name()
                                + " (weight " + w.name() + ", bias " + bias.name() + ", Add " + add.name() + ")");
                found.add(new LinearWeights(name, w.name(), n.name(), out, in, transpose(w.floats(), in, out), bias.floats()));
            }
            if (found.isEmpty() || found.size() % LINEAR_ROLES.size() != 0) {
                throw new ModelResourceException(
                        src + ": found " + found.size() + " MatMul nodes with a weight initializer, expected "
                                + LINEAR_ROLES.size() + " per BERT layer (a positive multiple of "
                                + LINEAR_ROLES.size() + ")");
            }
            Map<String, LinearWeights> byName = new LinkedHashMap<>();
            for (LinearWeights l : found) {
                byName.put(l.module(), l);
            }
            return canonical(byName, expectedLinearNames(found.size() / LINEAR_ROLES.size()), "Linear");
        }

        private Map<String, LayerNormWeights> layerNorms(int layers, int hidden, float[] eps)
                throws ModelResourceException {
            List<LayerNormWeights> found = new ArrayList<>();
            List<String> expected = expectedLayerNormNames(layers);
            for (OnnxNode n : g.nodes()) {
                OnnxTensor gamma = null;
                OnnxTensor beta = null;
                String betaName = "";
                if (n.opType().equals("LayerNormalization") && n.inputs().size() >= 3) {
                    gamma = floatInit(n.inputs().get(1), 1);
                    beta = floatInit(n.inputs().get(2), 1);
                    Float e = n.floatAttributes().get("epsilon");
                    if (e != null) {
                        eps[0] = e;
                    }
                } else if (n.opType().equals("Mul")) {
                    for (String in : n.inputs()) {
                        OnnxTensor t = floatInit(in, 1);
                        if (t != null && t.dim(0) == hidden) {
                            gamma = t;
                        }
                    }
                    if (gamma != null) {
                        for (OnnxNode c : consumers.getOrDefault(n.outputs().get(0), List.of())) {
                            if (c.opType().equals("Add")) {
                                for (String in : c.inputs()) {
                                    OnnxTensor t = floatInit(in, 1);
                                    if (t != null && t.dim(0) == hidden) {
                                        beta = t;
                                        betaName = c.name();
                                    }
                                }
                            }
                        }
                    }
                }
                if (gamma == null) {
                    continue;
                }
                if (beta == null || gamma.dim(0) != hidden || beta.dim(0) != hidden) {
                    throw new ModelResourceException(
                            src + ": LayerNorm node " + n.name() + " (gamma " + gamma.name()
                                    + ") has no FLOAT [" + hidden + "] beta (expected a Mul by gamma followed by"
                                    + " an Add of beta, or LayerNormalization(x, gamma, beta))");
                }
                int k = found.size();
                String structural = k < expected.size() ? expected.get(k) : "(extra LayerNorm " + k + ")";
                String name = resolve(
                        strip(gamma.name(), ".weight"), scope(n.name()), structural,
                        "LayerNorm node " + n.name() + " (gamma " + gamma.name() + ", beta " + beta.name()
                                + (betaName.isEmpty() ? "" : ", Add " + betaName) + ")");
                found.add(new LayerNormWeights(name, gamma.floats(), beta.floats()));
            }
            Map<String, LayerNormWeights> byName = new LinkedHashMap<>();
            for (LayerNormWeights l : found) {
                if (byName.put(l.module(), l) != null) {
                    throw new ModelResourceException(src + ": LayerNorm " + l.module() + " found twice (expected once)");
                }
            }
            return canonical(byName, expected, "LayerNorm");
        }

        /** Checks that {@code byName} holds exactly {@code expected}, and orders it so. */
        private <T> Map<String, T> canonical(Map<String, T> byName, List<String> expected, String what)
                throws ModelResourceException {
            Set<String> missing = new HashSet<>(expected);
            missing.removeAll(byName.keySet());
            Set<String> extra = new HashSet<>(byName.keySet());
            expected.forEach(extra::remove);
            if (!missing.isEmpty() || !extra.isEmpty() || byName.size() != expected.size()) {
                throw new ModelResourceException(
                        src + ": the " + what + " modules found do not form a BERT encoder of "
                                + expected.size() + " " + what + "s: missing " + new java.util.TreeSet<>(missing)
                                + ", unexpected " + new java.util.TreeSet<>(extra));
            }
            Map<String, T> ordered = new LinkedHashMap<>();
            for (String name : expected) {
                ordered.put(name, byName.get(name));
            }
            return ordered;
        }

        /**
         * Picks the module name: the initializer-derived name, else the node-scope name, else the
         * structural one; initializer and scope names must agree when both exist.
         */
        private String resolve(String fromInit, String fromScope, String structural, String what)
                throws ModelResourceException {
            if (fromInit != null && fromScope != null && !fromInit.equals(fromScope)) {
                throw new ModelResourceException(
                        src + ": " + what + " is named " + fromInit + " by its initializer but sits in scope "
                                + fromScope + " (expected the two to agree)");
            }
            if (fromInit != null) {
                return fromInit;
            }
            return fromScope != null ? fromScope : structural;
        }

        /** A FLOAT initializer of the given rank, or null if {@code name} is not one. */
        private OnnxTensor floatInit(String name, int rank) {
            OnnxTensor t = g.initializers().get(name);
            return t != null && t.dataType() == OnnxTensor.FLOAT && t.rank() == rank ? t : null;
        }
    }

    /** {@code prefix.suffix} → {@code prefix} if it looks like a module path, else null. */
    static String strip(String initializerName, String suffix) {
        if (!initializerName.endsWith(suffix)) {
            return null;
        }
        String base = initializerName.substring(0, initializerName.length() - suffix.length());
        return isModulePath(base) ? base : null;
    }

    /**
     * The module scope of a node named like {@code /encoder/layer.0/attention/self/query/MatMul}
     * ({@code encoder.layer.0.attention.self.query}), or null for names without one.
     */
    static String scope(String nodeName) {
        if (!nodeName.startsWith("/")) {
            return null;
        }
        int last = nodeName.lastIndexOf('/');
        if (last <= 0) {
            return null;
        }
        String base = nodeName.substring(1, last).replace('/', '.');
        return isModulePath(base) ? base : null;
    }

    private static boolean isModulePath(String s) {
        if (s.isEmpty() || s.startsWith(".") || s.endsWith(".") || s.contains("..")) {
            return false;
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (!(Character.isLetterOrDigit(c) || c == '_' || c == '.')) {
                return false;
            }
        }
        return true;
    }

    /** [rows, cols] → [cols, rows], row-major. */
    static float[] transpose(float[] a, int rows, int cols) {
        float[] t = new float[a.length];
        for (int r = 0; r < rows; r++) {
            int base = r * cols;
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = a[base + c];
            }
        }
        return t;
    }
}
