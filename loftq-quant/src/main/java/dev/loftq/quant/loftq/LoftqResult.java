package dev.loftq.quant.loftq;

import dev.loftq.core.tensor.Tensor;
import dev.loftq.quant.quantizer.QuantizedTensor;

/**
 * What {@link Loftq#initialize} returns: the quantized weight and the LoRA factors such that
 * {@code deq(Q) + s·B·A ≈ W}, with the error trace. The tensors belong to the scope passed to
 * {@code initialize}.
 *
 * @param quantized Q, packed
 * @param loraA A, FLOAT32 [r, in] (peft {@code lora_A})
 * @param loraB B, FLOAT32 [out, r] (peft {@code lora_B})
 * @param scaling s used for the split
 * @param qloraError ‖W − deq(quant(W))‖ / ‖W‖ with the configured quantizer (absmax scales):
 *     the QLoRA start (B = 0)
 * @param errors ‖W − deq(Q_t) − s·B_t·A_t‖ / ‖W‖ after each step t = 1..T
 * @param returnedStep the step whose Q, A, B are returned (1-based): the last one, or the best
 *     with keep-best
 * @param config the configuration that produced it
 */
public record LoftqResult(QuantizedTensor quantized, Tensor loraA, Tensor loraB, float scaling,
        double qloraError, double[] errors, int returnedStep, LoftqConfig config) {

    public LoftqResult {
        errors = errors.clone();
    }

    /** The per-step errors (a copy). */
    @Override
    public double[] errors() {
        return errors.clone();
    }

    /** The error of the returned step. */
    public double error() {
        return errors[returnedStep - 1];
    }
}
