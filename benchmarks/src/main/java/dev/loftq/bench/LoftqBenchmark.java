package dev.loftq.bench;

import dev.loftq.core.linalg.LowRankOptions;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.HostRandom;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.quant.loftq.Loftq;
import dev.loftq.quant.loftq.LoftqConfig;
import dev.loftq.quant.quantizer.CodebookQuantizer;
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
import org.openjdk.jmh.results.RunResult;

/**
 * LoftQ on one weight, NF4 (bitsandbytes, block 64), r16, T5, on the DJL CPU backend: the published
 * algorithm with the fast low-rank path, and this library's default (MSE-optimal scales,
 * keep-best), whose cost is reported as a ratio to the published one measured in the same run.
 * (A full SVD per step, the official algorithm's cost, is out of reach on the JVM at this size:
 * DJL has no SVD and EJML's dense SVD of 4096 x 4096 takes many minutes; {@link FullSvdStep}
 * times it on smaller matrices.) The weight is Gaussian with
 * 1 % planted outliers (heavy tails, as real weights have).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
public class LoftqBenchmark {
    @Param({"4096x4096", "11008x4096"})
    public String shape;

    @Param({"published-fast", "default"})
    public String mode;

    private Backend backend;
    private TensorScope scope;
    private Tensor w;
    private LoftqConfig config;

    @Setup(Level.Trial)
    public void setUp() {
        String[] dims = shape.split("x");
        int out = Integer.parseInt(dims[0]);
        int in = Integer.parseInt(dims[1]);
        float[] data = HostRandom.normal(3, 0f, 0.02f, out * in);
        for (int i = 0; i < data.length; i += 97) {
            data[i] *= 8; // ~1 % outliers
        }
        backend = DjlBackend.cpu();
        scope = backend.newScope();
        w = scope.fromHost(data, out, in);
        CodebookQuantizer nf4 = CodebookQuantizer.bitsandbytesNf4();
        config = switch (mode) {
            case "published-fast" -> LoftqConfig.published(nf4, 16).toBuilder()
                    .lowRank(LowRankOptions.fastDefaults()).build();
            case "default" -> LoftqConfig.builder(nf4).rank(16).build();
            default -> throw new IllegalArgumentException("mode: " + mode);
        };
    }

    @Benchmark
    public double loftq() {
        try (TensorScope step = scope.newChild()) {
            return Loftq.initialize(step, w, "w", config).error();
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        scope.close();
    }

    static List<Figure> figures(Collection<RunResult> results) {
        List<Figure> out = new ArrayList<>();
        for (String s : new String[] {"4096x4096", "11008x4096"}) {
            Figure published = null;
            Figure standard = null;
            for (RunResult r : results) {
                if (!s.equals(r.getParams().getParam("shape"))) {
                    continue;
                }
                String m = r.getParams().getParam("mode");
                Figure f = Figure.of("loftq nf4 r16 T5 " + s + " " + m,
                        r.getPrimaryResult().getScore(), r.getPrimaryResult().getScoreUnit(),
                        r.getPrimaryResult().getScoreError());
                out.add(f);
                if (m.equals("published-fast")) {
                    published = f;
                } else {
                    standard = f;
                }
            }
            if (published != null && standard != null) {
                out.add(Figure.ratio("loftq nf4 r16 T5 " + s + " default / published-fast",
                        standard, published));
            }
        }
        return out;
    }
}
