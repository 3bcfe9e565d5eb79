package dev.loftq.djl.checkpoint;

/**
 * Receives progress of a {@link CheckpointQuantizer} run (the CLI draws a progress bar from it).
 * Called from worker threads, possibly concurrently; implementations must be thread-safe and
 * quick. Library code never prints: this is how a caller shows progress.
 */
public interface ProgressListener {
    /** Does nothing. */
    ProgressListener NONE = new ProgressListener() {};

    /**
     * The run starts.
     *
     * @param targets number of target tensors
     * @param targetBytes their size in the input checkpoint
     * @param resumed how many of them were finished by an earlier run and are skipped
     */
    default void started(int targets, long targetBytes, int resumed) {}

    /**
     * One target tensor is finished (or was found finished).
     *
     * @param bytes its size in the input checkpoint
     * @param skipped true if an earlier run had finished it
     */
    default void tensorDone(String module, long bytes, boolean skipped) {}

    /** The output files are being assembled (after the last tensor). */
    default void assembling() {}
}
