package dev.loftq.core.linalg;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;
import org.ejml.dense.row.factory.DecompositionFactory_DDRM;
import org.ejml.interfaces.decomposition.QRDecomposition;
import org.junit.jupiter.api.Test;

/**
 * Properties of {@link LowRank#truncatedSvd} on matrices with a known spectrum M = U·diag(σ)·Vᵀ:
 * the optimal rank-r error is sqrt(Σ_{i>r} σᵢ²) (Eckart–Young). Abstract over the backend, so the
 * DJL backend runs the same properties.
 */
public abstract class LowRankProperties {
    /** The backend under test. */
    protected abstract Backend backend();

    /** A matrix with a planted spectrum. */
    record Planted(int rows, int cols, double[] sigma, float[] data) {
        double optimalError(int rank) {
            double tail = 0;
            for (int i = rank; i < sigma.length; i++) {
                tail += sigma[i] * sigma[i];
            }
            return Math.sqrt(tail);
        }
    }

    @Provide
    Arbitrary<Planted> decaying() {
        return Combinators.combine(Arbitraries.integers().between(8, 160),
                        Arbitraries.integers().between(8, 160),
                        Arbitraries.doubles().between(0.5, 0.9),
                        Arbitraries.longs())
                .as((rows, cols, decay, seed) -> plant(rows, cols, decay, seed));
    }

    /** σᵢ = decay^i: geometric decay, the regime the fast mode is promised for. */
    static Planted plant(int rows, int cols, double decay, long seed) {
        int n = Math.min(rows, cols);
        Random rng = new Random(seed);
        DMatrixRMaj u = randomOrthonormal(rows, n, rng);
        DMatrixRMaj v = randomOrthonormal(cols, n, rng);
        double[] sigma = new double[n];
        for (int i = 0; i < n; i++) {
            sigma[i] = 10 * Math.pow(decay, i);
            for (int r = 0; r < rows; r++) {
                u.set(r, i, u.get(r, i) * sigma[i]);
            }
        }
        DMatrixRMaj m = new DMatrixRMaj(rows, cols);
        CommonOps_DDRM.multTransB(u, v, m);
        float[] data = new float[rows * cols];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) m.data[i];
        }
        return new Planted(rows, cols, sigma, data);
    }

    static DMatrixRMaj randomOrthonormal(int rows, int cols, Random rng) {
        DMatrixRMaj g = new DMatrixRMaj(rows, cols);
        for (int i = 0; i < g.data.length; i++) {
            g.data[i] = rng.nextGaussian();
        }
        QRDecomposition<DMatrixRMaj> qr = DecompositionFactory_DDRM.qr(rows, cols);
        qr.decompose(g);
        return qr.getQ(null, true);
    }

    /** ‖M − U·diag(S)·Vᵀ‖_F computed on the backend. */
    static double residual(TensorScope s, Tensor m, LowRankFactors f) {
        float[] sv = new float[f.rank()];
        double[] sd = f.singularValues();
        for (int i = 0; i < sv.length; i++) {
            sv[i] = (float) sd[i];
        }
        Tensor us = s.mul(f.u(), s.fromHost(sv, sv.length));
        return Math.sqrt(s.sumOfSquares(s.sub(m, s.matmul(us, false, f.v(), true))));
    }

    @Property(tries = 40)
    void fastModeIsNearOptimalOnDecayingSpectra(@ForAll("decaying") Planted p,
            @ForAll("ranks") int rankWish) {
        int rank = Math.min(rankWish, Math.min(p.rows(), p.cols()));
        try (TensorScope s = backend().newScope()) {
            Tensor m = s.fromHost(p.data(), p.rows(), p.cols());
            LowRankFactors f = LowRank.truncatedSvd(s, m, rank, LowRankOptions.fastDefaults(), null, 7);
            double err = residual(s, m, f);
            double opt = p.optimalError(rank);
            // float32 data carries ~1e-7 relative noise in every singular direction.
            double floor = 1e-5 * p.sigma()[0] * Math.sqrt(p.rows() + p.cols());
            assertTrue(err <= (1 + 1e-3) * opt + floor,
                    "rank " + rank + ": error " + err + " vs optimal " + opt);
        }
    }

    @Provide
    Arbitrary<Integer> ranks() {
        return Arbitraries.integers().between(1, 24);
    }

    @Property(tries = 25)
    void exactModeMatchesDenseSvdTruncation(@ForAll("decaying") Planted p,
            @ForAll("ranks") int rankWish) {
        int rank = Math.min(rankWish, Math.min(p.rows(), p.cols()));
        LowRankOptions iterative = new LowRankOptions(true, 8, 2, 1e-6, 1000, 0);
        try (TensorScope s = backend().newScope()) {
            Tensor m = s.fromHost(p.data(), p.rows(), p.cols());
            LowRankFactors direct = LowRank.truncatedSvd(s, m, rank, LowRankOptions.exactDefaults(),
                    null, 1);
            LowRankFactors iterated = LowRank.truncatedSvd(s, m, rank, iterative, null, 1);
            double scale = p.sigma()[0];
            for (int i = 0; i < rank; i++) {
                assertEquals(direct.singularValues()[i], iterated.singularValues()[i], 1e-5 * scale,
                        "singular value " + i);
                assertEquals(p.sigma()[i], direct.singularValues()[i], 1e-5 * scale,
                        "planted singular value " + i);
            }
            double errDirect = residual(s, m, direct);
            double errIterated = residual(s, m, iterated);
            // Below ~1e-6·‖M‖ the residual is float32 rounding noise of M itself.
            double noise = 4e-6 * p.optimalError(0);
            assertEquals(errDirect, errIterated, 1e-5 * errDirect + noise);
        }
    }

    @Property(tries = 20)
    void warmStartFromTheSameMatrixConvergesInOneStep(@ForAll("decaying") Planted p) {
        int rank = Math.min(8, Math.min(p.rows(), p.cols()));
        LowRankOptions oneStep = LowRankOptions.fastDefaults().withPowerIterations(0);
        try (TensorScope s = backend().newScope()) {
            Tensor m = s.fromHost(p.data(), p.rows(), p.cols());
            LowRankFactors first = LowRank.truncatedSvd(s, m, rank, LowRankOptions.exactDefaults(),
                    null, 3);
            LowRankFactors warm = LowRank.truncatedSvd(s, m, rank, oneStep, first, 4);
            double opt = p.optimalError(rank);
            double floor = 1e-5 * p.sigma()[0] * Math.sqrt(p.rows() + p.cols());
            assertTrue(residual(s, m, warm) <= (1 + 1e-3) * opt + floor);
        }
    }

    @Test
    void factorsAreOrthonormal() {
        Planted p = plant(90, 40, 0.8, 11);
        try (TensorScope s = backend().newScope()) {
            Tensor m = s.fromHost(p.data(), p.rows(), p.cols());
            for (LowRankOptions o : new LowRankOptions[] {LowRankOptions.fastDefaults(),
                    LowRankOptions.exactDefaults()}) {
                LowRankFactors f = LowRank.truncatedSvd(s, m, 10, o, null, 5);
                assertIdentity(s.toFloatArray(s.matmul(f.u(), true, f.u(), false)), 10);
                assertIdentity(s.toFloatArray(s.matmul(f.v(), true, f.v(), false)), 10);
                double[] sv = f.singularValues();
                for (int i = 1; i < sv.length; i++) {
                    assertTrue(sv[i] <= sv[i - 1], "singular values must be non-increasing");
                }
            }
        }
    }

    private static void assertIdentity(float[] g, int n) {
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                assertEquals(i == j ? 1.0 : 0.0, g[i * n + j], 1e-5, "Gram matrix at " + i + "," + j);
            }
        }
    }

    @Test
    void zeroMatrixGivesZeroSingularValues() {
        try (TensorScope s = backend().newScope()) {
            Tensor m = s.full(0f, 30, 20);
            LowRankFactors f = LowRank.truncatedSvd(s, m, 4, LowRankOptions.fastDefaults(), null, 1);
            for (double v : f.singularValues()) {
                assertEquals(0.0, v, 0.0);
            }
            assertEquals(0.0, residual(s, m, f), 0.0);
        }
    }

    @Test
    void rejectsBadArguments() {
        try (TensorScope s = backend().newScope()) {
            Tensor m = s.full(1f, 6, 4);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> LowRank.truncatedSvd(s, m, 5, LowRankOptions.fastDefaults(), null, 1));
            assertEquals("rank must be in [1, 4], got 5", e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> LowRank.truncatedSvd(s, s.full(1f, 6), 1, LowRankOptions.fastDefaults(),
                            null, 1));
            assertTrue(e.getMessage().contains("2-D FLOAT32"), e.getMessage());
        }
    }
}
