package dev.loftq.quant.quantizer;

import dev.loftq.core.Checks;
import java.util.Arrays;

/**
 * Which elements share a scale (and zero point) in integer quantization. A weight is viewed as
 * {@code [rows, in]} with {@code in} its last axis and {@code rows} the product of the others (a
 * 1-D tensor is one row). Groups run along the input axis, as in GPTQ and ApiQ, so in the row-major
 * flattening every group is a block of consecutive elements. Immutable.
 */
public final class Grouping {
    private static final int PER_TENSOR = -1;
    private static final int PER_ROW = 0;

    private final int groupSize;

    private Grouping(int groupSize) {
        this.groupSize = groupSize;
    }

    /** One scale for the whole tensor. */
    public static Grouping perTensor() {
        return new Grouping(PER_TENSOR);
    }

    /** One scale per row (output channel). */
    public static Grouping perRow() {
        return new Grouping(PER_ROW);
    }

    /**
     * One scale per {@code groupSize} consecutive elements of a row; the input dimension must be a
     * multiple of it (checked at quantization).
     *
     * @param groupSize in [1, 2^20]
     */
    public static Grouping ofSize(int groupSize) {
        return new Grouping(Checks.inRange("groupSize", groupSize, 1, 1 << 20));
    }

    /**
     * Elements per group for a tensor of {@code shape} (rank >= 1) with {@code numel} elements.
     *
     * @throws IllegalArgumentException if the group size does not divide the last axis
     */
    int elementsPerGroup(int[] shape, int numel, String name) {
        int in = shape[shape.length - 1];
        return switch (groupSize) {
            case PER_TENSOR -> numel;
            case PER_ROW -> in;
            default -> {
                if (in % groupSize != 0) {
                    throw new IllegalArgumentException("group size " + groupSize + " must divide "
                            + "the input dimension (last axis) of tensor " + name + ", got shape "
                            + Arrays.toString(shape));
                }
                yield groupSize;
            }
        };
    }

    /** {@code "tensor"}, {@code "row"} or {@code "g128"}. */
    String id() {
        return switch (groupSize) {
            case PER_TENSOR -> "tensor";
            case PER_ROW -> "row";
            default -> "g" + groupSize;
        };
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Grouping g && g.groupSize == groupSize;
    }

    @Override
    public int hashCode() {
        return groupSize;
    }

    @Override
    public String toString() {
        return switch (groupSize) {
            case PER_TENSOR -> "per tensor";
            case PER_ROW -> "per row";
            default -> "groups of " + groupSize;
        };
    }
}
