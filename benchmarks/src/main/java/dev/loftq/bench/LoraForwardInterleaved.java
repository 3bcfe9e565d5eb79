package dev.loftq.bench;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import dev.loftq.core.tensor.HostRandom;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.block.QuantizedLoraLinear;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.util.Arrays;
import java.util.Locale;

/**
 * The {@link LoraForwardBenchmark} comparison for a shared, noisy machine: the three forwards run
 * round-robin (fp32, on-the-fly, cached, fp32, ...) in one JVM, so a load change hits all three
 * alike, and the medians and minima of the per-call times are printed with their ratios to fp32.
 * Usage: {@code java -cp ... dev.loftq.bench.LoraForwardInterleaved [rounds]} (default 12; the
 * first round is warm-up).
 */
public final class LoraForwardInterleaved {
    private LoraForwardInterleaved() {}

    public static void main(String[] args) {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 12;
        int f = LoraForwardBenchmark.FEATURES;
        try (NDManager manager = NDManager.newBaseManager(); DjlBackend backend = DjlBackend.cpu()) {
            NDArray x = manager.create(HostRandom.normal(1, 0f, 1f, 8 * 128 * f),
                    new Shape(8, 128, f));
            ParameterStore store = new ParameterStore(manager, false);
            float[] w = HostRandom.normal(2, 0f, 0.02f, f * f);
            Linear linear = Linear.builder().setUnits(f).build();
            linear.initialize(manager, DataType.FLOAT32, new Shape(1, f));
            linear.getParameters().get("weight").getArray().set(w);
            Block[] blocks = {linear, lora(backend, w, false), lora(backend, w, true)};
            String[] names = {"fp32 Linear", "NF4+LoRA on the fly", "NF4+LoRA cached"};
            double[][] ms = new double[blocks.length][rounds - 1];
            for (int round = 0; round < rounds; round++) {
                for (int k = 0; k < blocks.length; k++) {
                    try (NDManager step = manager.newSubManager()) {
                        x.tempAttach(step);
                        long t0 = System.nanoTime();
                        NDList out = blocks[k].forward(store, new NDList(x), false);
                        out.head().getFloat(0, 0, 0);
                        long t1 = System.nanoTime();
                        if (round > 0) {
                            ms[k][round - 1] = (t1 - t0) / 1e6;
                        }
                    }
                }
            }
            double fp32Median = median(ms[0]);
            double fp32Min = Arrays.stream(ms[0]).min().orElseThrow();
            for (int k = 0; k < blocks.length; k++) {
                double med = median(ms[k]);
                double min = Arrays.stream(ms[k]).min().orElseThrow();
                System.out.printf(Locale.ROOT, "%-22s median %8.1f ms (x%.2f)  min %8.1f ms (x%.2f)%n",
                        names[k], med, med / fp32Median, min, min / fp32Min);
            }
            ((QuantizedLoraLinear) blocks[1]).close();
            ((QuantizedLoraLinear) blocks[2]).close();
        }
    }

    private static QuantizedLoraLinear lora(DjlBackend backend, float[] w, boolean cached) {
        int f = LoraForwardBenchmark.FEATURES;
        int r = LoraForwardBenchmark.RANK;
        TensorScope scope = backend.newScope();
        Tensor wt = scope.fromHost(w, f, f);
        QuantizedTensor q = CodebookQuantizer.bitsandbytesNf4DoubleQuant().quantize(scope, wt, "w");
        return QuantizedLoraLinear.loraBuilder().optName(cached ? "cached" : "on-the-fly")
                .setQuantized(scope, q)
                .setLora(scope.fromHost(HostRandom.normal(3, 0f, 0.01f, r * f), r, f),
                        scope.fromHost(HostRandom.normal(4, 0f, 0.01f, f * r), f, r))
                .setScaling(1f).optBias(scope.fromHost(new float[f], f))
                .optCacheDequantized(cached).build();
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
