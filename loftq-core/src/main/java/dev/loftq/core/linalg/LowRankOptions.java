package dev.loftq.core.linalg;

import dev.loftq.core.Checks;

/**
 * How {@link LowRank#truncatedSvd} computes a rank-r truncated SVD.
 *
 * @param exact false: the randomized range finder (Halko, Martinsson &amp; Tropp 2011, Alg. 4.4)
 *     with {@code oversampling} extra columns and {@code powerIterations} subspace iterations;
 *     true: subspace iteration until every one of the top-r singular values moves by less than
 *     {@code tolerance} relative to the largest, or a direct SVD on the host for matrices of at
 *     most {@code directSvdLimit} elements
 * @param oversampling extra sketch columns beyond r (fast and exact), >= 0
 * @param powerIterations subspace iterations of the fast mode from a cold (random) sketch, >= 0
 * @param tolerance exact mode's relative convergence threshold, in (0, 1)
 * @param maxIterations exact mode's cap on subspace iterations, >= 1
 * @param directSvdLimit exact mode uses EJML's dense SVD when m·n is at most this
 * @param warmPowerIterations subspace iterations of the fast mode from a warm start (a nearby
 *     matrix's factors, such as LoftQ's previous step), >= 0: the sketch already holds most of the
 *     subspace, so fewer are needed
 */
public record LowRankOptions(boolean exact, int oversampling, int powerIterations, double tolerance,
        int maxIterations, long directSvdLimit, int warmPowerIterations) {

    public LowRankOptions {
        Checks.inRange("oversampling", oversampling, 0, 1024);
        Checks.inRange("powerIterations", powerIterations, 0, 1000);
        Checks.inRange("warmPowerIterations", warmPowerIterations, 0, 1000);
        if (!(tolerance > 0 && tolerance < 1)) {
            throw new IllegalArgumentException("tolerance must be in (0, 1), got " + tolerance);
        }
        Checks.inRange("maxIterations", maxIterations, 1, 100_000);
        if (directSvdLimit < 0) {
            throw new IllegalArgumentException("directSvdLimit must be >= 0, got " + directSvdLimit);
        }
    }

    /** The same number of fast-mode power iterations from cold and warm sketches. */
    public LowRankOptions(boolean exact, int oversampling, int powerIterations, double tolerance,
            int maxIterations, long directSvdLimit) {
        this(exact, oversampling, powerIterations, tolerance, maxIterations, directSvdLimit,
                powerIterations);
    }

    /**
     * Randomized: 8 extra columns, 2 power iterations, from a cold sketch and from a warm start.
     * (With 1 after a warm start, LoftQ on all-MiniLM-L6-v2 moves the mean weight error by at most
     * 0.0003, but the NF2 r16 default's sentence-embedding cosine falls from 0.725 to 0.720; with
     * 0, NF2 r64's error misses its target. {@link #withWarmPowerIterations} trades it back.)
     */
    public static LowRankOptions fastDefaults() {
        return new LowRankOptions(false, 8, 2, 1e-6, 1000, 0, 2);
    }

    /** Converged to 1e-6 relative; a direct SVD up to 2^21 elements (e.g. 1536 x 1365). */
    public static LowRankOptions exactDefaults() {
        return new LowRankOptions(true, 8, 2, 1e-6, 1000, 1L << 21);
    }

    /** This configuration with {@code q} fast-mode power iterations, cold and warm. */
    public LowRankOptions withPowerIterations(int q) {
        return new LowRankOptions(exact, oversampling, q, tolerance, maxIterations, directSvdLimit,
                q);
    }

    /** This configuration with {@code q} fast-mode power iterations after a warm start. */
    public LowRankOptions withWarmPowerIterations(int q) {
        return new LowRankOptions(exact, oversampling, powerIterations, tolerance, maxIterations,
                directSvdLimit, q);
    }

    /** This configuration with another oversampling. */
    public LowRankOptions withOversampling(int p) {
        return new LowRankOptions(exact, p, powerIterations, tolerance, maxIterations,
                directSvdLimit, warmPowerIterations);
    }
}
