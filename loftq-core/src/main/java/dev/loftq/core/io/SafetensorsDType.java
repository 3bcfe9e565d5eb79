package dev.loftq.core.io;

import java.util.Arrays;

/**
 * The safetensors element types this library reads and writes, with their on-disk names and
 * sizes. All are stored little-endian. Other dtypes of the format (I8, I16, U16, BOOL, F8_*, …) are
 * rejected when a file is read.
 */
public enum SafetensorsDType {
    /** IEEE-754 binary64. */
    F64(8),
    /** IEEE-754 binary32. */
    F32(4),
    /** IEEE-754 binary16; read as float32 (exact). */
    F16(2),
    /** bfloat16 (the top half of a binary32); read as float32 (exact). */
    BF16(2),
    /** Signed 64-bit integers. */
    I64(8),
    /** Signed 32-bit integers. */
    I32(4),
    /** Unsigned bytes. */
    U8(1);

    private final int byteSize;

    SafetensorsDType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    /** True for the floating-point types. */
    public boolean isFloatingPoint() {
        return this == F64 || this == F32 || this == F16 || this == BF16;
    }

    /**
     * The dtype named {@code name} in a header ({@code "F32"}, …).
     *
     * @throws IllegalArgumentException for a name this library does not support, listing the
     *     supported ones
     */
    public static SafetensorsDType fromName(String name) {
        for (SafetensorsDType d : values()) {
            if (d.name().equals(name)) {
                return d;
            }
        }
        throw new IllegalArgumentException("dtype must be one of " + Arrays.toString(values())
                + ", got '" + name + "'");
    }
}
