package dev.loftq.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

class EmbeddingAgreementTest {
    @Test
    void spearmanOfHandComputedCases() {
        assertEquals(1.0, EmbeddingAgreement.spearman(new double[] {1, 2, 3, 4}, new double[] {10, 20, 30, 40}), 1e-12);
        assertEquals(-1.0, EmbeddingAgreement.spearman(new double[] {1, 2, 3, 4}, new double[] {4, 3, 2, 1}), 1e-12);
        // ranks (1, 2, 3, 4) vs (1, 3, 2, 4): 1 - 6·2 / (4·15) = 0.8
        assertEquals(0.8, EmbeddingAgreement.spearman(new double[] {1, 2, 3, 4}, new double[] {1, 3, 2, 4}), 1e-12);
    }

    @Test
    void tiesGetTheirAverageRank() {
        // x ranks (1, 2.5, 2.5, 4), y ranks (1, 3, 2, 4): Pearson of the ranks = 4.5 / √(4.5·5) = 3 / √10
        assertEquals(3 / Math.sqrt(10),
                EmbeddingAgreement.spearman(new double[] {0.1, 0.5, 0.5, 0.9}, new double[] {1, 3, 2, 4}), 1e-12);
        // both tied the same way: identical rankings
        assertEquals(1.0, EmbeddingAgreement.spearman(new double[] {1, 1, 2, 3}, new double[] {5, 5, 7, 9}), 1e-12);
    }

    @Property(tries = 50)
    void spearmanDependsOnlyOnTheOrder(@ForAll("values") double[] x, @ForAll("values") double[] y) {
        int n = Math.min(x.length, y.length);
        double[] a = java.util.Arrays.copyOf(x, n);
        double[] b = java.util.Arrays.copyOf(y, n);
        double[] monotone = new double[n];
        for (int i = 0; i < n; i++) {
            monotone[i] = Math.exp(a[i] / 10) + 3 * a[i]; // strictly increasing
        }
        double rho = EmbeddingAgreement.spearman(a, b);
        if (Double.isNaN(rho)) {
            return; // a constant side has no ranking
        }
        assertTrue(rho >= -1 - 1e-12 && rho <= 1 + 1e-12, "rho " + rho);
        assertEquals(rho, EmbeddingAgreement.spearman(monotone, b), 1e-9);
        assertEquals(rho, EmbeddingAgreement.spearman(b, a), 1e-12);
    }

    @Provide
    Arbitrary<double[]> values() {
        // few distinct values, so ties are common
        return Arbitraries.integers().between(-5, 5).map(i -> (double) i).array(double[].class).ofMinSize(3).ofMaxSize(30);
    }

    @Test
    void identicalEmbeddingsAgreeFully() {
        float[][] e = {{1, 0, 0}, {0.6f, 0.8f, 0}, {0, 0.6f, 0.8f}, {0.8f, 0, 0.6f}};
        assertEquals(1.0, EmbeddingAgreement.meanCosine(e, e), 1e-7);
        assertEquals(1.0, EmbeddingAgreement.similarityRankCorrelation(e, e), 1e-12);
        double[] pairs = EmbeddingAgreement.pairwiseCosines(e);
        assertEquals(6, pairs.length);
        assertEquals(0.6, pairs[0], 1e-7); // rows 0 and 1
    }

    @Test
    void meanCosineOfKnownPairs() {
        float[][] a = {{1, 0}, {0, 1}};
        float[][] b = {{1, 1}, {0, -2}}; // cos = 1/√2 and -1
        assertEquals((1 / Math.sqrt(2) - 1) / 2, EmbeddingAgreement.meanCosine(a, b), 1e-7);
    }

    @Test
    void badInputNamesTheArgument() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> EmbeddingAgreement.meanCosine(new float[0][], new float[0][]));
        assertTrue(e.getMessage().contains("reference") && e.getMessage().contains("got 0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> EmbeddingAgreement.meanCosine(new float[][] {{1, 0}}, new float[][] {{1, 0, 0}}));
        assertTrue(e.getMessage().contains("other"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> EmbeddingAgreement.spearman(new double[] {1, 2}, new double[] {1}));
        assertTrue(e.getMessage().contains("same length"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> EmbeddingAgreement.pairwiseCosines(new float[][] {{1, 0}, {1}}));
        assertTrue(e.getMessage().contains("embeddings[1]"), e.getMessage());
    }
}
