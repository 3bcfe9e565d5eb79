package dev.loftq.djl.wrap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.block.QuantizedLoraLinear;
import dev.loftq.djl.model.BlockPaths;
import dev.loftq.quant.loftq.LoftqPolicy;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class LoraWrapperTest {
    private static DjlBackend backend;
    private static NDManager manager;

    @BeforeAll
    static void start() {
        backend = DjlBackend.cpu();
        manager = NDManager.newBaseManager();
    }

    @AfterAll
    static void stop() {
        manager.close();
        backend.close();
    }

    private static LoraWrapper.Builder nf4(LayerSelector targets, int rank) {
        return LoraWrapper.builder(backend).setTargets(targets)
                .setSpec(CodebookQuantizer.bitsandbytesNf4(), rank, rank)
                .optInitializer(LoraInitializer.loftq(2, 7L));
    }

    private static double relative(NDArray a, NDArray b) {
        return a.sub(b).norm().getFloat() / b.norm().getFloat();
    }

    /**
     * Wraps, checks that the wrapped paths now hold QuantizedLoraLinear, closes the replaced
     * Linears' weights (so forward fails if anything still calls them) and compares the outputs
     * with the fp32 ones: LoftQ with NF4 on these random (Xavier) weights keeps them within 25 %.
     */
    private static LoraModel wrapAndCheck(Block root, LoraWrapper wrapper, NDManager m, NDArray x,
            int expectedLayers) {
        NDArray before = TestTrees.run(root, m, x);
        Map<String, Block> tree = BlockPaths.byPath(root);
        LoraModel lora = wrapper.wrap(root);
        assertEquals(expectedLayers, lora.layers().size(), lora.report());
        Map<String, Block> after = BlockPaths.byPath(root);
        for (WrappedLayer l : lora.layers()) {
            assertSame(l.block(), after.get(l.path()), l.path());
            Block old = tree.get(l.path());
            assertTrue(old instanceof Linear && !(old instanceof QuantizedLoraLinear), l.path());
            old.getParameters().get("weight").getArray().close();
            assertTrue(l.initialError() > 0 && l.initialError() < 0.1, l.toString());
            assertEquals(4, l.bits());
        }
        NDArray wrapped = TestTrees.run(root, m, x);
        double err = relative(wrapped, before);
        assertTrue(err > 0 && err < 0.25, "relative output change " + err);
        return lora;
    }

    @Test
    void wrapsSequentialAndParallelTrees() {
        try (NDManager m = manager.newSubManager()) {
            Block net = TestTrees.sequentialParallel(m);
            NDArray x = m.create(TestTrees.gaussian(1, 6 * 16, 1f), new Shape(6, 16));
            try (LoraModel lora = wrapAndCheck(net, nf4(LayerSelector.allLinear(), 4).build(), m, x, 4)) {
                assertEquals(List.of("0", "2.0", "2.1", "3"), lora.paths());
                assertEquals(4 * (16 + 64) + 2 * 4 * (64 + 32) + 4 * (64 + 8),
                        lora.trainableParameterCount());
                // only LoRA factors remain trainable in the whole tree
                for (Parameter p : net.getParameters().values()) {
                    assertEquals(p.getName().startsWith("lora_"), p.requiresGradient(), p.getName());
                }
            }
        }
    }

    @Test
    void wrapsACustomBlockThatCallsLinearFieldsInForward() {
        try (NDManager m = manager.newSubManager()) {
            TestTrees.FieldAttention att = TestTrees.fieldAttention(m, 64);
            NDArray x = m.create(TestTrees.gaussian(2, 2 * 4 * 64, 1f), new Shape(2, 4, 64));
            try (LoraModel lora = wrapAndCheck(att,
                    nf4(LayerSelector.glob("query", "value"), 8).build(), m, x, 2)) {
                assertEquals(List.of("query", "value"), lora.paths());
            }
        }
    }

    @Test
    void wrapsDjlTransformerEncoderBlock() {
        try (NDManager m = manager.newSubManager()) {
            Block t = TestTrees.djlTransformer(m);
            NDArray x = m.create(TestTrees.gaussian(3, 2 * 5 * 32, 1f), new Shape(2, 5, 32));
            try (LoraModel lora = wrapAndCheck(t, nf4(LayerSelector.allLinear(), 4).build(), m, x, 6)) {
                assertTrue(lora.report().contains("[32, 32]"), lora.report());
            }
        }
    }

    @Test
    void mixedPrecisionRulesAndQloraStart() {
        try (NDManager m = manager.newSubManager()) {
            Block net = TestTrees.sequentialParallel(m);
            LoraWrapper w = LoraWrapper.builder(backend).setTargets(LayerSelector.allLinear())
                    .setSpec(CodebookQuantizer.bitsandbytesNf4(), 4, 8)
                    .rule(LayerSelector.glob("2.*"),
                            new LoraSpec(CodebookQuantizer.loftqNormalFloat(2), 2, 2, true))
                    .optInitializer(LoraInitializer.qlora(1L)).build();
            try (LoraModel lora = w.wrap(net)) {
                WrappedLayer first = lora.layer("0");
                WrappedLayer mid = lora.layer("2.1");
                assertEquals(4, first.bits());
                assertEquals(2, mid.bits());
                assertEquals(2f, first.scaling());
                assertEquals((float) (2 / Math.sqrt(2)), mid.scaling());
                // QLoRA: B = 0
                assertEquals(0f, first.block().loraB().getArray().abs().sum().getFloat());
                assertTrue(mid.initialError() > first.initialError());
            }
        }
    }

    @Test
    void explicitRulesComeBeforeThePolicyAndThePolicyBeforeTheDefault() {
        try (NDManager m = manager.newSubManager()) {
            Block net = TestTrees.sequentialParallel(m);
            LoraWrapper w = LoraWrapper.builder(backend).setTargets(LayerSelector.allLinear())
                    .setSpec(CodebookQuantizer.bitsandbytesNf4(), 4, 8)
                    .rule(LayerSelector.glob("2.0"),
                            new LoraSpec(CodebookQuantizer.loftqNormalFloat(3), 3, 3, false))
                    .optPolicy(LoftqPolicy.parse("^2\\.=2:2"))
                    .optInitializer(LoraInitializer.qlora(1L)).build();
            try (LoraModel lora = w.wrap(net)) {
                assertEquals(3, lora.layer("2.0").bits());
                assertEquals(2, lora.layer("2.1").bits());
                assertEquals(2, lora.layer("2.1").rank());
                assertEquals(4f, lora.layer("2.1").scaling()); // the default alpha 8, over rank 2
                assertEquals(4, lora.layer("0").bits());
                assertEquals(4, lora.layer("0").rank());
            }
        }
    }

    @Test
    void mergeAndUnmergeSwapTheLayers() {
        try (NDManager m = manager.newSubManager()) {
            Block net = TestTrees.sequentialParallel(m);
            NDArray x = m.create(TestTrees.gaussian(4, 3 * 16, 1f), new Shape(3, 16));
            try (LoraModel lora = nf4(LayerSelector.allLinear(), 4).build().wrap(net)) {
                NDArray y = TestTrees.run(net, m, x);
                lora.merge(m);
                Block merged = BlockPaths.byPath(net).get("2.0");
                assertEquals(Linear.class, merged.getClass());
                NDArray ym = TestTrees.run(net, m, x);
                assertTrue(relative(ym, y) < 1e-5, "merged output differs: " + relative(ym, y));
                lora.unmerge();
                assertSame(lora.layer("2.0").block(), BlockPaths.byPath(net).get("2.0"));
            }
        }
    }

    @Test
    void selectorMatchingNothingListsExistingLinearPaths() {
        try (NDManager m = manager.newSubManager()) {
            Block net = TestTrees.sequentialParallel(m);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> nf4(LayerSelector.glob("encoder.**"), 4).build().wrap(net));
            assertTrue(e.getMessage().contains("matches no Linear")
                    && e.getMessage().contains("[0, 2.0, 2.1, 3]"), e.getMessage());
        }
    }

    @Test
    void nonLinearTargetAndTooLargeRankNameThePathAndLeaveTheTreeAlone() {
        try (NDManager m = manager.newSubManager()) {
            Block net = TestTrees.sequentialParallel(m);
            Map<String, Block> before = BlockPaths.byPath(net);
            IllegalArgumentException notLinear = assertThrows(IllegalArgumentException.class,
                    () -> nf4(LayerSelector.glob("2", "2.0"), 4).build().wrap(net));
            assertTrue(notLinear.getMessage().contains("target 2 is a ai.djl.nn.ParallelBlock"),
                    notLinear.getMessage());
            IllegalArgumentException rank = assertThrows(IllegalArgumentException.class,
                    () -> nf4(LayerSelector.allLinear(), 9).build().wrap(net));
            assertTrue(rank.getMessage().contains("3: rank must be in [1, min(out, in) = 8] for a "
                    + "Linear of weight [8, 64], got 9"), rank.getMessage());
            Map<String, Block> after = BlockPaths.byPath(net);
            assertEquals(before.keySet(), after.keySet());
            before.forEach((p, b) -> assertSame(b, after.get(p), p));
        }
    }

    /** A block whose forward goes through a lambda that captured its Linear. */
    static final class LambdaHolder extends TestTrees.FieldAttention {
        private final java.util.function.Supplier<Linear> hidden;

        LambdaHolder(int h) {
            super(h);
            Linear q = (Linear) getChildren().get("01query");
            this.hidden = () -> q;
        }
    }

    @Test
    void aCapturedLinearIsAClearErrorAndNothingChanges() {
        try (NDManager m = manager.newSubManager()) {
            LambdaHolder h = new LambdaHolder(8);
            h.initialize(m, ai.djl.ndarray.types.DataType.FLOAT32, new Shape(1, 2, 8));
            Block query = BlockPaths.byPath(h).get("query");
            int live = backend.liveArrayCount();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> nf4(LayerSelector.glob("key", "query"), 2).build().wrap(h));
            assertTrue(e.getMessage().contains("cannot rewrite query")
                    && e.getMessage().contains("captured"), e.getMessage());
            assertSame(query, BlockPaths.byPath(h).get("query"));
            assertTrue(BlockPaths.byPath(h).get("key").getClass() == Linear.class);
            assertEquals(live, backend.liveArrayCount());
        }
    }

    @Test
    void immutableListHoldingTheLinearIsAClearError() {
        class ListHolder extends TestTrees.FieldAttention {
            final List<Block> all;

            ListHolder() {
                super(8);
                all = List.copyOf(new ArrayList<>(getChildren().values()));
            }
        }
        try (NDManager m = manager.newSubManager()) {
            ListHolder h = new ListHolder();
            h.initialize(m, ai.djl.ndarray.types.DataType.FLOAT32, new Shape(1, 2, 8));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> nf4(LayerSelector.glob("value"), 2).build().wrap(h));
            assertTrue(e.getMessage().contains("cannot rewrite value")
                    && e.getMessage().contains("immutable collection"), e.getMessage());
            assertNotSame(QuantizedLoraLinear.class, BlockPaths.byPath(h).get("value").getClass());
        }
    }

    @Test
    void globForms() {
        LayerSelector g = LayerSelector.glob("encoder.layer.*.attention.self.query", "**.dense");
        assertTrue(g.matches("encoder.layer.3.attention.self.query", null));
        assertTrue(!g.matches("encoder.layer.3.4.attention.self.query", null));
        assertTrue(g.matches("encoder.layer.3.output.dense", null));
        assertTrue(g.matches("dense", null));
        assertTrue(LayerSelector.peft("query").matches("a.b.query", null));
        assertTrue(!LayerSelector.peft("query").matches("a.b.xquery", null));
        assertTrue(LayerSelector.regex("encoder\\.layer\\.[01]\\..*").matches("encoder.layer.1.x", null));
    }
}
