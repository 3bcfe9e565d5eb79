package dev.loftq.quant.quantizer;

import java.math.BigDecimal;

/** Host-side statistics whose float32 result must not depend on summation order. */
final class FloatStats {
    private FloatStats() {}

    /**
     * The mean of finite floats rounded once to float32 (round half to even): the exact sum is
     * accumulated per binary exponent in longs, then the nearest float to {@code sum / n} is chosen
     * by exact comparison.
     */
    static float correctlyRoundedMean(float[] values) {
        long[] byExponent = new long[256];
        for (float v : values) {
            int bits = Float.floatToRawIntBits(v);
            int exponent = (bits >>> 23) & 0xFF;
            long significand = bits & 0x7FFFFF;
            if (exponent == 0) {
                exponent = 1; // subnormal: significand · 2^(1 - 150)
            } else {
                significand |= 0x800000;
            }
            byExponent[exponent] += bits < 0 ? -significand : significand;
        }
        BigDecimal sum = BigDecimal.ZERO;
        for (int e = 1; e < 255; e++) {
            if (byExponent[e] != 0) {
                sum = sum.add(BigDecimal.valueOf(byExponent[e])
                        .multiply(new BigDecimal(Math.scalb(1.0, e - 150))));
            }
        }
        BigDecimal n = BigDecimal.valueOf(values.length);
        float guess = (float) (sum.doubleValue() / values.length);
        float best = guess;
        BigDecimal bestError = null;
        for (float c : new float[] {Math.nextDown(guess), guess, Math.nextUp(guess)}) {
            BigDecimal error = new BigDecimal(c).multiply(n).subtract(sum).abs();
            int cmp = bestError == null ? -1 : error.compareTo(bestError);
            if (cmp < 0 || (cmp == 0 && (Float.floatToRawIntBits(c) & 1) == 0)) {
                best = c;
                bestError = error;
            }
        }
        return best;
    }

    /**
     * Per block of {@code blockSize} consecutive values: {@code f32(mean + f32(2.5 · std))} with the
     * mean and the unbiased (N - 1) standard deviation computed in double precision and each rounded
     * once to float32, as LoftQ's {@code weight.mean(-1) + 2.5 * weight.std(-1)} with correctly
     * rounded reductions. {@code x.length} is a multiple of {@code blockSize >= 2}.
     */
    static float[] meanPlus2p5Std(float[] x, int blockSize) {
        float[] out = new float[x.length / blockSize];
        for (int b = 0; b < out.length; b++) {
            int o = b * blockSize;
            double sum = 0;
            for (int i = o; i < o + blockSize; i++) {
                sum += x[i];
            }
            double mean = sum / blockSize;
            double squares = 0;
            for (int i = o; i < o + blockSize; i++) {
                double d = x[i] - mean;
                squares += d * d;
            }
            float std = (float) Math.sqrt(squares / (blockSize - 1));
            out[b] = (float) mean + 2.5f * std;
        }
        return out;
    }
}
