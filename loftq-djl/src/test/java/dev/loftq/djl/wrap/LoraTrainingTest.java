package dev.loftq.djl.wrap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.dataset.Batch;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** An NF4 + LoRA model trained with DJL's Trainer learns while its base stays bit for bit. */
class LoraTrainingTest {
    private static final int N = 64;
    private static final int EPOCHS = 100;

    @Test
    void nf4LoraLearnsARegressionTaskWithTheBaseUntouched() throws Exception {
        try (DjlBackend backend = DjlBackend.cpu(); NDManager m = NDManager.newBaseManager();
                Model model = Model.newInstance("lora-regression")) {
            ai.djl.engine.Engine.getInstance().setRandomSeed(1234);
            Block net = TestTrees.sequentialParallel(m);
            LoraModel lora = LoraWrapper.builder(backend).setTargets(LayerSelector.allLinear())
                    .setSpec(CodebookQuantizer.bitsandbytesNf4DoubleQuant(), 4, 4)
                    .optInitializer(LoraInitializer.qlora(3L)).build().wrap(net);
            try (lora) {
                NDArray x = m.create(TestTrees.gaussian(11, N * 16, 1f), new Shape(N, 16));
                // A target the adapters can reach: the wrapped model with some other B's.
                List<float[]> zeroB = new ArrayList<>();
                long seed = 100;
                for (WrappedLayer l : lora.layers()) {
                    NDArray b = l.block().loraB().getArray();
                    zeroB.add(b.toFloatArray());
                    b.set(TestTrees.gaussian(seed++, (int) b.size(), 0.3f));
                }
                NDArray y = TestTrees.run(net, m, x).duplicate();
                for (int i = 0; i < zeroB.size(); i++) {
                    lora.layers().get(i).block().loraB().getArray().set(zeroB.get(i));
                }
                Map<String, byte[]> frozenBefore = frozenState(lora, net);

                model.setBlock(net);
                DefaultTrainingConfig config = new DefaultTrainingConfig(Loss.l2Loss())
                        .optOptimizer(Optimizer.adam()
                                .optLearningRateTracker(Tracker.fixed(0.01f)).build());
                try (Trainer trainer = model.newTrainer(config)) {
                    trainer.initialize(new Shape(N, 16));
                    ArrayDataset data = new ArrayDataset.Builder().setData(x).optLabels(y)
                            .setSampling(N, false).build();
                    float first = Float.NaN;
                    float last = Float.NaN;
                    for (int epoch = 0; epoch < EPOCHS; epoch++) {
                        for (Batch batch : trainer.iterateDataset(data)) {
                            if (epoch == 0) {
                                // one step by hand with a GradientCollector: gradients reach A, B only
                                try (GradientCollector gc = trainer.newGradientCollector()) {
                                    NDArray pred = trainer.forward(batch.getData()).head();
                                    NDArray loss = trainer.getLoss().evaluate(batch.getLabels(),
                                            new NDList(pred));
                                    first = loss.getFloat();
                                    gc.backward(loss);
                                }
                                assertOnlyLoraHasGradients(net);
                            } else {
                                EasyTrain.trainBatch(trainer, batch);
                            }
                            trainer.step();
                            batch.close();
                        }
                        if (epoch == EPOCHS - 1) {
                            try (NDManager tmp = m.newSubManager()) {
                                NDArray pred = TestTrees.run(net, tmp, x);
                                last = Loss.l2Loss().evaluate(new NDList(y), new NDList(pred))
                                        .getFloat();
                            }
                        }
                    }
                    org.slf4j.LoggerFactory.getLogger(LoraTrainingTest.class).info("loss {} -> {}", first, last);
                    assertTrue(last * 10 <= first, "loss " + first + " -> " + last);
                }
                Map<String, byte[]> frozenAfter = frozenState(lora, net);
                frozenBefore.forEach((k, v) -> assertArrayEquals(v, frozenAfter.get(k), k));
            }
        }
    }

    /** Bytes of every packed weight, scale and bias, and every non-LoRA parameter. */
    private static Map<String, byte[]> frozenState(LoraModel lora, Block net) {
        Map<String, byte[]> out = new LinkedHashMap<>();
        for (WrappedLayer l : lora.layers()) {
            var q = l.block().quantized();
            out.put(l.path() + ".packed", DjlBackend.ndArray(q.packed()).toByteArray());
            q.nestedScales().ifPresent(n -> {
                out.put(l.path() + ".absmax", DjlBackend.ndArray(n.quantized().packed()).toByteArray());
                out.put(l.path() + ".absmax2",
                        DjlBackend.ndArray(n.quantized().plainScales().orElseThrow()).toByteArray());
            });
            q.plainScales().ifPresent(s -> out.put(l.path() + ".scales",
                    DjlBackend.ndArray(s).toByteArray()));
            out.put(l.path() + ".bias", l.block().bias().toByteArray());
        }
        for (var p : net.getParameters()) {
            if (!p.getValue().getName().startsWith("lora_")) {
                out.put(p.getKey(), p.getValue().getArray().toByteArray());
            }
        }
        return out;
    }

    private static void assertOnlyLoraHasGradients(Block net) {
        int lora = 0;
        for (var e : net.getParameters()) {
            Parameter p = e.getValue();
            if (p.getName().startsWith("lora_")) {
                assertTrue(p.getArray().hasGradient(), e.getKey());
                lora++;
            } else {
                assertFalse(p.getArray().hasGradient(), e.getKey());
            }
        }
        assertTrue(lora == 8, "LoRA parameters: " + lora);
    }
}
