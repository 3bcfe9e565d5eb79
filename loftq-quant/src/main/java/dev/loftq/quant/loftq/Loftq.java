package dev.loftq.quant.loftq;

import dev.loftq.core.Checks;
import dev.loftq.core.linalg.LowRank;
import dev.loftq.core.linalg.LowRankFactors;
import dev.loftq.core.linalg.LowRankOptions;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.quantizer.Grouping;
import dev.loftq.quant.quantizer.IntAffineQuantizer;
import dev.loftq.quant.quantizer.Quantizer;
import dev.loftq.quant.quantizer.RoundTrip;
import java.util.Arrays;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * LoftQ: LoRA-fine-tuning-aware quantization (Li et al., ICLR 2024). Alternates
 * {@code Q ← quant(W − s·B·A)} and {@code (B, A) ← rank-r SVD of (W − Q)} for T steps so that
 * {@code ‖W − Q − s·B·A‖_F} is small, instead of QLoRA's start {@code B = 0} with the full
 * quantization error. Written once over the tensor SPI: the big products and the quantizer run on
 * the backend, the small factorizations on the host ({@link LowRank}).
 *
 * <p>Memory: besides W, a step holds its target, the residual W − Q (a codebook quantizer never
 * forms Q itself) and, briefly, the rank-r product and the next target (at most five matrices of
 * W's size at once, with W); only the next target and the factors outlive the step. The error of
 * a step needs no product (Pythagoras, see squaredErrorAfter), so the last step forms none.
 * The step to be returned keeps its codes unpacked (a byte per element with a codebook quantizer)
 * and packs them once, at the end.
 */
public final class Loftq {
    private static final Logger LOG = LoggerFactory.getLogger(Loftq.class);

    private Loftq() {}

    /**
     * Runs LoftQ on one weight.
     *
     * @param scope owns the result's tensors; temporaries are freed before returning
     * @param w the weight, FLOAT32 [out, in], finite; not modified
     * @param name names {@code w} in errors and logs
     * @param config quantizer, rank, T, scaling, low-rank mode
     * @throws IllegalArgumentException for a weight that is not 2-D FLOAT32, a rank above
     *     min(out, in), or a non-finite value (from the quantizer, naming the flat index)
     */
    public static LoftqResult initialize(TensorScope scope, Tensor w, String name,
            LoftqConfig config) {
        Checks.notNull("config", config);
        requireMatrix(w, name, config.rank());
        Quantizer quantizer = OptimalScales.quantizerFor(config);
        float s = config.scaling();
        int steps = config.iterations();
        double[] errors = new double[steps];
        double qloraError = Double.NaN;
        try (TensorScope work = scope.newChild()) {
            double norm = Math.sqrt(work.sumOfSquares(w));
            // What one step hands to the next (its target and its factors for the warm start);
            // everything else of a step is freed when the step ends.
            TensorScope carry = null;
            TensorScope bestScope = null;
            RoundTrip bestQ = null;
            LowRankFactors bestFactors = null;
            LowRankFactors warm = null;
            Tensor target = w;
            int returned = 0;
            for (int t = 1; t <= steps; t++) {
                TensorScope next = work.newChild();
                try (TensorScope step = work.newChild()) {
                    // Packed only for the step returned: a round trip skips pack and unpack.
                    RoundTrip q = quantizer.roundTrip(step, target, name);
                    Tensor residual = q.residual(step, w);
                    double residualSquares = step.sumOfSquares(residual);
                    if (t == 1) {
                        qloraError = quantizer.equals(config.quantizer())
                                ? relative(residualSquares, norm)
                                : qloraError(step, w, name, config.quantizer(), norm);
                    }
                    LowRankFactors f = LowRank.truncatedSvd(step, residual, config.rank(),
                            config.lowRank(), warm, config.seed() + t);
                    errors[t - 1] = relative(squaredErrorAfter(step, residual,
                            residualSquares, f), norm);
                    LOG.debug("{}: step {} error {}", name, t, errors[t - 1]);
                    boolean take = config.keepBest()
                            ? returned == 0 || errors[t - 1] < errors[returned - 1]
                            : t == steps;
                    if (take) {
                        if (bestScope != null) {
                            bestScope.close();
                        }
                        bestScope = work.newChild();
                        bestQ = q.keep(bestScope);
                        bestFactors = keep(bestScope, f);
                        returned = t;
                    }
                    if (t < steps) {
                        target = next.keep(step.sub(w, product(step, f)));
                        // Taken factors live in bestScope, which a later step closes only after
                        // its own low-rank step has used them.
                        warm = take ? bestFactors : keep(next, f);
                    }
                }
                if (carry != null) {
                    carry.close();
                }
                carry = next;
            }
            Tensor[] ab = split(scope, bestFactors, s);
            return new LoftqResult(bestQ.quantized(scope), ab[0], ab[1], s, qloraError, errors,
                    returned, config);
        }
    }

    /**
     * ‖M − U·S·Vᵀ‖²: the low-rank factors are a projection of M (U·S·Vᵀ = U·Uᵀ·M, see
     * {@link LowRank}), so by Pythagoras it is ‖M‖² − Σσᵢ², without forming the product. The
     * difference loses digits when the factors capture nearly all of M (then, for a relative
     * accuracy of ~1e-5, the product is formed instead).
     */
    private static double squaredErrorAfter(TensorScope scope, Tensor m, double squares,
            LowRankFactors f) {
        double captured = 0;
        for (double sigma : f.singularValues()) {
            captured += sigma * sigma;
        }
        double remaining = squares - captured;
        if (remaining >= squares / 100) {
            return remaining;
        }
        try (TensorScope tmp = scope.newChild()) {
            return tmp.sumOfSquares(tmp.sub(m, product(tmp, f)));
        }
    }

    /** The factors with U and V moved into {@code scope}. */
    private static LowRankFactors keep(TensorScope scope, LowRankFactors f) {
        return new LowRankFactors(scope.keep(f.u()), f.singularValues(), scope.keep(f.v()),
                f.iterations());
    }

    /**
     * Adapters for a backbone quantized by anything (GPTQ, AWQ, HQQ, a bitsandbytes checkpoint):
     * one low-rank step on {@code W − Q}.
     *
     * @param scope owns A and B
     * @param w the full-precision weight, FLOAT32 [out, in]; not modified
     * @param q the dequantized backbone weight, FLOAT32 [out, in]; not modified
     * @param rank r in [1, min(out, in)]
     * @param scaling s > 0 of the LoRA forward {@code s·B·A}
     * @param lowRank fast or exact
     * @param seed seeds the randomized sketch
     * @throws IllegalArgumentException when W and Q differ in shape, or for a bad rank or scaling
     */
    public static LoraFactors adaptersFor(TensorScope scope, Tensor w, Tensor q, int rank,
            float scaling, LowRankOptions lowRank, long seed) {
        requireMatrix(w, "W", rank);
        if (!Arrays.equals(w.shape(), q.shape()) || q.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException("adaptersFor: Q must be FLOAT32 of W's shape "
                    + Arrays.toString(w.shape()) + ", got " + q.dtype() + " "
                    + Arrays.toString(q.shape()));
        }
        Checks.positive("scaling", scaling);
        try (TensorScope work = scope.newChild()) {
            double norm = Math.sqrt(work.sumOfSquares(w));
            Tensor residual = work.sub(w, q);
            double before = relative(work.sumOfSquares(residual), norm);
            LowRankFactors f = LowRank.truncatedSvd(work, residual, rank, lowRank, null, seed);
            double after = relative(work.sumOfSquares(work.sub(residual, product(work, f))), norm);
            Tensor[] ab = split(scope, f, scaling);
            return new LoraFactors(ab[0], ab[1], scaling, before, after);
        }
    }

    /**
     * The popular tutorial recipe, as a baseline for comparison tables: Q is per-tensor 8-bit
     * min-max affine quantization, A a random matrix with orthonormal rows, and B the least-squares
     * fit of {@code s·B·A} to {@code W − Q} for that A (B = (W − Q)·Aᵀ / s).
     *
     * @param scope owns the result
     * @param w FLOAT32 [out, in]; not modified
     * @return Q's dequantized error and the fitted factors; Q itself via {@link #tutorialQuantizer()}
     */
    public static LoraFactors tutorialBaseline(TensorScope scope, Tensor w, int rank, float scaling,
            long seed) {
        requireMatrix(w, "W", rank);
        Checks.positive("scaling", scaling);
        int in = w.dim(1);
        try (TensorScope work = scope.newChild()) {
            double norm = Math.sqrt(work.sumOfSquares(w));
            Tensor q = tutorialQuantizer().quantize(work, w, "W").dequantize(work);
            Tensor residual = work.sub(w, q);
            double before = relative(work.sumOfSquares(residual), norm);
            // Orthonormal rows for A: the left factor of a random [in, r] Gaussian's thin SVD.
            Tensor gaussian = work.randomNormal(seed, 0f, 1f, in, rank);
            LowRankFactors basis = LowRank.truncatedSvd(work, gaussian, rank,
                    LowRankOptions.exactDefaults(), null, seed);
            Tensor a = work.transpose(basis.u()); // [r, in], orthonormal rows
            Tensor b = work.div(work.matmul(residual, false, a, true), scaling); // [out, r]
            Tensor fit = work.mul(work.matmul(b, a), scaling);
            double after = relative(work.sumOfSquares(work.sub(residual, fit)), norm);
            return new LoraFactors(scope.keep(a), scope.keep(b), scaling, before, after);
        }
    }

    /** Per-tensor asymmetric 8-bit min-max quantization: the tutorial recipe's Q. */
    public static Quantizer tutorialQuantizer() {
        return IntAffineQuantizer.builder(8).grouping(Grouping.perTensor()).build();
    }

    /** ‖W − deq(quant(W))‖ / ‖W‖ with the configured quantizer: QLoRA's starting error. */
    private static double qloraError(TensorScope scope, Tensor w, String name, Quantizer quantizer,
            double norm) {
        try (TensorScope tmp = scope.newChild()) {
            return relative(tmp.sumOfSquares(quantizer.roundTrip(tmp, w, name).residual(tmp, w)),
                    norm);
        }
    }

    /** U·diag(S)·Vᵀ. */
    private static Tensor product(TensorScope scope, LowRankFactors f) {
        Tensor us = scope.mul(f.u(), scope.fromHost(toFloat(f.singularValues()), f.rank()));
        return scope.matmul(us, false, f.v(), true);
    }

    /** B = U·√S / √s [out, r] and A = √S·Vᵀ / √s [r, in], so that s·B·A = U·S·Vᵀ. */
    private static Tensor[] split(TensorScope scope, LowRankFactors f, float s) {
        double[] sv = f.singularValues();
        float[] root = new float[sv.length];
        for (int i = 0; i < root.length; i++) {
            root[i] = (float) Math.sqrt(Math.max(sv[i], 0) / s);
        }
        try (TensorScope tmp = scope.newChild()) {
            Tensor r = tmp.fromHost(root, root.length);
            Tensor b = tmp.mul(f.u(), r);
            Tensor a = tmp.transpose(tmp.mul(f.v(), r));
            return new Tensor[] {scope.keep(a), scope.keep(b)};
        }
    }

    private static float[] toFloat(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < f.length; i++) {
            f[i] = (float) d[i];
        }
        return f;
    }

    private static double relative(double squaredError, double norm) {
        return norm > 0 ? Math.sqrt(squaredError) / norm : 0.0;
    }

    private static void requireMatrix(Tensor w, String name, int rank) {
        Checks.notNull("w", w);
        if (w.rank() != 2 || w.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException("tensor " + name + " must be a 2-D FLOAT32 weight "
                    + "[out, in], got " + w.dtype() + " " + Arrays.toString(w.shape()));
        }
        Checks.inRange("rank", rank, 1, Math.min(w.dim(0), w.dim(1)));
    }
}
