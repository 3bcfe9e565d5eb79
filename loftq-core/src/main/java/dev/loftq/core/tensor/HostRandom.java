package dev.loftq.core.tensor;

import java.util.SplittableRandom;

/**
 * The portable normal generator behind {@link TensorScope#randomNormal}: every backend fills its
 * tensors from this host sequence, so the same seed gives the same values everywhere.
 * Marsaglia's polar method over {@link SplittableRandom} (whose sequence is specified), both
 * values of each pair used, evaluated in double and rounded once to float32.
 */
public final class HostRandom {
    private HostRandom() {}

    /** {@code n} samples of {@code mean + std * N(0, 1)}. */
    public static float[] normal(long seed, float mean, float std, int n) {
        if (!Float.isFinite(mean) || !Float.isFinite(std) || std < 0f) {
            throw new IllegalArgumentException("randomNormal: mean and std must be finite with std >= 0,"
                    + " got mean=" + mean + ", std=" + std);
        }
        SplittableRandom rng = new SplittableRandom(seed);
        float[] out = new float[n];
        int i = 0;
        while (i < n) {
            double u;
            double v;
            double s;
            do {
                u = 2 * rng.nextDouble() - 1;
                v = 2 * rng.nextDouble() - 1;
                s = u * u + v * v;
            } while (s >= 1 || s == 0);
            double f = Math.sqrt(-2 * Math.log(s) / s);
            out[i++] = (float) (mean + std * (u * f));
            if (i < n) {
                out[i++] = (float) (mean + std * (v * f));
            }
        }
        return out;
    }
}
