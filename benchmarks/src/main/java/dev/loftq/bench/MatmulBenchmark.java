package dev.loftq.bench;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import dev.loftq.core.ref.ReferenceBackend;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.HostRandom;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
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
 * SPI matmul on both backends against raw DJL NDArray calls on the same data: the DJL backend's
 * overhead (scope bookkeeping, attach, validation) over raw DJL must stay within 5 %.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class MatmulBenchmark {
    /** m x k x n: [m, k] · [k, n]. */
    @Param({"1024x1024x1024", "4096x4096x24"})
    public String shape;

    @Param({"raw-djl", "djl-backend", "reference"})
    public String impl;

    private NDManager rawManager;
    private NDArray rawA;
    private NDArray rawB;
    private TensorScope scope;
    private Tensor a;
    private Tensor b;

    @Setup(Level.Trial)
    public void setUp() {
        String[] mkn = shape.split("x");
        int m = Integer.parseInt(mkn[0]);
        int k = Integer.parseInt(mkn[1]);
        int n = Integer.parseInt(mkn[2]);
        float[] hostA = HostRandom.normal(1, 0f, 1f, m * k);
        float[] hostB = HostRandom.normal(2, 0f, 1f, k * n);
        switch (impl) {
            case "raw-djl" -> {
                rawManager = NDManager.newBaseManager(Device.cpu());
                rawA = rawManager.create(hostA, new Shape(m, k));
                rawB = rawManager.create(hostB, new Shape(k, n));
            }
            case "djl-backend", "reference" -> {
                Backend backend = impl.equals("reference") ? new ReferenceBackend() : DjlBackend.cpu();
                scope = backend.newScope();
                a = scope.fromHost(hostA, m, k);
                b = scope.fromHost(hostB, k, n);
            }
            default -> throw new IllegalArgumentException("impl: " + impl);
        }
    }

    @Benchmark
    public void matmul(Blackhole bh) {
        if (rawManager != null) {
            NDArray c = rawA.matMul(rawB);
            bh.consume(c);
            c.close();
        } else {
            try (TensorScope step = scope.newChild()) {
                bh.consume(step.matmul(a, b));
            }
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (rawManager != null) {
            rawManager.close();
        }
        if (scope != null) {
            scope.close();
        }
    }

    /** Per shape: the three times and the two ratios against raw DJL. */
    static List<Figure> figures(Collection<RunResult> results) {
        List<Figure> out = new ArrayList<>();
        for (String s : new String[] {"1024x1024x1024", "4096x4096x24"}) {
            Figure raw = null;
            Figure djl = null;
            Figure ref = null;
            for (RunResult r : results) {
                if (!s.equals(r.getParams().getParam("shape"))) {
                    continue;
                }
                String impl = r.getParams().getParam("impl");
                Figure f = Figure.of("matmul " + s + " " + impl, r.getPrimaryResult().getScore(),
                        r.getPrimaryResult().getScoreUnit(), r.getPrimaryResult().getScoreError());
                out.add(f);
                switch (impl) {
                    case "raw-djl" -> raw = f;
                    case "djl-backend" -> djl = f;
                    default -> ref = f;
                }
            }
            if (raw != null && djl != null) {
                out.add(Figure.ratio("matmul " + s + " djl-backend / raw-djl", djl, raw));
            }
            if (raw != null && ref != null) {
                out.add(Figure.ratio("matmul " + s + " reference / raw-djl", ref, raw));
            }
        }
        return out;
    }
}
