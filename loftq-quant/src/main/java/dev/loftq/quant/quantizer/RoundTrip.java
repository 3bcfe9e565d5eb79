package dev.loftq.quant.quantizer;

import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;

/**
 * One quantization round trip of a weight, {@code deq(quant(w))}, with the quantized tensor made
 * only on demand: what an alternating loop such as LoftQ needs at every step, while it keeps the
 * quantized form of one step at most. Made by {@link Quantizer#roundTrip}; not thread-safe.
 */
public interface RoundTrip {
    /**
     * {@code deq(quant(w))}, FLOAT32 in w's shape, bit for bit {@code dequantize(quantize(w))};
     * owned by the scope the round trip was made in, which must still be open.
     */
    Tensor dequantized();

    /**
     * {@code from − dequantized()} bit for bit, owned by {@code scope}: the residual an
     * alternating loop needs. A codebook quantizer computes it in one pass, without the dequantized
     * tensor.
     *
     * @param from FLOAT32 in w's shape; not modified
     * @throws IllegalArgumentException if {@code from} has another shape or dtype
     */
    default Tensor residual(TensorScope scope, Tensor from) {
        Inputs.requireShape("residual", "from", from, dequantized().shape());
        return scope.sub(from, dequantized());
    }

    /**
     * Moves what {@link #quantized} needs (not {@link #dequantized()}) into {@code target}, so it
     * survives the scope the round trip was made in; returns this.
     */
    RoundTrip keep(TensorScope target);

    /**
     * The quantized tensor, equal to {@link Quantizer#quantize}'s result for the same weight (same
     * bytes and scales), owned by {@code scope}: the kept tensors it shares (scales) move there,
     * so call it once.
     *
     * @throws IllegalStateException if the tensors it needs were freed (keep them first)
     */
    QuantizedTensor quantized(TensorScope scope);

    /**
     * A round trip whose quantized tensor already exists; {@link #quantized} moves it into the
     * given scope and returns it.
     */
    static RoundTrip of(QuantizedTensor quantized, Tensor dequantized) {
        return new RoundTrip() {
            @Override
            public Tensor dequantized() {
                return dequantized;
            }

            @Override
            public RoundTrip keep(TensorScope target) {
                quantized.keep(target);
                return this;
            }

            @Override
            public QuantizedTensor quantized(TensorScope scope) {
                return quantized.keep(scope);
            }
        };
    }
}
