package dev.loftq.core;

import java.util.Arrays;

/**
 * Argument validation with one message shape everywhere: what was checked, the value seen, what is
 * allowed. Every check throws {@link IllegalArgumentException}.
 */
public final class Checks {
    private Checks() {}

    /** Requires {@code min <= value <= max}: "rank must be in [1, 4096], got 0". */
    public static int inRange(String name, int value, int min, int max) {
        if (value < min || value > max) {
            throw new IllegalArgumentException(
                    name + " must be in [" + min + ", " + max + "], got " + value);
        }
        return value;
    }

    /** Requires {@code value > 0} and finite. */
    public static float positive(String name, float value) {
        if (!(value > 0f) || Float.isInfinite(value)) {
            throw new IllegalArgumentException(name + " must be finite and > 0, got " + value);
        }
        return value;
    }

    /** Requires {@code value > 0} and finite. */
    public static double positive(String name, double value) {
        if (!(value > 0d) || Double.isInfinite(value)) {
            throw new IllegalArgumentException(name + " must be finite and > 0, got " + value);
        }
        return value;
    }

    /** Requires a finite value. */
    public static float finite(String name, float value) {
        if (!Float.isFinite(value)) {
            throw new IllegalArgumentException(name + " must be finite, got " + value);
        }
        return value;
    }

    /** Requires {@code value} to be one of {@code allowed}. */
    public static int oneOf(String name, int value, int... allowed) {
        for (int a : allowed) {
            if (a == value) {
                return value;
            }
        }
        throw new IllegalArgumentException(
                name + " must be one of " + Arrays.toString(allowed) + ", got " + value);
    }

    /** Requires a non-null reference. */
    public static <T> T notNull(String name, T value) {
        if (value == null) {
            throw new IllegalArgumentException(name + " must not be null");
        }
        return value;
    }

    /**
     * Index of the first NaN or infinite value, or -1 if all are finite. Used to report "tensor W has
     * NaN at flat index 17".
     */
    public static int firstNonFinite(float[] values) {
        for (int i = 0; i < values.length; i++) {
            if (!Float.isFinite(values[i])) {
                return i;
            }
        }
        return -1;
    }

    /** Requires every value finite: "tensor W has NaN at flat index 17 (allowed: finite values)". */
    public static void allFinite(String tensorName, float[] values) {
        int bad = firstNonFinite(values);
        if (bad >= 0) {
            throw new IllegalArgumentException("tensor " + tensorName + " has " + values[bad]
                    + " at flat index " + bad + " (allowed: finite values)");
        }
    }
}
