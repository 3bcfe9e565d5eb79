package dev.loftq.core.linalg;

import dev.loftq.core.Checks;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.Arrays;
import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;
import org.ejml.dense.row.SingularOps_DDRM;
import org.ejml.dense.row.factory.DecompositionFactory_DDRM;
import org.ejml.interfaces.decomposition.QRDecomposition;
import org.ejml.interfaces.decomposition.SingularValueDecomposition_F64;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Rank-r truncated SVD over the tensor SPI. The big products (M·Ω, Mᵀ·Q) run on the backend; the
 * thin orthonormalisations and the k×k SVD (k = r + oversampling) run on the host in double
 * precision with EJML. DJL has no SVD, so this is also how the DJL backend gets one.
 *
 * <p>Warm start: pass the factors of a nearby matrix (LoftQ's previous step) and its right
 * singular vectors seed the sketch, so few iterations reach the same accuracy.
 *
 * <p>Both paths return a projection of M: U·S·Vᵀ = U·Uᵀ·M with orthonormal U (randomized) or
 * M·V·Vᵀ with orthonormal V (direct), up to float32 rounding, so ‖M − U·S·Vᵀ‖² = ‖M‖² − Σσᵢ².
 */
public final class LowRank {
    private static final Logger LOG = LoggerFactory.getLogger(LowRank.class);

    private LowRank() {}

    /**
     * The rank-r truncated SVD of a 2-D FLOAT32 matrix.
     *
     * @param scope owns the returned factors; not closed
     * @param m the matrix [rows, cols]; not modified
     * @param rank r in [1, min(rows, cols)]
     * @param options fast or exact
     * @param warmStart factors of a nearby matrix of the same shape (any rank), or null
     * @param seed seeds the random part of the sketch
     * @return U [rows, r], S (r), V [cols, r], owned by {@code scope}
     * @throws IllegalArgumentException for a non-2-D or non-FLOAT32 matrix, a rank out of range, or
     *     a warm start of another shape
     */
    public static LowRankFactors truncatedSvd(TensorScope scope, Tensor m, int rank,
            LowRankOptions options, LowRankFactors warmStart, long seed) {
        Checks.notNull("options", options);
        if (m.rank() != 2 || m.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException("truncatedSvd: matrix must be 2-D FLOAT32, got "
                    + m.dtype() + " " + Arrays.toString(m.shape()));
        }
        int rows = m.dim(0);
        int cols = m.dim(1);
        Checks.inRange("rank", rank, 1, Math.min(rows, cols));
        if (warmStart != null && (warmStart.v().dim(0) != cols || warmStart.u().dim(0) != rows)) {
            throw new IllegalArgumentException("truncatedSvd: warm start is for a "
                    + warmStart.u().dim(0) + " x " + warmStart.v().dim(0) + " matrix, got "
                    + rows + " x " + cols);
        }
        if (options.exact() && (long) rows * cols <= options.directSvdLimit()) {
            return directSvd(scope, m, rows, cols, rank);
        }
        return subspaceIteration(scope, m, rows, cols, rank, options, warmStart, seed);
    }

    /**
     * EJML's dense SVD in double on the host: the reference truncation. Only the singular vectors
     * of the smaller side are computed; the other side's top r follow as M·v / σ (or Mᵀ·u / σ) on
     * the backend, which is exact for σ > 0 and several times cheaper than a full U and V.
     */
    private static LowRankFactors directSvd(TensorScope scope, Tensor m, int rows, int cols,
            int rank) {
        boolean tall = rows >= cols;
        DMatrixRMaj a = toDouble(scope.toFloatArray(m), rows, cols);
        SingularValueDecomposition_F64<DMatrixRMaj> svd =
                DecompositionFactory_DDRM.svd(rows, cols, !tall, tall, true);
        if (!svd.decompose(a)) {
            throw new IllegalStateException("truncatedSvd: EJML's SVD did not converge on a "
                    + rows + " x " + cols + " matrix");
        }
        DMatrixRMaj w = svd.getW(null);
        DMatrixRMaj small = tall ? svd.getV(null, false) : svd.getU(null, false);
        if (tall) {
            SingularOps_DDRM.descendingOrder(null, false, w, small, false);
        } else {
            SingularOps_DDRM.descendingOrder(small, false, w, null, false);
        }
        double[] s = new double[rank];
        float[] inverse = new float[rank];
        for (int i = 0; i < rank; i++) {
            s[i] = w.get(i, i);
            inverse[i] = s[i] > 0 ? (float) (1 / s[i]) : 0f;
        }
        Tensor known = upload(scope, leadingColumns(small, rank));
        try (TensorScope tmp = scope.newChild()) {
            Tensor projected = tall ? tmp.matmul(m, known) : tmp.matmul(m, true, known, false);
            Tensor other = scope.keep(tmp.mul(projected, tmp.fromHost(inverse, rank)));
            return tall ? new LowRankFactors(other, s, known, 0)
                    : new LowRankFactors(known, s, other, 0);
        }
    }

    /**
     * Randomized range finder with subspace (power) iterations. Each iteration orthonormalises on
     * the host: Q = orth(M·Qz), Qz = orth(Mᵀ·Q). The last Mᵀ·Q = Bᵀ (B = QᵀM) gives the small
     * problem: Bᵀ = Q2·R2, R2ᵀ = Ua·S·Vaᵀ, so B = Ua·S·(Q2·Va)ᵀ and M ≈ (Q·Ua)·S·(Q2·Va)ᵀ.
     */
    private static LowRankFactors subspaceIteration(TensorScope scope, Tensor m, int rows,
            int cols, int rank, LowRankOptions options, LowRankFactors warmStart, long seed) {
        int k = Math.min(rank + options.oversampling(), Math.min(rows, cols));
        try (TensorScope work = scope.newChild()) {
            Tensor omega = sketch(work, cols, k, warmStart, seed);
            double[] previous = null;
            int maxSteps = options.exact() ? options.maxIterations()
                    : (warmStart == null ? options.powerIterations()
                            : options.warmPowerIterations()) + 1;
            int step = 0;
            while (true) {
                step++;
                DMatrixRMaj q = orthonormalize(work.toFloatArray(work.matmul(m, omega)), rows, k);
                Tensor qt = upload(work, q);
                DMatrixRMaj z = toDouble(work.toFloatArray(work.matmul(m, true, qt, false)), cols, k);
                DMatrixRMaj q2 = orthonormalize(z);
                DMatrixRMaj r2 = new DMatrixRMaj(k, k);
                CommonOps_DDRM.multTransA(q2, z, r2); // R2 = Q2ᵀ·Z, exact for any basis of Z
                if (step >= maxSteps || options.exact()) {
                    SmallSvd small = SmallSvd.of(r2, k);
                    boolean converged = previous != null
                            && converged(previous, small.s, rank, options.tolerance());
                    if (step >= maxSteps || converged) {
                        if (options.exact() && !converged) {
                            LOG.warn("truncatedSvd: {} x {} rank {} did not converge to {} in {} "
                                    + "iterations", rows, cols, rank, options.tolerance(), step);
                        }
                        return finish(scope, qt, q2, small, rank, step);
                    }
                    previous = small.s;
                }
                omega = upload(work, q2);
            }
        }
    }

    private static boolean converged(double[] previous, double[] current, int rank, double tol) {
        double scale = Math.max(current[0], Double.MIN_NORMAL);
        for (int i = 0; i < rank; i++) {
            if (Math.abs(current[i] - previous[i]) > tol * scale) {
                return false;
            }
        }
        return true;
    }

    /** U = Q·Ua[:, :r] on the backend; V = Q2·Va[:, :r] on the host. */
    private static LowRankFactors finish(TensorScope scope, Tensor q, DMatrixRMaj q2,
            SmallSvd small, int rank, int iterations) {
        Tensor ua = upload(scope, leadingColumns(small.u, rank));
        Tensor u = scope.matmul(q, ua);
        DMatrixRMaj v = new DMatrixRMaj(q2.numRows, rank);
        CommonOps_DDRM.mult(q2, leadingColumns(small.v, rank), v);
        return new LowRankFactors(u, Arrays.copyOf(small.s, rank), upload(scope, v), iterations);
    }

    /** Ω [cols, k]: the warm start's right vectors first, Gaussian columns for the rest. */
    private static Tensor sketch(TensorScope work, int cols, int k, LowRankFactors warmStart,
            long seed) {
        int fromWarm = warmStart == null ? 0 : Math.min(k, warmStart.rank());
        Tensor random = fromWarm == k ? null : work.randomNormal(seed, 0f, 1f, cols, k - fromWarm);
        if (fromWarm == 0) {
            return random;
        }
        Tensor warm = warmStart.rank() == fromWarm
                ? warmStart.v() : work.sliceColumns(warmStart.v(), 0, fromWarm);
        return random == null ? warm : work.concat(1, warm, random);
    }

    /** The SVD of a small square R: R = U·diag(s)·Vᵀ with s sorted descending. */
    private record SmallSvd(DMatrixRMaj u, double[] s, DMatrixRMaj v) {
        /** For R2 from Bᵀ = Q2·R2 we need the SVD of R2ᵀ: swap U and V of R2's SVD. */
        static SmallSvd of(DMatrixRMaj r2, int k) {
            SingularValueDecomposition_F64<DMatrixRMaj> svd =
                    DecompositionFactory_DDRM.svd(k, k, true, true, false);
            if (!svd.decompose(r2.copy())) {
                throw new IllegalStateException("truncatedSvd: SVD of the " + k + " x " + k
                        + " core did not converge");
            }
            DMatrixRMaj u = svd.getU(null, false);
            DMatrixRMaj w = svd.getW(null);
            DMatrixRMaj v = svd.getV(null, false);
            SingularOps_DDRM.descendingOrder(u, false, w, v, false);
            double[] s = new double[k];
            for (int i = 0; i < k; i++) {
                s[i] = w.get(i, i);
            }
            // R2 = U S Vᵀ  =>  R2ᵀ = V S Uᵀ: left vectors of R2ᵀ are V, right are U.
            return new SmallSvd(v, s, u);
        }
    }

    /**
     * An orthonormal basis [rows, cols] of the columns of a tall matrix: Householder QR, or, when
     * that breaks down on an exactly dependent column (a zero matrix, an exactly low-rank one),
     * modified Gram-Schmidt that replaces each vanishing column by a seeded random direction.
     */
    private static DMatrixRMaj orthonormalize(float[] y, int rows, int cols) {
        return orthonormalize(toDouble(y, rows, cols));
    }

    private static DMatrixRMaj orthonormalize(DMatrixRMaj a) {
        int rows = a.numRows;
        int cols = a.numCols;
        QRDecomposition<DMatrixRMaj> qr = DecompositionFactory_DDRM.qr(rows, cols);
        if (qr.decompose(a.copy())) {
            return qr.getQ(null, true);
        }
        return gramSchmidtWithRandomFill(a);
    }

    private static DMatrixRMaj gramSchmidtWithRandomFill(DMatrixRMaj a) {
        int rows = a.numRows;
        int cols = a.numCols;
        double[] scale = new double[cols];
        double largest = 0;
        for (int j = 0; j < cols; j++) {
            scale[j] = columnNorm(a, j);
            largest = Math.max(largest, scale[j]);
        }
        java.util.SplittableRandom rng = new java.util.SplittableRandom(rows * 31L + cols);
        DMatrixRMaj q = a.copy();
        for (int j = 0; j < cols; j++) {
            for (int attempt = 0; ; attempt++) {
                for (int pass = 0; pass < 2; pass++) { // twice is enough (Kahan)
                    for (int p = 0; p < j; p++) {
                        double dot = 0;
                        for (int r = 0; r < rows; r++) {
                            dot += q.get(r, p) * q.get(r, j);
                        }
                        for (int r = 0; r < rows; r++) {
                            q.set(r, j, q.get(r, j) - dot * q.get(r, p));
                        }
                    }
                }
                double norm = columnNorm(q, j);
                if (norm > 1e-12 * Math.max(largest, scale[j]) && norm > 0) {
                    for (int r = 0; r < rows; r++) {
                        q.set(r, j, q.get(r, j) / norm);
                    }
                    break;
                }
                if (attempt > 100) {
                    throw new IllegalStateException("truncatedSvd: cannot build an orthonormal "
                            + "basis of " + cols + " columns in dimension " + rows);
                }
                for (int r = 0; r < rows; r++) {
                    q.set(r, j, rng.nextDouble() - 0.5);
                }
                largest = 1;
            }
        }
        return q;
    }

    private static double columnNorm(DMatrixRMaj a, int j) {
        double s = 0;
        for (int r = 0; r < a.numRows; r++) {
            s += a.get(r, j) * a.get(r, j);
        }
        return Math.sqrt(s);
    }

    private static DMatrixRMaj leadingColumns(DMatrixRMaj a, int count) {
        DMatrixRMaj out = new DMatrixRMaj(a.numRows, count);
        CommonOps_DDRM.extract(a, 0, a.numRows, 0, count, out, 0, 0);
        return out;
    }

    private static DMatrixRMaj toDouble(float[] data, int rows, int cols) {
        DMatrixRMaj out = new DMatrixRMaj(rows, cols);
        double[] d = out.data;
        for (int i = 0; i < d.length; i++) {
            d[i] = data[i];
        }
        return out;
    }

    private static Tensor upload(TensorScope scope, DMatrixRMaj a) {
        float[] f = new float[a.numRows * a.numCols];
        double[] d = a.data;
        for (int i = 0; i < f.length; i++) {
            f[i] = (float) d[i];
        }
        return scope.fromHost(f, a.numRows, a.numCols);
    }
}
