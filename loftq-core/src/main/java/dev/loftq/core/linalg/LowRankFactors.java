package dev.loftq.core.linalg;

import dev.loftq.core.tensor.Tensor;

/**
 * A rank-r factorisation M ≈ U·diag(S)·Vᵀ with orthonormal columns in U [m, r] and V [n, r] and
 * singular values S in non-increasing order. The tensors belong to the scope that made them.
 *
 * @param u left singular vectors, FLOAT32 [m, r]
 * @param singularValues the r largest singular values, non-increasing (a copy is kept)
 * @param v right singular vectors, FLOAT32 [n, r]
 * @param iterations power (subspace) iterations that were run; 0 for a direct SVD
 */
public record LowRankFactors(Tensor u, double[] singularValues, Tensor v, int iterations) {
    public LowRankFactors {
        singularValues = singularValues.clone();
    }

    /** The rank r. */
    public int rank() {
        return singularValues.length;
    }

    /** The singular values (a copy). */
    @Override
    public double[] singularValues() {
        return singularValues.clone();
    }
}
