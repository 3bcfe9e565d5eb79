package dev.loftq.quant.quantizer;

import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;

/**
 * A weight quantizer written over the tensor SPI, so it runs on every backend. The built-in ones
 * are {@link CodebookQuantizer} (bitsandbytes NF4/FP4, LoftQ's native NF-k and uniform),
 * {@link IntAffineQuantizer} and {@link Int8RowwiseQuantizer}; any other implementation works
 * wherever a quantizer is accepted, as long as it keeps this contract:
 * <ul>
 *   <li>{@link #quantize} does not modify {@code w}; every tensor of its result is owned by
 *       {@code scope} (or a scope of the same backend that outlives it); the result's
 *       {@link QuantizedTensor#quantizer()} is this quantizer.</li>
 *   <li>{@link #dequantize} returns a FLOAT32 tensor of {@code q.shape()}, owned by {@code scope},
 *       and is deterministic.</li>
 *   <li>Implementations are immutable and thread-safe (scopes are not: use one per thread).</li>
 * </ul>
 */
public interface Quantizer {
    /**
     * Quantizes {@code w}.
     *
     * @param scope owns the result; temporaries are freed before returning
     * @param w FLOAT32, rank >= 1, at least one element, every value finite; not modified
     * @param name names {@code w} in error messages, e.g. {@code "layers.0.q_proj.weight"}
     * @throws IllegalArgumentException if {@code w} has a NaN or infinite value (naming the tensor,
     *     the flat index of the first one and its value), is rank 0 or empty, or does not fit the
     *     quantizer's layout (the message says what is allowed)
     */
    QuantizedTensor quantize(TensorScope scope, Tensor w, String name);

    /**
     * The float32 values {@code q} stands for, in {@code q.shape()}.
     *
     * @param scope owns the result
     * @param q made by this quantizer (or an equal one); not modified
     * @throws IllegalArgumentException if {@code q} was made by a different quantizer
     */
    Tensor dequantize(TensorScope scope, QuantizedTensor q);

    /**
     * {@code dequantize(quantize(w))}, with the quantized tensor made on demand. The default does
     * exactly that; a quantizer may skip the packing and unpacking in between, as long as both
     * results stay bit for bit those of {@link #quantize} and {@link #dequantize}.
     *
     * @param scope owns the round trip's tensors
     * @throws IllegalArgumentException as {@link #quantize}
     */
    default RoundTrip roundTrip(TensorScope scope, Tensor w, String name) {
        QuantizedTensor q = quantize(scope, w, name);
        return RoundTrip.of(q, dequantize(scope, q));
    }

    /** Width of one code in the packed stream, in bits. */
    int bits();

    /** A one-line human-readable description, e.g. "bitsandbytes NF4, block 64". */
    String description();
}
