package dev.loftq.djl.checkpoint;

/**
 * Accepts or rolls back each layer's LoftQ replacement, as the callback of peft's
 * {@code replace_lora_weights_loftq} does. A rolled-back layer gets the QLoRA initialisation
 * instead: Q = the plain quantization of W (absmax block scales), A = a seeded Kaiming-uniform
 * matrix (bound 1/√in, as {@code nn.Linear} and peft initialise {@code lora_A}), B = 0.
 *
 * <p>Called from worker threads, possibly concurrently; implementations must be thread-safe and,
 * for resumable runs to give identical output, deterministic. A decision is persisted with the
 * layer's result, so a resumed run does not ask again for finished layers.
 */
@FunctionalInterface
public interface LayerCallback {
    /** Accepts every replacement. */
    LayerCallback ACCEPT_ALL = outcome -> true;

    /** Rolls back layers where LoftQ does not beat QLoRA's error. */
    LayerCallback ACCEPT_IF_BETTER = outcome -> outcome.loftqError() < outcome.qloraError();

    /** True to keep LoftQ's Q, A, B for this layer; false to roll back to the QLoRA start. */
    boolean accept(LayerOutcome outcome);
}
