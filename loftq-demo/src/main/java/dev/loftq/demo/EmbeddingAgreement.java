package dev.loftq.demo;

import org.apache.commons.math3.stat.correlation.SpearmansCorrelation;

/**
 * How far a quantized model's sentence embeddings are from the fp32 model's: the mean cosine of
 * matching embeddings, and the Spearman rank correlation of the two models' pairwise similarities
 * (does the quantized model still rank sentence pairs the same way?).
 */
public final class EmbeddingAgreement {
    private EmbeddingAgreement() {}

    /**
     * Mean over rows of cos(reference[i], other[i]).
     *
     * @param reference [n][d] embeddings, n ≥ 1; not modified
     * @param other [n][d] embeddings of the same texts; not modified
     * @throws IllegalArgumentException if empty, ragged or of different shapes
     */
    public static double meanCosine(float[][] reference, float[][] other) {
        int d = checkShape("reference", reference, 1);
        if (other == null || other.length != reference.length) {
            throw new IllegalArgumentException("other must have " + reference.length + " rows like reference, got "
                    + (other == null ? "null" : other.length));
        }
        checkShape("other", other, 1);
        if (other[0].length != d) {
            throw new IllegalArgumentException("other rows must have " + d + " values like reference, got " + other[0].length);
        }
        double sum = 0;
        for (int i = 0; i < reference.length; i++) {
            sum += cosine(reference[i], other[i]);
        }
        return sum / reference.length;
    }

    /**
     * The cosine similarity of every pair i &lt; j, in row-major order of the upper triangle.
     *
     * @param embeddings [n][d], n ≥ 2; not modified
     * @return n(n−1)/2 values
     * @throws IllegalArgumentException if fewer than 2 rows, or ragged
     */
    public static double[] pairwiseCosines(float[][] embeddings) {
        int n = embeddings == null ? 0 : embeddings.length;
        checkShape("embeddings", embeddings, 2);
        double[] out = new double[n * (n - 1) / 2];
        int k = 0;
        for (int i = 0; i < n; i++) {
            for (int j = i + 1; j < n; j++) {
                out[k++] = cosine(embeddings[i], embeddings[j]);
            }
        }
        return out;
    }

    /**
     * Spearman's rank correlation of the two models' pairwise similarities (ties get their average
     * rank; Apache Commons Math's {@link SpearmansCorrelation}).
     *
     * @param reference [n][d] fp32 embeddings, n ≥ 3 (so that there are at least 3 pairs)
     * @param other [n][d] embeddings of the same texts
     */
    public static double similarityRankCorrelation(float[][] reference, float[][] other) {
        checkShape("reference", reference, 3);
        if (other == null || other.length != reference.length) {
            throw new IllegalArgumentException("other must have " + reference.length + " rows like reference, got "
                    + (other == null ? "null" : other.length));
        }
        return spearman(pairwiseCosines(reference), pairwiseCosines(other));
    }

    /**
     * Spearman's rank correlation with average ranks for ties.
     *
     * @param x at least 2 finite values; not modified
     * @param y as many values as x; not modified
     * @return in [−1, 1]; NaN if either side is constant
     * @throws IllegalArgumentException if the lengths differ or there are fewer than 2 values
     */
    public static double spearman(double[] x, double[] y) {
        if (x == null || y == null || x.length != y.length || x.length < 2) {
            throw new IllegalArgumentException("x and y must have the same length, at least 2, got "
                    + (x == null ? "null" : x.length) + " and " + (y == null ? "null" : y.length));
        }
        return new SpearmansCorrelation().correlation(x, y);
    }

    private static double cosine(float[] a, float[] b) {
        double dot = 0;
        double na = 0;
        double nb = 0;
        for (int i = 0; i < a.length; i++) {
            dot += (double) a[i] * b[i];
            na += (double) a[i] * a[i];
            nb += (double) b[i] * b[i];
        }
        return dot / Math.sqrt(na * nb);
    }

    /** Checks rows ≥ minRows, equal non-zero row lengths; returns the row length. */
    private static int checkShape(String name, float[][] m, int minRows) {
        if (m == null || m.length < minRows) {
            throw new IllegalArgumentException(name + " must have at least " + minRows + " rows, got "
                    + (m == null ? "null" : m.length));
        }
        int d = m[0] == null ? 0 : m[0].length;
        for (int i = 0; i < m.length; i++) {
            if (m[i] == null || m[i].length != d || d == 0) {
                throw new IllegalArgumentException(name + "[" + i + "] must have " + Math.max(d, 1)
                        + " values like every row, got " + (m[i] == null ? "null" : m[i].length));
            }
        }
        return d;
    }
}
