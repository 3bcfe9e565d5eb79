package dev.loftq.bench;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import dev.loftq.core.tensor.HostRandom;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.block.QuantizedLoraLinear;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.infra.Blackhole;
import org.openjdk.jmh.results.RunResult;

/**
 * Inference forward of {@link QuantizedLoraLinear} (NF4, r = 16) against DJL's fp32
 * {@link Linear} on the same input, 4096 → 4096 over a batch of 8 × 128 tokens (issue 6 targets:
 * on-the-fly dequantization ≤ 1.5× the fp32 time, cached ≤ 1.1×).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class LoraForwardBenchmark {
    static final int FEATURES = 4096;
    static final int RANK = 16;

    @Param({"fp32-linear", "nf4-lora-on-the-fly", "nf4-lora-cached"})
    public String impl;

    private NDManager manager;
    private DjlBackend backend;
    private Linear linear;
    private QuantizedLoraLinear lora;
    private NDArray x;
    private ParameterStore store;

    @Setup(Level.Trial)
    public void setUp() {
        manager = NDManager.newBaseManager(Device.cpu());
        x = manager.create(HostRandom.normal(1, 0f, 1f, 8 * 128 * FEATURES),
                new Shape(8, 128, FEATURES));
        store = new ParameterStore(manager, false);
        float[] w = HostRandom.normal(2, 0f, 0.02f, FEATURES * FEATURES);
        if (impl.equals("fp32-linear")) {
            linear = Linear.builder().setUnits(FEATURES).build();
            linear.initialize(manager, DataType.FLOAT32, new Shape(1, FEATURES));
            linear.getParameters().get("weight").getArray().set(w);
            return;
        }
        backend = DjlBackend.cpu();
        TensorScope scope = backend.newScope();
        Tensor wt = scope.fromHost(w, FEATURES, FEATURES);
        QuantizedTensor q = CodebookQuantizer.bitsandbytesNf4DoubleQuant().quantize(scope, wt, "w");
        lora = QuantizedLoraLinear.loraBuilder().optName("bench")
                .setQuantized(scope, q)
                .setLora(scope.fromHost(HostRandom.normal(3, 0f, 0.01f, RANK * FEATURES), RANK,
                        FEATURES), scope.fromHost(HostRandom.normal(4, 0f, 0.01f, FEATURES * RANK),
                        FEATURES, RANK))
                .setScaling(1f)
                .optBias(scope.fromHost(new float[FEATURES], FEATURES))
                .optCacheDequantized(impl.equals("nf4-lora-cached")).build();
    }

    @Benchmark
    public void forward(Blackhole bh) {
        // Results land in the input's manager: attach x to a step manager for the call, so
        // they are freed with it and x goes back to its own manager (no copy of x).
        try (NDManager step = manager.newSubManager()) {
            x.tempAttach(step);
            NDList out = (linear != null ? linear : lora).forward(store, new NDList(x), false);
            bh.consume(out.head().getFloat(0, 0, 0));
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (lora != null) {
            lora.close();
        }
        if (backend != null) {
            backend.close();
        }
        manager.close();
    }

    /** The three times and the two ratios against fp32. */
    static List<Figure> figures(Collection<RunResult> results) {
        List<Figure> out = new ArrayList<>();
        Figure fp32 = null;
        Figure fly = null;
        Figure cached = null;
        for (RunResult r : results) {
            String impl = r.getParams().getParam("impl");
            Figure f = Figure.of("lora forward 4096x4096 r16 8x128 " + impl,
                    r.getPrimaryResult().getScore(), r.getPrimaryResult().getScoreUnit(),
                    r.getPrimaryResult().getScoreError());
            out.add(f);
            switch (impl) {
                case "fp32-linear" -> fp32 = f;
                case "nf4-lora-on-the-fly" -> fly = f;
                default -> cached = f;
            }
        }
        if (fp32 != null && fly != null) {
            out.add(Figure.ratio("lora forward on-the-fly / fp32 (target <= 1.5)", fly, fp32));
        }
        if (fp32 != null && cached != null) {
            out.add(Figure.ratio("lora forward cached / fp32 (target <= 1.1)", cached, fp32));
        }
        return out;
    }
}
