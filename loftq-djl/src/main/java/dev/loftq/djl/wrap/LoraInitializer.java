package dev.loftq.djl.wrap;

import dev.loftq.core.Checks;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.loftq.Loftq;
import dev.loftq.quant.loftq.LoftqConfig;
import dev.loftq.quant.loftq.LoftqResult;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.util.SplittableRandom;

/**
 * Makes the frozen quantized weight and the initial LoRA factors of one layer from its
 * full-precision weight. Built in: {@link #qlora} (Q = quant(W), A random, B = 0; Dettmers et al.
 * 2023) and {@link #loftq} (Q, A, B alternately fitted to W; Li et al. 2023, arXiv:2310.08659).
 * Implementations must be deterministic for a given seed and thread-safe.
 */
@FunctionalInterface
public interface LoraInitializer {
    /**
     * The initial state of the layer at {@code path}.
     *
     * @param scope owns every tensor of the result
     * @param w the weight, FLOAT32 [out, in]; not modified
     * @param path the layer's path, for messages and per-layer seeds
     * @param spec quantizer, rank, alpha
     * @throws IllegalArgumentException for a rank above min(out, in) (naming the path and shape)
     */
    Init initialize(TensorScope scope, Tensor w, String path, LoraSpec spec);

    /**
     * One layer's start.
     *
     * @param quantized Q
     * @param loraA A [r, in]
     * @param loraB B [out, r]
     * @param relativeError ‖W − deq(Q) − s·B·A‖ / ‖W‖
     */
    record Init(QuantizedTensor quantized, Tensor loraA, Tensor loraB, double relativeError) {}

    /**
     * QLoRA: Q = quant(W); A uniform in ±1/√in (peft's default {@code kaiming_uniform_(a=√5)}),
     * seeded per layer from {@code seed} and the path; B = 0, so the wrapped model starts with
     * the full quantization error.
     */
    static LoraInitializer qlora(long seed) {
        return new LoraInitializer() {
            @Override
            public Init initialize(TensorScope scope, Tensor w, String path, LoraSpec spec) {
                int out = w.dim(0);
                int in = w.dim(1);
                Initializers.requireRank(path, out, in, spec.rank());
                QuantizedTensor q = spec.quantizer().quantize(scope, w, path + ".weight");
                float bound = (float) (1.0 / Math.sqrt(in));
                SplittableRandom rnd = new SplittableRandom(seed ^ (path.hashCode() * 0x9E3779B97F4A7C15L));
                float[] a = new float[spec.rank() * in];
                for (int i = 0; i < a.length; i++) {
                    a[i] = (float) ((rnd.nextDouble() * 2 - 1) * bound);
                }
                Tensor loraA = scope.fromHost(a, spec.rank(), in);
                Tensor loraB = scope.fromHost(new float[out * spec.rank()], out, spec.rank());
                double error;
                try (TensorScope tmp = scope.newChild()) {
                    double norm = tmp.sumOfSquares(w);
                    double diff = tmp.sumOfSquares(tmp.sub(w, q.dequantize(tmp)));
                    error = norm == 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
                }
                return new Init(q, loraA, loraB, error);
            }

            @Override
            public String toString() {
                return "qlora(seed=" + seed + ")";
            }
        };
    }

    /**
     * LoftQ with {@code iterations} alternating steps and the published settings otherwise
     * ({@link LoftqConfig#published}), the spec's quantizer, rank, alpha and rsLoRA; the A and B
     * are split scaling-aware, so that {@code s·B·A} is the fitted low-rank term.
     */
    static LoraInitializer loftq(int iterations, long seed) {
        Checks.inRange("iterations", iterations, 1, 1000);
        return new LoraInitializer() {
            @Override
            public Init initialize(TensorScope scope, Tensor w, String path, LoraSpec spec) {
                Initializers.requireRank(path, w.dim(0), w.dim(1), spec.rank());
                LoftqConfig config = LoftqConfig.published(spec.quantizer(), spec.rank()).toBuilder()
                        .iterations(iterations).loraAlpha(spec.alpha()).rsLora(spec.rsLora())
                        .seed(seed ^ path.hashCode()).build();
                LoftqResult r = Loftq.initialize(scope, w, path + ".weight", config);
                return new Init(r.quantized(), r.loraA(), r.loraB(), r.error());
            }

            @Override
            public String toString() {
                return "loftq(T=" + iterations + ", seed=" + seed + ")";
            }
        };
    }
}
