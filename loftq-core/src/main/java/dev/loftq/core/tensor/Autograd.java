package dev.loftq.core.tensor;

/**
 * Optional reverse-mode differentiation over SPI operations, for algorithms that learn parameters
 * (ApiQ). Usage:
 *
 * <pre>{@code
 * autograd.requireGradient(a);
 * try (Autograd.Tape tape = autograd.record()) {
 *     Tensor loss = ...;            // any SPI ops on a
 *     tape.backward(loss);
 * }
 * Tensor g = autograd.gradient(a);  // same shape as a
 * }</pre>
 */
public interface Autograd {
    /** Marks a float32 tensor as a leaf whose gradient is wanted; resets any earlier gradient. */
    void requireGradient(Tensor leaf);

    /** Starts recording operations on this thread until the tape is closed. */
    Tape record();

    /** The gradient accumulated in {@code leaf} by the last backward pass; owned by leaf's scope. */
    Tensor gradient(Tensor leaf);

    /** The same values as {@code t}, cut from the graph (no gradient flows through it). */
    Tensor stopGradient(TensorScope scope, Tensor t);

    /** A recording of operations. */
    interface Tape extends AutoCloseable {
        /** Back-propagates from a rank-0 (or single-element) float32 loss. */
        void backward(Tensor loss);

        @Override
        void close();
    }
}
