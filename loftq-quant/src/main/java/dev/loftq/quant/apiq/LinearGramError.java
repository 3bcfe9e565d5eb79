package dev.loftq.quant.apiq;

import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.Map;

/**
 * A {@link LinearTarget}'s squared error on fixed samples through their sufficient statistics, so
 * that each evaluation costs {@code out·in²} instead of {@code tokens·out·in} multiply-adds (ApiQ-lw
 * evaluates it at every step of every Linear, on about four times as many tokens as inputs).
 *
 * <p>With X the stacked inputs [tokens, in], Y the target outputs, W the full-precision weight and
 * Δ = W_eff − W, the residual is {@code X·Δᵀ + R0} with {@code R0 = X·Wᵀ + b − Y}, so
 * <pre>
 *   ‖X·W_effᵀ + b − Y‖² = Σ (Δ·G) ⊙ Δ + 2 Σ Hᵀ ⊙ Δ + ‖R0‖²,   G = XᵀX [in, in], Hᵀ = R0ᵀ·X [out, in]
 *   aug term ‖X·Δᵀ‖² = Σ (Δ·G) ⊙ Δ
 * </pre>
 * The same function as running the layer on the tokens; only the float rounding differs. Expanding
 * around the full-precision weight instead of around zero keeps the three terms of the size of the
 * error itself, so their sum does not lose digits to cancellation.
 */
final class LinearGramError implements SquaredError {
    private final Tensor weight;
    private final Tensor gram;
    private final Tensor twiceCross;
    private final float residualSquares;
    private final boolean aug;
    private final long count;

    /**
     * @param owner owns the statistics
     * @param input X, FLOAT32 [tokens, in]; not modified
     * @param output Y, FLOAT32 [tokens, out]; not modified
     */
    LinearGramError(TensorScope owner, LinearTarget target, Tensor input, Tensor output, boolean aug) {
        this.weight = target.weights().get(LinearTarget.WEIGHT);
        this.aug = aug;
        this.count = output.numel();
        this.gram = owner.matmul(input, true, input, false);
        try (TensorScope tmp = owner.newChild()) {
            Tensor residual = tmp.sub(target.forward(tmp, input, target.weights()), output);
            this.residualSquares = (float) tmp.sumOfSquares(residual);
            this.twiceCross = owner.keep(tmp.mul(tmp.matmul(residual, true, input, false), 2f));
        }
    }

    /** Whether the statistics are cheaper than the tokens: fewer input features than tokens. */
    static boolean pays(Tensor input) {
        return input.dim(1) < input.dim(0);
    }

    @Override
    public Tensor sum(TensorScope s, Map<String, Tensor> weights) {
        Tensor delta = s.sub(weights.get(LinearTarget.WEIGHT), weight);
        Tensor quadratic = s.matmul(delta, gram);
        if (aug) {
            quadratic = s.mul(quadratic, 2f);
        }
        Tensor terms = s.mul(s.add(quadratic, twiceCross), delta);
        return s.add(s.sumLast(s.reshape(terms, (int) terms.numel())), residualSquares);
    }

    @Override
    public long count() {
        return count;
    }
}
