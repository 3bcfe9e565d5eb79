package dev.loftq.core.tensor;

/** How {@link TensorScope#encode} normalises a value by its block scale before bucketing. */
public enum ScaleMode {
    /** {@code xn = f32(x * f32(1 / scale))}: bitsandbytes' kernels. */
    MULTIPLY_RECIPROCAL,
    /** {@code xn = f32(x / scale)}: the native LoftQ NFQuantizer and PyTorch-style code. */
    DIVIDE
}
