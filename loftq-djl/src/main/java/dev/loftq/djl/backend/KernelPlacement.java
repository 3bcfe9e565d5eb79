package dev.loftq.djl.backend;

/**
 * Where {@link DjlBackend} runs the coarse whole-matrix operations that have both a host and a
 * PyTorch implementation: {@code blockAbsMax}, {@code gather}, {@code decode} and
 * {@code sumOfSquares}. Both give the same bits ({@code sumOfSquares} up to summation order).
 * {@code encode}, {@code pack} and {@code unpack} always run on the host (DJL has no bucketing or
 * bit operations).
 */
public enum KernelPlacement {
    /**
     * Copy the operands to the host, run {@link dev.loftq.core.tensor.HostKernels} (or a plain
     * loop) and upload the result. The default on the CPU: each PyTorch temporary is a fresh
     * allocation whose page faults cost more than the copies (64 MB decode: ~0.3 s on the host
     * against ~1.3 s as PyTorch operations, 2 busy cores).
     */
    HOST,
    /** PyTorch operations on the device, no host copy. The default on a GPU. */
    DEVICE;

    /** The default for a device: {@link #DEVICE} on a GPU, else {@link #HOST}. */
    static KernelPlacement defaultFor(ai.djl.Device device) {
        return device.isGpu() ? DEVICE : HOST;
    }
}
