package dev.loftq.core.testkit;

import java.util.Arrays;

/**
 * An immutable row-major float32 tensor of any rank for tests (rank 0 is the empty shape, one
 * element). Arrays are copied on the way in and out.
 *
 * @param shape dimensions, each >= 0
 * @param data row-major values, length the product of shape
 */
public record HostTensor(int[] shape, float[] data) {
    /** Validates and copies. */
    public HostTensor {
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("HostTensor: dimensions must be >= 0, got "
                        + Arrays.toString(shape));
            }
            n *= d;
        }
        if (n != data.length) {
            throw new IllegalArgumentException("HostTensor: shape " + Arrays.toString(shape)
                    + " needs " + n + " elements, got " + data.length);
        }
        shape = shape.clone();
        data = data.clone();
    }

    /** A copy of the shape. */
    @Override
    public int[] shape() {
        return shape.clone();
    }

    /** A copy of the values. */
    @Override
    public float[] data() {
        return data.clone();
    }

    /** Number of elements. */
    public int size() {
        return data.length;
    }

    /** The element at flat row-major index i. */
    public float at(int i) {
        return data[i];
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof HostTensor t && Arrays.equals(shape, t.shape)
                && Arrays.equals(data, t.data);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(shape) + Arrays.hashCode(data);
    }

    @Override
    public String toString() {
        return "HostTensor" + Arrays.toString(shape) + " " + summary(data);
    }

    /** "min .. max, first [a, b, c, ...]" for failure reports of large arrays. */
    static String summary(float[] data) {
        if (data.length == 0) {
            return "(empty)";
        }
        float min = Float.POSITIVE_INFINITY;
        float max = Float.NEGATIVE_INFINITY;
        int nonFinite = 0;
        for (float v : data) {
            if (Float.isFinite(v)) {
                min = Math.min(min, v);
                max = Math.max(max, v);
            } else {
                nonFinite++;
            }
        }
        int shown = Math.min(6, data.length);
        return "range [" + min + ", " + max + "]" + (nonFinite > 0 ? " + " + nonFinite
                + " non-finite" : "") + ", first " + Arrays.toString(Arrays.copyOf(data, shown))
                + (shown < data.length ? "..." : "");
    }
}
