package dev.loftq.core.tensor;

import java.util.Optional;

/**
 * A tensor engine behind the SPI. Algorithms receive a backend explicitly (never from a global)
 * and do all their work inside scopes opened from it.
 *
 * <p>Implementations: the pure-Java reference backend in {@code dev.loftq.core.ref} and the DJL
 * (PyTorch) backend in {@code loftq-djl}. Their agreement is checked by the backend test kit in
 * this module's test-jar.
 */
public interface Backend {
    /** A short name for reports, e.g. {@code "reference"} or {@code "djl-pytorch"}. */
    String name();

    /** Where tensors live, e.g. {@code "cpu"} or {@code "gpu(0)"}. */
    String device();

    /**
     * A new root scope. Every tensor created through it (or its children) is freed when it closes.
     * Scopes are not thread-safe: use one per thread, or synchronise.
     */
    TensorScope newScope();

    /** The autograd capability, if this backend has one (ApiQ needs it). */
    default Optional<Autograd> autograd() {
        return Optional.empty();
    }

    /** Convenience for {@code autograd().isPresent()}. */
    default boolean hasAutograd() {
        return autograd().isPresent();
    }
}
