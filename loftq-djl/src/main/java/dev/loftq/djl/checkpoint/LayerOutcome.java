package dev.loftq.djl.checkpoint;

/**
 * What LoftQ did to one layer, shown to a {@link LayerCallback} before the replacement is kept.
 *
 * @param module the module path, e.g. {@code model.layers.0.self_attn.q_proj}
 * @param shape {@code [out, in]}
 * @param bits 2, 3 or 4
 * @param rank the LoRA rank
 * @param qloraError ‖W − deq(quant(W))‖ / ‖W‖: the error QLoRA starts from (B = 0)
 * @param loftqErrors ‖W − Q_t − s·B_t·A_t‖ / ‖W‖ after each step t = 1..T
 * @param returnedStep the step LoftQ returns (1-based)
 */
public record LayerOutcome(String module, int[] shape, int bits, int rank, double qloraError,
        double[] loftqErrors, int returnedStep) {
    /** Copies the arrays. */
    public LayerOutcome {
        shape = shape.clone();
        loftqErrors = loftqErrors.clone();
    }

    /** The error of the returned step. */
    public double loftqError() {
        return loftqErrors[returnedStep - 1];
    }

    @Override
    public int[] shape() {
        return shape.clone();
    }

    @Override
    public double[] loftqErrors() {
        return loftqErrors.clone();
    }
}
