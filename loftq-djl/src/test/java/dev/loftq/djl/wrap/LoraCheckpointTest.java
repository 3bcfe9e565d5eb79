package dev.loftq.djl.wrap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import dev.loftq.core.io.Safetensors;
import dev.loftq.core.io.SafetensorsFile;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.block.QuantizedLoraLinear;
import dev.loftq.djl.model.BlockPaths;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LoraCheckpointTest {
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

    /** Wraps the parallel branch (2.0, 2.1) with NF4 + double quant; 0 and 3 stay fp32. */
    private static LoraModel wrapped(Block net) {
        LoraModel lora = LoraWrapper.builder(backend).setTargets(LayerSelector.glob("2.*"))
                .setSpec(CodebookQuantizer.bitsandbytesNf4DoubleQuant(), 4, 8)
                .rule(LayerSelector.glob("2.1"),
                        new LoraSpec(CodebookQuantizer.bitsandbytesNf4DoubleQuant(), 2, 4, false))
                .optInitializer(LoraInitializer.loftq(1, 5L)).build().wrap(net);
        long seed = 50;
        for (WrappedLayer l : lora.layers()) { // as after some training: B and A moved
            NDArray b = l.block().loraB().getArray();
            b.set(TestTrees.gaussian(seed++, (int) b.size(), 0.05f));
        }
        return lora;
    }

    @Test
    void saveAndLoadReproduceTheOutputsExactly(@TempDir Path tmp) throws Exception {
        Path adapter = tmp.resolve("adapter");
        Path backbone = tmp.resolve("backbone");
        try (NDManager m = manager.newSubManager()) {
            NDArray x = m.create(TestTrees.gaussian(9, 5 * 16, 1f), new Shape(5, 16));
            float[] expected;
            Block net = TestTrees.sequentialParallel(m);
            try (LoraModel lora = wrapped(net)) {
                expected = TestTrees.run(net, m, x).toFloatArray();
                LoraCheckpoint.saveAdapter(lora, adapter, null, "test/seq-par");
                LoraCheckpoint.saveBackbone(lora, backbone, Map.of("model_type", "test"));
            }
            SafetensorsFile a = Safetensors.read(adapter.resolve("adapter_model.safetensors"));
            assertEquals(Set.of("base_model.model.2.0.lora_A.weight",
                    "base_model.model.2.0.lora_B.weight", "base_model.model.2.1.lora_A.weight",
                    "base_model.model.2.1.lora_B.weight"), a.names());
            assertArrayEquals(new int[] {2, 64}, a.tensor("base_model.model.2.1.lora_A.weight").shape());
            String config = Files.readString(adapter.resolve("adapter_config.json"));
            assertTrue(config.contains("\"r\": 4") && config.contains("\"lora_alpha\": 8")
                    && config.contains("\"2\\\\.1\": 2") && config.contains("\"init_lora_weights\": true"),
                    config);
            SafetensorsFile b = Safetensors.read(backbone.resolve("model.safetensors"));
            assertTrue(b.names().containsAll(Set.of("2.0.weight", "2.0.weight.absmax",
                    "2.0.weight.nested_absmax", "2.0.weight.quant_map",
                    "2.0.weight.nested_quant_map", "2.0.weight.quant_state.bitsandbytes__nf4",
                    "2.0.bias", "0.weight", "0.bias", "3.weight", "3.bias")), b.names().toString());

            Block fresh = TestTrees.sequentialParallel(m); // other random values
            assertFalse(java.util.Arrays.equals(expected, TestTrees.run(fresh, m, x).toFloatArray()));
            try (LoraModel loaded = LoraCheckpoint.load(backend, fresh, backbone, adapter)) {
                assertEquals(java.util.List.of("2.0", "2.1"), loaded.paths());
                assertTrue(BlockPaths.byPath(fresh).get("2.1") instanceof QuantizedLoraLinear);
                assertEquals(2f, loaded.layer("2.1").scaling()); // rank_pattern 2, alpha_pattern 4
                assertArrayEquals(expected, TestTrees.run(fresh, m, x).toFloatArray(), 0f);
                for (Parameter p : fresh.getParameters().values()) {
                    assertEquals(p.getName().startsWith("lora_"), p.requiresGradient(), p.getName());
                }
            }
        }
    }

    @Test
    void loadingIntoAMismatchedModelNamesThePathAndShapes(@TempDir Path tmp) throws Exception {
        Path adapter = tmp.resolve("adapter");
        Path backbone = tmp.resolve("backbone");
        try (NDManager m = manager.newSubManager()) {
            Block net = TestTrees.sequentialParallel(m);
            try (LoraModel lora = wrapped(net)) {
                LoraCheckpoint.saveAdapter(lora, adapter, null, null);
                LoraCheckpoint.saveBackbone(lora, backbone, Map.of());
            }
            // same paths, other widths: Sequential(Linear 16→48, relu, Parallel(32, 32), Linear 8)
            SequentialBlock other = new SequentialBlock();
            other.add(TestTrees.linear(48));
            other.add(ai.djl.nn.Activation::relu);
            other.add(new ai.djl.nn.ParallelBlock(l -> new ai.djl.ndarray.NDList(
                    ai.djl.ndarray.NDArrays.concat(new ai.djl.ndarray.NDList(l.get(0).head(),
                            l.get(1).head()), -1)),
                    java.util.List.of(TestTrees.linear(32), TestTrees.linear(32))));
            other.add(TestTrees.linear(8));
            other.initialize(m, ai.djl.ndarray.types.DataType.FLOAT32, new Shape(1, 16));
            Map<String, Block> before = BlockPaths.byPath(other);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> LoraCheckpoint.load(backend, other, backbone, adapter));
            assertTrue(e.getMessage().contains("module 2.0: the checkpoint's weight is [32, 64] but "
                    + "the model's Linear has weight (32, 48)"), e.getMessage());
            Map<String, Block> after = BlockPaths.byPath(other);
            before.forEach((p, blk) -> assertTrue(blk == after.get(p), p));

            // an adapter whose module set differs from the backbone's
            Path otherAdapter = tmp.resolve("adapter2");
            Block net2 = TestTrees.sequentialParallel(m);
            try (LoraModel lora2 = LoraWrapper.builder(backend).setTargets(LayerSelector.glob("2.0"))
                    .setSpec(CodebookQuantizer.bitsandbytesNf4(), 4, 8).build().wrap(net2)) {
                LoraCheckpoint.saveAdapter(lora2, otherAdapter, null, null);
            }
            Block fresh = TestTrees.sequentialParallel(m);
            IllegalArgumentException m2 = assertThrows(IllegalArgumentException.class,
                    () -> LoraCheckpoint.load(backend, fresh, backbone, otherAdapter));
            assertTrue(m2.getMessage().contains("4-bit modules without adapters [2.1]"),
                    m2.getMessage());

            // an adapter whose factors do not fit the weight
            Path badAdapter = tmp.resolve("adapter3");
            dev.loftq.djl.io.PeftAdapterWriter.write(badAdapter, new dev.loftq.djl.io.PeftAdapter(
                    dev.loftq.djl.io.PeftAdapterConfig.builder(4, 8)
                            .targetModules(java.util.List.of("2.0", "2.1")).build(),
                    Map.of("2.0", new dev.loftq.djl.io.LoraWeights(
                                    dev.loftq.core.io.TensorData.ofFloats(new float[4 * 63], 4, 63),
                                    dev.loftq.core.io.TensorData.ofFloats(new float[32 * 4], 32, 4)),
                            "2.1", new dev.loftq.djl.io.LoraWeights(
                                    dev.loftq.core.io.TensorData.ofFloats(new float[4 * 64], 4, 64),
                                    dev.loftq.core.io.TensorData.ofFloats(new float[32 * 4], 32, 4)))));
            Block fresh3 = TestTrees.sequentialParallel(m);
            IllegalArgumentException m3 = assertThrows(IllegalArgumentException.class,
                    () -> LoraCheckpoint.load(backend, fresh3, backbone, badAdapter));
            assertTrue(m3.getMessage().contains("adapter for 2.0 has A [4, 63] and B [32, 4], which "
                    + "do not fit the weight [32, 64]"), m3.getMessage());
        }
    }
}
