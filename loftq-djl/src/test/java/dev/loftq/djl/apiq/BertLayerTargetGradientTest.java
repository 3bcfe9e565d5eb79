package dev.loftq.djl.apiq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.tensor.Autograd;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DirectBuffers;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.model.MiniLmModel;
import dev.loftq.quant.apiq.Apiq;
import dev.loftq.quant.apiq.ApiqConfig;
import dev.loftq.quant.apiq.ApiqDivergedException;
import dev.loftq.quant.apiq.ApiqSample;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Issue 8: ApiQ-bw's block (one encoder layer of all-MiniLM-L6-v2) gives the same gradient bits
 * whether or not Java's GC runs between its forward and its backward pass. Its attention scale
 * and GELU multiply by floats that autograd keeps for the backward pass; made through DJL's
 * {@code Number} overloads they lived in Java direct buffers that the GC frees, and the gradient
 * then read freed memory (garbage, non-repeatable, sometimes NaN).
 */
class BertLayerTargetGradientTest {
    private static DjlBackend backend;
    private static MiniLmModel fp;

    @BeforeAll
    static void load() throws IOException {
        backend = DjlBackend.cpu();
        fp = MiniLmModel.fromClasspath();
    }

    @AfterAll
    static void close() {
        fp.close();
        backend.close();
    }

    @Test
    void gradientsDoNotDependOnWhenTheGcRuns() throws InterruptedException {
        float[][] reference = gradients(false);
        for (int round = 0; round < 2; round++) {
            float[][] withGc = gradients(true);
            for (int i = 0; i < reference.length; i++) {
                String what = BertLayerTarget.LINEARS[i] + ", round " + round;
                assertEquals(reference[i].length, withGc[i].length, what);
                double norm = 0;
                for (int j = 0; j < reference[i].length; j++) {
                    norm += (double) reference[i][j] * reference[i][j];
                    if (Float.floatToIntBits(reference[i][j]) != Float.floatToIntBits(withGc[i][j])) {
                        throw new AssertionError(what + ": element " + j + " is " + withGc[i][j]
                                + " after a GC between forward and backward, " + reference[i][j]
                                + " without");
                    }
                }
                assertTrue(norm > 0 && Double.isFinite(norm), what + ": |g|^2 = " + norm);
            }
        }
    }

    /**
     * Repeated ApiQ-bw runs on encoder.layer.0 (int2, few sentences and steps) agree bit for bit
     * while another thread keeps the GC running, as they do without it.
     */
    @Test
    void apiqBwRunsRepeatUnderGcPressure() throws Exception {
        List<long[]> ids = Arrays.asList(fp.tokenize(List.of("A man is playing a guitar.",
                "The weather is lovely today.", "He drove the car to the station.",
                "A child is reading a book under a tree.", "Stocks fell sharply on Monday.",
                "She plays the piano every evening.")));
        ApiqConfig config = ApiqConfig.builder(42).bits(2).steps(12).batchSize(2).holdOut(0.34)
                .evalEvery(4).clipOptimizer(2e-2f, 0.1f).loraOptimizer(5e-3f, 0.1f).build();
        String layer = "encoder.layer.0";
        try (TensorScope cap = backend.newScope(); TensorScope work = backend.newScope()) {
            Capture.Record rec = Capture.run(fp.block(), DjlBackend.manager(cap), ids,
                    List.of(layer), true).get(layer);
            BertLayerTarget target = new BertLayerTarget(fp.block(), layer, fp.config(), work);
            List<ApiqSample> samples = new ArrayList<>();
            for (int i = 0; i < ids.size(); i++) {
                samples.add(new ApiqSample(
                        work.fromHost(rec.inputs().get(i), rec.inputShapes().get(i)),
                        work.fromHost(rec.outputs().get(i), rec.outputShapes().get(i))));
            }
            double[] reference = trainLoss(target, samples, config);
            AtomicBoolean stop = new AtomicBoolean();
            Thread gc = new Thread(() -> {
                while (!stop.get()) {
                    System.gc();
                    try {
                        Thread.sleep(2);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }, "gc-pressure");
            gc.setDaemon(true);
            gc.start();
            try {
                for (int rep = 0; rep < 2; rep++) {
                    double[] again = trainLoss(target, samples, config);
                    assertArrayEquals(reference, again, "ApiQ-bw training losses, repeat " + rep
                            + " under GC pressure");
                }
            } finally {
                stop.set(true);
                gc.join();
            }
        }
    }

    private static double[] trainLoss(BertLayerTarget target, List<ApiqSample> samples,
            ApiqConfig config) {
        try (TensorScope res = backend.newScope()) {
            try {
                return Apiq.optimize(res, target, samples, config).trainLoss();
            } catch (ApiqDivergedException e) {
                return e.best().trainLoss();
            }
        }
    }

    /** d sum(out^2) / dW for the six weights, with a GC before the backward pass or not. */
    private float[][] gradients(boolean gc) throws InterruptedException {
        try (TensorScope scope = backend.newScope()) {
            BertLayerTarget target = new BertLayerTarget(fp.block(), "encoder.layer.0", fp.config(),
                    scope);
            Autograd ad = backend.autograd().orElseThrow();
            Map<String, Tensor> w = new LinkedHashMap<>();
            for (String l : BertLayerTarget.LINEARS) {
                Tensor leaf = scope.mul(target.weights().get(l), 1f);
                ad.requireGradient(leaf);
                w.put(l, leaf);
            }
            Tensor input = scope.randomNormal(7L, 0f, 1f, 6, fp.config().hiddenSize());
            try (Autograd.Tape tape = ad.record()) {
                Tensor out = target.forward(scope, input, w);
                Tensor flat = scope.reshape(out, -1);
                Tensor loss = scope.sumLast(scope.mul(flat, flat));
                if (gc) {
                    DirectBuffers.freeUnreachable();
                }
                tape.backward(loss);
            }
            float[][] g = new float[w.size()][];
            int i = 0;
            for (Tensor leaf : w.values()) {
                g[i++] = scope.toFloatArray(ad.gradient(leaf));
            }
            return g;
        }
    }
}
