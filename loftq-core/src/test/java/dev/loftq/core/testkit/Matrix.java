package dev.loftq.core.testkit;

import java.util.Arrays;

/**
 * An immutable row-major float32 matrix [rows, cols] for tests. The array is copied on the way in
 * and on the way out of {@link #data()}; use {@link #get} in loops.
 *
 * @param rows number of rows, >= 0
 * @param cols number of columns, >= 0
 * @param data row-major values, length rows * cols
 */
public record Matrix(int rows, int cols, float[] data) {
    /** Validates the shape and copies {@code data}. */
    public Matrix {
        if (rows < 0 || cols < 0) {
            throw new IllegalArgumentException("Matrix: rows and cols must be >= 0, got " + rows
                    + " x " + cols);
        }
        if (data == null || (long) rows * cols != data.length) {
            throw new IllegalArgumentException("Matrix: data must have rows * cols = "
                    + (long) rows * cols + " elements, got "
                    + (data == null ? "null" : String.valueOf(data.length)));
        }
        data = data.clone();
    }

    /** A copy of the row-major values. */
    @Override
    public float[] data() {
        return data.clone();
    }

    /** The element at row r, column c. */
    public float get(int r, int c) {
        return data[r * cols + c];
    }

    /** The element at flat row-major index i. */
    public float at(int i) {
        return data[i];
    }

    /** {@code {rows, cols}}. */
    public int[] shape() {
        return new int[] {rows, cols};
    }

    /** rows * cols. */
    public int size() {
        return data.length;
    }

    /** The transpose [cols, rows]. */
    public Matrix transpose() {
        float[] t = new float[data.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = data[r * cols + c];
            }
        }
        return new Matrix(cols, rows, t);
    }

    /** Row r as a new array. */
    public float[] row(int r) {
        return Arrays.copyOfRange(data, r * cols, (r + 1) * cols);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Matrix m && rows == m.rows && cols == m.cols
                && Arrays.equals(data, m.data);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * rows + cols) + Arrays.hashCode(data);
    }

    /** Shape, range and the first few values; never the whole array. */
    @Override
    public String toString() {
        return "Matrix[" + rows + " x " + cols + "] " + HostTensor.summary(data);
    }
}
