package dev.loftq.core.tensor;

/**
 * A constant-time, branch-free form of a {@link BucketTable}'s threshold count, for the hot loops
 * of {@link HostKernels}: uniform bins over the thresholds' range such that no bin holds two
 * thresholds, so a value's count is the number of thresholds in lower bins plus one comparison with
 * the threshold of its own bin, if any. Exact for every non-NaN float, not an approximation:
 * <ul>
 *   <li>a value is first clamped to [t₀, nextUp(t_last)], which changes no count;</li>
 *   <li>the bin of a value is a monotone function of it ({@code (v − origin) · perUnit} rounds
 *       monotonically, truncation is monotone), so a threshold in a lower bin is below the value
 *       and a threshold in a higher bin above it;</li>
 *   <li>the comparison with the bin's threshold is the sign bit of {@code split − v}, which is
 *       exact for finite floats (a difference is zero only for equal operands) and for the +Inf
 *       split of a bin without a threshold.</li>
 * </ul>
 * The comparison is arithmetic, not a branch: which side of a threshold a weight falls on is
 * unpredictable, and a mispredicted branch per element costs more than the rest of the encoding.
 *
 * <p>Tables whose thresholds are too close for {@value #MAX_BINS} bins (the dynamic 8-bit map of
 * double quantization) have none; the kernels keep a binary search for them.
 */
final class BucketIndex {
    /** At most this many bins: the tables stay in L1 cache. */
    static final int MAX_BINS = 2048;

    /** The clamp range [t₀, nextUp(t_last)]. */
    final float low;
    final float high;
    final float origin;
    final float perUnit;
    /** The threshold inside each bin, or +Inf for a bin without one. */
    final float[] split;
    /** The count of thresholds in lower bins. */
    private final int[] below;

    private BucketIndex(float[] t, float origin, float perUnit, int bins) {
        this.low = t[0];
        this.high = Math.nextUp(t[t.length - 1]);
        this.origin = origin;
        this.perUnit = perUnit;
        this.split = new float[bins];
        this.below = new int[bins];
    }

    /** The index of {@code table}, or null when its thresholds are too dense for it. */
    static BucketIndex of(BucketTable table) {
        float[] t = table.thresholds();
        double range = (double) Math.nextUp(t[t.length - 1]) - t[0];
        double minGap = Double.POSITIVE_INFINITY;
        for (int j = 1; j < t.length; j++) {
            minGap = Math.min(minGap, (double) t[j] - t[j - 1]);
        }
        // Two bins per smallest gap, so that rounding cannot put two thresholds in one bin;
        // doubled again if it still does.
        double perUnit = t.length == 1 ? 1 / Math.max(range, Float.MIN_NORMAL) : 2 / minGap;
        for (; range * perUnit + 3 <= MAX_BINS; perUnit *= 2) {
            float p = (float) perUnit;
            if (!(p > 0f) || Float.isInfinite(p)) {
                return null;
            }
            // t₀ sits inside bin 1 or so; the bins reach past nextUp(t_last).
            float origin = (float) (t[0] - 1 / perUnit);
            BucketIndex index = new BucketIndex(t, origin, p, (int) Math.ceil(range * perUnit) + 3);
            if (index.fill(t)) {
                return index;
            }
        }
        return null;
    }

    /** Places the thresholds; false if two share a bin or the clamp range leaves the bins. */
    private boolean fill(float[] t) {
        if (unclampedBin(low) < 0 || unclampedBin(high) >= split.length) {
            return false;
        }
        java.util.Arrays.fill(split, Float.POSITIVE_INFINITY);
        int previous = -1;
        for (float threshold : t) {
            int b = unclampedBin(threshold);
            if (b == previous) {
                return false;
            }
            split[b] = threshold;
            previous = b;
        }
        int count = 0;
        for (int b = 0; b < split.length; b++) {
            below[b] = count;
            if (split[b] != Float.POSITIVE_INFINITY) {
                count++;
            }
        }
        return true;
    }

    private int unclampedBin(float v) {
        return (int) ((v - origin) * perUnit);
    }

    /**
     * The slot of a non-NaN value, {@code 2·bin + (v > split[bin] ? 1 : 0)}: the index into a
     * {@link #lookup} table. (HostKernels repeats this in its loops, from fields of its own.)
     */
    int slot(float v) {
        float c = Math.min(Math.max(v, low), high);
        int bin = (int) ((c - origin) * perUnit);
        return 2 * bin + (Float.floatToRawIntBits(split[bin] - c) >>> 31);
    }

    /** The number of thresholds strictly below a non-NaN value. */
    int count(float v) {
        int s = slot(v);
        return below[s >>> 1] + (s & 1);
    }

    /**
     * Per slot, {@code perCount[count]} of the slot's threshold count: a lookup of a per-count
     * quantity (a code, a code's value) without the count. {@code perCount} has thresholds + 1
     * entries.
     */
    float[] lookup(float[] perCount) {
        float[] out = new float[2 * split.length];
        for (int b = 0; b < split.length; b++) {
            out[2 * b] = perCount[below[b]];
            out[2 * b + 1] = perCount[Math.min(below[b] + 1, perCount.length - 1)];
        }
        return out;
    }
}
