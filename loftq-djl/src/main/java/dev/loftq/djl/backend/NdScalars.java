package dev.loftq.djl.backend;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import java.util.function.BinaryOperator;

/**
 * Arithmetic between an NDArray and a float for code that PyTorch autograd may record: use these
 * instead of DJL's {@code Number} overloads ({@code NDArray.mul(Number)}, {@code div}, {@code add},
 * {@code sub}, {@code muli}, {@code clip}, ...).
 *
 * <p>Why: DJL's PyTorch engine (0.36) makes the scalar of a {@code Number} overload with {@code
 * NDManager.create(Number)}, a tensor over a Java direct {@code ByteBuffer} ({@code
 * torch::from_blob}, whose memory PyTorch does not own), and closes it as soon as the operation
 * returns ({@code clip} leaves its two bounds in the input's manager). The buffer is then
 * unreachable, and the next garbage collection frees its memory. But autograd saved that tensor
 * for the backward pass: {@code mul} and {@code div} keep their other operand (the gradient of
 * {@code x * s} is {@code g * s}), {@code clamp} keeps its bounds. A backward pass after that GC
 * reads freed memory (glibc writes its free-list pointer there, then reuses it), so the gradient
 * is scaled by garbage: wrong, huge, or NaN, depending on when the GC ran (not repeatable).
 *
 * <p>Here the scalar is a PyTorch allocation ({@code full}): closing its handle only drops a
 * reference, and what autograd saved keeps the value alive. The results are bit-identical to
 * DJL's overloads (the same FLOAT32 rank-0 operand, the same PyTorch operation).
 */
public final class NdScalars {
    private NdScalars() {}

    /**
     * A FLOAT32 rank-0 array holding {@code value}, in PyTorch-owned memory, attached to {@code
     * manager} (on its device).
     */
    public static NDArray scalar(NDManager manager, float value) {
        return manager.full(new Shape(), value, DataType.FLOAT32);
    }

    /** {@code a + s}, in {@code a}'s manager. */
    public static NDArray add(NDArray a, float s) {
        return withScalar(a, s, NDArray::add);
    }

    /** {@code a * s}, in {@code a}'s manager. */
    public static NDArray mul(NDArray a, float s) {
        return withScalar(a, s, NDArray::mul);
    }

    /** {@code a / s}, in {@code a}'s manager. */
    public static NDArray div(NDArray a, float s) {
        return withScalar(a, s, NDArray::div);
    }

    /** {@code a *= s} in place; returns {@code a}. */
    public static NDArray muli(NDArray a, float s) {
        return withScalar(a, s, NDArray::muli);
    }

    /** {@code op(a, s)} with s a {@link #scalar} in a's manager, whose handle is closed after. */
    private static NDArray withScalar(NDArray a, float s, BinaryOperator<NDArray> op) {
        try (NDArray t = scalar(a.getManager(), s)) {
            return op.apply(a, t);
        }
    }

    /**
     * {@code clamp(a, lo, hi)} ({@code lo <= hi}), in {@code a}'s manager: the values and the
     * gradient of PyTorch's {@code clamp} (the gradient passes where {@code lo <= a <= hi}, else 0,
     * NaN included). Without a gradient to track it is DJL's {@code clip}, in a temporary manager
     * so that its bound scalars do not stay in {@code a}'s manager; with one, it is {@code
     * where(c == a, a, c)} with {@code c = clip(stop(a))}: the same values, a gradient of {@code
     * where} (which saves only the mask), so no Java-backed bound is ever saved for the backward
     * pass. {@code c == a} is {@code lo <= a <= hi} in one pass: clipping changes every value
     * outside the bounds, none inside, and a NaN equals nothing.
     */
    public static NDArray clip(NDArray a, float lo, float hi) {
        NDManager owner = a.getManager();
        try (NDManager tmp = owner.newSubManager()) {
            NDArray result;
            if (!NdKernels.tracksGradient(a)) {
                result = NdKernels.alias(tmp, a).clip(lo, hi);
            } else {
                NDArray frozen = NdKernels.own(tmp, a.stopGradient());
                NDArray clipped = NdKernels.own(tmp, NdKernels.alias(tmp, frozen).clip(lo, hi));
                NDArray inside = NdKernels.own(tmp, clipped.eq(frozen));
                result = NDArrays.where(inside, a, clipped);
            }
            result.attach(owner);
            return result;
        }
    }
}
