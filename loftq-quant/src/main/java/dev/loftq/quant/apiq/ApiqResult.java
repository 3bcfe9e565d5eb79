package dev.loftq.quant.apiq;

import dev.loftq.core.tensor.Tensor;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.util.Map;

/**
 * What ApiQ learned for one target, with the best parameters seen (lowest held-out loss). Errors
 * are relative output errors {@code Σ‖f_q(X_q) − f_fp(X_fp)‖² / Σ‖f_fp(X_fp)‖²} over the
 * calibration (training) or held-out samples, with the stored {@code deq(Q) + s·B·A}; NaN where
 * there were no held-out samples.
 *
 * @param target the target's name
 * @param weights per weight name, in the target's order
 * @param scaling the LoRA scaling s
 * @param trainLoss the mean squared error of each step's batch, before its update
 * @param evalLoss the selection loss (held-out, or training if none) at each evaluation
 * @param evalSteps the step of each evaluation
 * @param bestStep the step whose parameters are kept
 * @param startError calibration error at step 0
 * @param calibrationError calibration error of the result
 * @param heldOutStartError held-out error at step 0
 * @param heldOutError held-out error of the result
 */
public record ApiqResult(String target, Map<String, Weight> weights, float scaling,
        double[] trainLoss, double[] evalLoss, int[] evalSteps, int bestStep, double startError,
        double calibrationError, double heldOutStartError, double heldOutError) {

    /**
     * One learned weight. {@code deq(quantized) + scaling·loraB·loraA} replaces W.
     *
     * @param quantized Q, from the learned clipping
     * @param loraA A [r, in]
     * @param loraB B [out, r]
     * @param gamma learned clipping logits of the group maxima [groups], or of the block absmax
     *     [blocks] for NF-k (Q is a function of W, gamma and beta, which is what a resumed run
     *     stores)
     * @param beta learned clipping logits of the group minima [groups]; null for NF-k
     */
    public record Weight(QuantizedTensor quantized, Tensor loraA, Tensor loraB, Tensor gamma,
            Tensor beta) {}
}
