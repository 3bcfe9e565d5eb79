package dev.loftq.core.tensor;

/**
 * A dense, row-major tensor owned by a {@link TensorScope}. Immutable from the outside: every
 * operation returns a new tensor. It lives until its owning scope closes (or it is moved to
 * another scope with {@link TensorScope#keep}); using it after that throws
 * {@link IllegalStateException}.
 */
public interface Tensor {
    /** The shape; a copy, so callers may modify it. Rank 0 is the empty array. */
    int[] shape();

    /** Number of axes. */
    default int rank() {
        return shape().length;
    }

    /** Size of {@code axis}; negative axes count from the end. */
    default int dim(int axis) {
        int[] s = shape();
        int a = axis < 0 ? axis + s.length : axis;
        if (a < 0 || a >= s.length) {
            throw new IllegalArgumentException("dim: axis " + axis + " out of range for rank "
                    + s.length);
        }
        return s[a];
    }

    /** Number of elements. */
    default long numel() {
        return Shapes.numel("numel", shape());
    }

    /** Element type. */
    DType dtype();

    /** The backend that made this tensor. */
    Backend backend();

    /** False once the owning scope has closed. */
    boolean isAlive();
}
