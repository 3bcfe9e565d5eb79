package dev.loftq.core.tensor;

/** Element types of the tensor SPI. Compute is float32; packed codes are uint8; masks are bool. */
public enum DType {
    /** IEEE-754 binary32. The compute type of every arithmetic operation. */
    FLOAT32(4),
    /** Unsigned 8-bit integers: quantization codes and packed bytes. */
    UINT8(1),
    /** Results of comparisons, consumed by {@code where}. */
    BOOL(1);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }
}
