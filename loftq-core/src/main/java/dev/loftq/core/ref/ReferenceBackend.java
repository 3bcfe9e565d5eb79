package dev.loftq.core.ref;

import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.TensorScope;

/**
 * The pure-Java reference backend: tensors are row-major {@code float[]} (FLOAT32) or
 * {@code byte[]} (UINT8, BOOL) on the Java heap, and the heavy kernels (matmul, the coarse
 * codebook kernels, large elementwise passes) run multi-threaded on the common fork-join pool
 * through {@link dev.loftq.core.tensor.Parallel}. It is the oracle of the backend test kit and a
 * no-native option for every algorithm. It has no autograd.
 *
 * <p>Numerics, beyond the {@link TensorScope} contract:
 * <ul>
 *   <li>matmul sums each output element in float32 in ascending order of the inner index, so its
 *       result is bit-identical to the naive {@code i-p-j} loop whatever the blocking and thread
 *       count;</li>
 *   <li>{@code sumLast}, {@code meanLast} and {@code sumOfSquares} accumulate in double and round
 *       once to float32 (sumOfSquares returns the double);</li>
 *   <li>{@code sigmoid} is evaluated in double and rounded once (within 1 ulp);</li>
 *   <li>{@code maximum}, {@code minimum}, {@code maxLast}, {@code minLast} follow
 *       {@link Math#max(float, float)}: NaN propagates and {@code -0 < +0}.</li>
 * </ul>
 *
 * <p>Instances are stateless and interchangeable: a tensor made by one may be used in the scopes
 * of another. Thread-safety is that of {@link Backend}: one scope per thread.
 */
public final class ReferenceBackend implements Backend {
    /** The value of {@link #name()}. */
    public static final String NAME = "reference";

    /** Creates the backend; cheap, holds no resources. */
    public ReferenceBackend() {}

    @Override
    public String name() {
        return NAME;
    }

    /** Always {@code "cpu"}. */
    @Override
    public String device() {
        return "cpu";
    }

    @Override
    public TensorScope newScope() {
        return new RefScope(this, null);
    }

    @Override
    public String toString() {
        return NAME + "(" + device() + ")";
    }
}
