package dev.loftq.core.tensor;

/** Where the first of the codes sharing a byte goes. */
public enum PackOrder {
    /** First element in the most significant bits (bitsandbytes 4-bit: high nibble first). */
    MSB_FIRST,
    /** First element in the least significant bits (native LoftQ NFQuantizer, "LIFO"). */
    LSB_FIRST
}
