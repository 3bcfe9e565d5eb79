package dev.loftq.djl.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.BaseNDManager;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.Initializer;
import ai.djl.util.PairList;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The DJL block tree (paths, swapping), the input checks, resources and native lifetimes. */
class MiniLmModelTest {
    private static final List<String> TWO = List.of("The cat slept on the warm windowsill.", "Rain is expected tomorrow morning.");
    private static MiniLmModel model;

    @BeforeAll
    static void load() throws Exception {
        model = MiniLmFixtures.model();
    }

    @AfterAll
    static void close() {
        if (model != null) {
            model.close();
        }
    }

    @Test
    void everyLinearSitsAtItsHfPath() {
        Map<String, Block> paths = BlockPaths.byPath(model.block());
        List<String> linears = new ArrayList<>();
        paths.forEach((p, b) -> {
            if (b instanceof Linear) {
                linears.add(p);
            }
        });
        assertEquals(BertWeights.expectedLinearNames(6), linears);
        for (String p : List.of("embeddings.word_embeddings", "embeddings.position_embeddings",
                "embeddings.token_type_embeddings", "embeddings.LayerNorm", "encoder.layer.5.attention.output.LayerNorm",
                "encoder.layer.5.output.LayerNorm")) {
            assertTrue(paths.containsKey(p), p);
        }
        assertEquals(List.of("encoder.layer.0.attention.self.query", "encoder.layer.1.attention.self.query",
                "encoder.layer.2.attention.self.query", "encoder.layer.3.attention.self.query",
                "encoder.layer.4.attention.self.query", "encoder.layer.5.attention.self.query"),
                List.copyOf(BlockPaths.matching(model.block(), "encoder.layer.*.attention.self.query").keySet()));
    }

    @Test
    void linearParametersHoldTheOnnxWeights() {
        Map<String, Block> paths = BlockPaths.byPath(model.block());
        for (String name : List.of("encoder.layer.0.attention.self.key", "encoder.layer.2.intermediate.dense", "encoder.layer.5.output.dense")) {
            BertWeights.LinearWeights w = MiniLmFixtures.weights().linears().get(name);
            Linear l = (Linear) paths.get(name);
            var weight = l.getParameters().get("weight").getArray();
            assertEquals(new Shape(w.outFeatures(), w.inFeatures()), weight.getShape(), name);
            assertArrayEquals(w.weight(), weight.toFloatArray(), name);
            assertArrayEquals(w.bias(), l.getParameters().get("bias").getArray().toFloatArray(), name);
        }
    }

    /** Delegates to the Linear it replaced and counts calls: what a LoRA wrapper looks like to the tree. */
    private static final class Counting extends AbstractBlock {
        final Block inner;
        int calls;

        Counting(Block inner) {
            this.inner = inner;
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
            calls++;
            return inner.forward(ps, inputs, training, params);
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            return inner.getOutputShapes(inputShapes);
        }
    }

    @Test
    void replacedLinearIsWhatForwardCalls() {
        String path = "encoder.layer.3.attention.self.value";
        float[][] before = model.embed(TWO);
        Block original = BlockPaths.byPath(model.block()).get(path);
        Counting counting = new Counting(original);
        assertSame(original, BlockPaths.replace(model.block(), path, counting));
        try {
            assertSame(counting, BlockPaths.byPath(model.block()).get(path));
            float[][] same = model.embed(TWO);
            assertEquals(1, counting.calls, "one batch, one call");
            assertArrayEquals(before[0], same[0], 1e-6f);

            // a fresh Linear in the slot: initialized with the slot's shape when the tree is, and used
            Linear zero = Linear.builder().setUnits(384).optBias(true).build();
            zero.setInitializer(Initializer.ZEROS, p -> true);
            BlockPaths.replace(model.block(), path, zero);
            assertFalse(zero.isInitialized());
            model.block().initialize(model.manager(), DataType.FLOAT32, new Shape(1, 1), new Shape(1, 1), new Shape(1, 1));
            assertEquals(new Shape(384, 384), zero.getParameters().get("weight").getArray().getShape());
            float[][] changed = model.embed(TWO);
            assertTrue(MiniLmFixtures.cosine(before[0], changed[0]) < 0.999, "zeroed value projection must change the output");
        } finally {
            BlockPaths.replace(model.block(), path, original);
        }
        assertArrayEquals(before[1], model.embed(TWO)[1], 1e-6f);
    }

    @Test
    void replacingByBadPathsIsRejected() {
        Block b = model.block();
        assertThrows(IllegalArgumentException.class, () -> BlockPaths.replace(b, "", b));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> BlockPaths.replace(b, "encoder.layer.9.attention.self.query", b));
        assertTrue(e.getMessage().contains("encoder.layer.9.attention.self"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> BlockPaths.replace(b, "encoder.layer.0.attention.self.qkv", b));
        assertTrue(e.getMessage().contains("qkv") && e.getMessage().contains("[query, key, value]"), e.getMessage());
        Block query = BlockPaths.byPath(b).get("encoder.layer.0.attention.self.query");
        e = assertThrows(IllegalArgumentException.class,
                () -> BlockPaths.replace(b, "encoder.layer.0.attention.self.query.weight", query));
        assertTrue(e.getMessage().contains("Linear"), e.getMessage());
    }

    @Test
    void geluIsTheExactErfForm() {
        try (var scope = model.manager().newSubManager()) {
            float[] x = {-3f, -1f, -0.5f, 0f, 0.5f, 1f, 2f, 4f};
            float[] y = BertModelBlock.geluErf(scope.create(x)).toFloatArray();
            for (int i = 0; i < x.length; i++) {
                double exact = 0.5 * x[i] * (1 + erf(x[i] / Math.sqrt(2)));
                assertEquals(exact, y[i], 2e-6, "gelu(" + x[i] + ")"); // tanh form is off by up to 2e-4 here
            }
        }
    }

    /** erf by its Maclaurin series; |x| ≤ 3 here, where 60 terms are exact to double rounding. */
    private static double erf(double x) {
        double sum = 0;
        double term = x;
        for (int n = 0; n < 60; n++) {
            sum += term / (2 * n + 1);
            term *= -x * x / (n + 1);
        }
        return 2 / Math.sqrt(Math.PI) * sum;
    }

    @Test
    void emptyOrBlankInputIsAClearError() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> model.embed(List.of()));
        assertEquals("texts must be a non-empty list, got an empty list", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> model.embed(null));
        e = assertThrows(IllegalArgumentException.class, () -> model.embed(List.of("fine", "")));
        assertEquals("texts[1] must be non-blank text, got \"\"", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> model.embed(List.of(" \t ")));
        e = assertThrows(IllegalArgumentException.class, () -> model.embed(Arrays.asList("fine", null)));
        assertEquals("texts[1] must be non-blank text, got null", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> model.tokenize(List.of("")));
    }

    @Test
    void badTokenIdsAreAClearError() {
        assertThrows(IllegalArgumentException.class, () -> model.embedTokens(List.of()));
        assertThrows(IllegalArgumentException.class, () -> model.embedTokens(List.of(new long[0])));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> model.embedTokens(List.of(new long[513])));
        assertEquals("ids[0] length must be in [1, 512], got 513", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> model.embedTokens(List.of(new long[] {101, 30522, 102})));
        assertEquals("ids[0][1] must be in [0, 30521], got 30522", e.getMessage());
        float[][] ok = model.embedTokens(List.of(model.tokenize(TWO)[0]));
        assertArrayEquals(model.embed(TWO.subList(0, 1))[0], ok[0], 1e-6f);
    }

    @Test
    void callsLeaveNoNativeArraysBehind() {
        BaseNDManager m = (BaseNDManager) model.manager();
        model.embed(TWO);
        int before = m.getManagedArrays().size();
        for (int i = 0; i < 2; i++) {
            model.embed(MiniLmFixtures.sentences().subList(0, 10));
        }
        assertEquals(before, m.getManagedArrays().size());
    }

    @Test
    void maxTokensOptionTruncatesShorter() throws Exception {
        try (MiniLmModel small = MiniLmModel.builder().setWeights(MiniLmFixtures.weights())
                .setTokenizer(MiniLmFixtures.tokenizer()).optMaxTokens(8).optBatchSize(1).build()) {
            long[] ids = small.tokenize(List.of("The hiking trail winds through pine forests before climbing to a rocky ridge."))[0];
            assertEquals(8, ids.length);
            assertEquals(102, ids[7]);
            assertEquals(8, small.maxTokens());
            assertEquals(3, small.embed(MiniLmFixtures.sentences().subList(0, 3)).length);
        }
    }

    @Test
    void builderOptionsAreValidated() {
        assertThrows(IllegalArgumentException.class, () -> MiniLmModel.builder().setTokenizer(MiniLmFixtures.tokenizer()).build());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MiniLmModel.builder()
                .setWeights(MiniLmFixtures.weights()).setTokenizer(MiniLmFixtures.tokenizer()).optMaxTokens(513).build());
        assertEquals("maxTokens must be in [2, 512], got 513", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> MiniLmModel.builder()
                .setWeights(MiniLmFixtures.weights()).setTokenizer(MiniLmFixtures.tokenizer()).optBatchSize(0).build());
        assertEquals("batchSize must be in [1, 65536], got 0", e.getMessage());
    }

    @Test
    void missingOrCorruptResourcesAreNamed() throws Exception {
        ModelResourceException e = assertThrows(ModelResourceException.class, () -> MiniLmModel.builder()
                .setModel(ModelResource.classpath("absent/all-minilm-l6-v2.onnx")).setTokenizer(MiniLmFixtures.tokenizer()).build());
        assertTrue(e.getMessage().contains("absent/all-minilm-l6-v2.onnx"), e.getMessage());

        e = assertThrows(ModelResourceException.class, () -> MiniLmModel.builder().setWeights(MiniLmFixtures.weights())
                .setTokenizer(ModelResource.classpath("absent/tokenizer.json")).build());
        assertTrue(e.getMessage().contains("absent/tokenizer.json"), e.getMessage());

        byte[] corrupt = "{\"version\": \"1.0\", \"model\": ".getBytes(StandardCharsets.UTF_8);
        e = assertThrows(ModelResourceException.class, () -> MiniLmModel.builder().setWeights(MiniLmFixtures.weights())
                .setTokenizer(ModelResource.of("cut-tokenizer.json", () -> new ByteArrayInputStream(corrupt))).build());
        assertTrue(e.getMessage().contains("cut-tokenizer.json") && e.getMessage().contains("tokenizer.json"), e.getMessage());

        byte[] head;
        try (InputStream in = MiniLmFixtures.onnx().open()) {
            head = in.readNBytes(3 << 20);
        }
        e = assertThrows(ModelResourceException.class, () -> MiniLmModel.builder()
                .setModel(ModelResource.of("cut.onnx", () -> new ByteArrayInputStream(head)))
                .setTokenizer(MiniLmFixtures.tokenizer()).build());
        assertTrue(e.getMessage().contains("cut.onnx") && e.getMessage().contains("truncated"), e.getMessage());
    }

    @Test
    void closeIsIdempotent() throws Exception {
        MiniLmModel m = MiniLmFixtures.model();
        m.close();
        m.close();
        assertInstanceOf(BertModelBlock.class, m.block());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> m.embed(TWO));
        assertEquals("this MiniLmModel is closed", e.getMessage());
    }
}
