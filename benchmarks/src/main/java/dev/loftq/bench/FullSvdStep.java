package dev.loftq.bench;

import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.factory.DecompositionFactory_DDRM;
import org.ejml.interfaces.decomposition.SingularValueDecomposition_F64;

/**
 * The cost of the low-rank step of the official LoftQ algorithm (a full SVD of W − Q every step)
 * on the JVM, where DJL 0.36 has no SVD: one EJML dense SVD (U, S, V, compact) of an n x n
 * Gaussian matrix per size given, timed once each (seconds to minutes, so not a JMH suite).
 * Usage: {@code java -cp <benchmarks classpath> dev.loftq.bench.FullSvdStep 1024 2048}.
 */
public final class FullSvdStep {
    private FullSvdStep() {}

    public static void main(String[] args) {
        if (args.length == 0) {
            System.err.println("usage: FullSvdStep N [N ...] (matrix sides)");
            System.exit(2);
        }
        for (String arg : args) {
            int n = Integer.parseInt(arg);
            DMatrixRMaj m = new DMatrixRMaj(n, n);
            java.util.SplittableRandom rng = new java.util.SplittableRandom(1);
            for (int i = 0; i < m.data.length; i++) {
                m.data[i] = rng.nextDouble(-1, 1);
            }
            SingularValueDecomposition_F64<DMatrixRMaj> svd =
                    DecompositionFactory_DDRM.svd(n, n, true, true, true);
            long start = System.nanoTime();
            boolean ok = svd.decompose(m);
            double seconds = (System.nanoTime() - start) / 1e9;
            System.out.printf("EJML full SVD %d x %d: %.1f s%s; machine: %s%n", n, n, seconds,
                    ok ? "" : " (did not converge)", ResultsLog.machine());
        }
    }
}
