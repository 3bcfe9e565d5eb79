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
import dev.loftq.quant.codebook.Codebook;
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
 * NF4 (bitsandbytes, block 64) quantize+pack and dequantize of a 4096 x 4096 fp32 matrix on both
 * backends, against the obvious broadcast-argmin formulation (as the official LoftQ code does it:
 * |x / absmax − table| over all 16 entries, argmin) in raw DJL, measured in the same run.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class QuantizeBenchmark {
    static final int SIDE = 4096;
    static final double INPUT_BYTES = 4.0 * SIDE * SIDE;

    @Param({"reference", "djl-backend", "argmin-djl"})
    public String impl;

    private TensorScope scope;
    private Tensor w;
    private QuantizedTensor q;
    private final CodebookQuantizer nf4 = CodebookQuantizer.bitsandbytesNf4();

    private NDManager raw;
    private NDArray rawW;
    private NDArray rawTable;
    private NDArray rawCodes;
    private NDArray rawAbsmax;

    @Setup(Level.Trial)
    public void setUp() {
        float[] data = HostRandom.normal(5, 0f, 0.02f, SIDE * SIDE);
        if (impl.equals("argmin-djl")) {
            raw = NDManager.newBaseManager(Device.cpu());
            rawW = raw.create(data, new Shape(SIDE * SIDE / 64, 64));
            rawTable = raw.create(Codebook.NF4.values());
            rawAbsmax = rawW.abs().max(new int[] {1}, true);
            rawCodes = argminCodes(raw);
            return;
        }
        Backend backend = impl.equals("reference") ? new ReferenceBackend() : DjlBackend.cpu();
        scope = backend.newScope();
        w = scope.fromHost(data, SIDE, SIDE);
        q = nf4.quantize(scope, w, "w");
    }

    private NDArray argminCodes(NDManager m) {
        try (NDManager tmp = m.newSubManager()) {
            NDArray xn = rawW.div(rawAbsmax).expandDims(2);
            NDArray codes = xn.sub(rawTable.reshape(1, 1, 16)).abs().argMin(2).toType(
                    ai.djl.ndarray.types.DataType.UINT8, false);
            codes.attach(m);
            return codes;
        }
    }

    @Benchmark
    public void quantize(Blackhole bh) {
        if (raw != null) {
            try (NDManager tmp = raw.newSubManager()) {
                NDArray codes = argminCodes(tmp);
                bh.consume(codes);
            }
            return;
        }
        try (TensorScope step = scope.newChild()) {
            bh.consume(nf4.quantize(step, w, "w"));
        }
    }

    @Benchmark
    public void dequantize(Blackhole bh) {
        if (raw != null) {
            try (NDManager tmp = raw.newSubManager()) {
                NDArray y = rawTable.get(rawCodes.toType(ai.djl.ndarray.types.DataType.INT64, false))
                        .mul(rawAbsmax);
                y.attach(tmp);
                bh.consume(y);
            }
            return;
        }
        try (TensorScope step = scope.newChild()) {
            bh.consume(q.dequantize(step));
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (raw != null) {
            raw.close();
        }
        if (scope != null) {
            scope.close();
        }
    }

    /** Times, input throughput (GB/s of fp32 input or output) and speed-ups over argmin. */
    static List<Figure> figures(Collection<RunResult> results) {
        List<Figure> out = new ArrayList<>();
        for (String op : new String[] {"quantize", "dequantize"}) {
            Figure baseline = null;
            List<Figure> ours = new ArrayList<>();
            for (RunResult r : results) {
                String label = r.getPrimaryResult().getLabel();
                if (!label.equals(op)) {
                    continue;
                }
                String impl = r.getParams().getParam("impl");
                double ms = r.getPrimaryResult().getScore();
                Figure f = Figure.of("nf4 " + op + " 4096x4096 " + impl, ms,
                        r.getPrimaryResult().getScoreUnit(), r.getPrimaryResult().getScoreError());
                out.add(f);
                out.add(Figure.of("nf4 " + op + " 4096x4096 " + impl + " throughput",
                        INPUT_BYTES / (ms * 1e-3) / 1e9, "GB/s", Double.NaN));
                if (impl.equals("argmin-djl")) {
                    baseline = f;
                } else {
                    ours.add(f);
                }
            }
            if (baseline != null) {
                for (Figure f : ours) {
                    out.add(Figure.ratio(f.name() + " / argmin-djl", f, baseline));
                }
            }
        }
        return out;
    }
}
