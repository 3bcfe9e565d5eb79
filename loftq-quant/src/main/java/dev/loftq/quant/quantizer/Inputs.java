package dev.loftq.quant.quantizer;

import dev.loftq.core.Checks;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.Arrays;

/** Validation of the tensors handed to a quantizer, with the messages the {@link Quantizer} contract promises. */
final class Inputs {
    private Inputs() {}

    /**
     * Checks that {@code w} is a FLOAT32 tensor of rank >= 1 with at least one element; returns
     * its element count.
     */
    static int numel(Tensor w, String name) {
        Checks.notNull("name", name);
        Checks.notNull(name, w);
        int[] shape = w.shape();
        if (w.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException("tensor " + name + " must be FLOAT32, got "
                    + w.dtype());
        }
        if (shape.length == 0) {
            throw new IllegalArgumentException("tensor " + name + " has rank 0 (a scalar); "
                    + "quantizers need rank >= 1");
        }
        long n = w.numel();
        if (n == 0) {
            throw new IllegalArgumentException("tensor " + name + " is empty (shape "
                    + Arrays.toString(shape) + "); quantizers need at least one element");
        }
        return (int) n;
    }

    /**
     * Throws if a block statistic that propagates NaN and infinities (absmax, max, min) is not
     * finite: then finds the first bad element of that block in {@code flat} (1-D) and reports it as
     * "tensor W has NaN at flat index 17 (allowed: finite values)".
     *
     * @param stats one value per block of {@code blockSize} consecutive elements, in block order
     */
    static void requireFinite(TensorScope scope, Tensor flat, int blockSize, String name,
            float[]... stats) {
        int bad = Integer.MAX_VALUE;
        for (float[] s : stats) {
            for (int b = 0; b < s.length && b < bad; b++) {
                if (!Float.isFinite(s[b])) {
                    bad = b;
                }
            }
        }
        if (bad == Integer.MAX_VALUE) {
            return;
        }
        int from = bad * blockSize;
        int to = (int) Math.min(flat.numel(), (long) from + blockSize);
        float[] block = scope.toFloatArray(scope.sliceRows(flat, from, to));
        int i = Checks.firstNonFinite(block);
        throw nonFinite(name, from + i, block[i]);
    }

    /** Throws for the first non-finite value of host data {@code x}, if any. */
    static void requireFinite(float[] x, String name) {
        int i = Checks.firstNonFinite(x);
        if (i >= 0) {
            throw nonFinite(name, i, x[i]);
        }
    }

    /** Checks that {@code t} is FLOAT32 of {@code shape}. */
    static void requireShape(String op, String name, Tensor t, int[] shape) {
        if (t == null || t.dtype() != DType.FLOAT32 || !Arrays.equals(t.shape(), shape)) {
            throw new IllegalArgumentException(op + ": " + name + " must be FLOAT32 "
                    + Arrays.toString(shape) + ", got " + (t == null ? "null"
                            : t.dtype() + " " + Arrays.toString(t.shape())));
        }
    }

    private static IllegalArgumentException nonFinite(String name, int index, float value) {
        return new IllegalArgumentException("tensor " + name + " has " + value + " at flat index "
                + index + " (allowed: finite values)");
    }
}
