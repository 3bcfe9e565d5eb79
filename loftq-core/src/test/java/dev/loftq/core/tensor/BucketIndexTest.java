package dev.loftq.core.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.loftq.core.testkit.LoftqArbitraries;
import java.util.SplittableRandom;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

/** The constant-time threshold count is exact: it agrees with a plain count on every probe. */
class BucketIndexTest {

    @Provide
    Arbitrary<BucketTable> tables() {
        return LoftqArbitraries.bucketTables();
    }

    @Property(tries = 300)
    void countsExactlyAtAndAroundEveryThreshold(@ForAll("tables") BucketTable table,
            @ForAll long seed) {
        BucketIndex index = BucketIndex.of(table);
        if (index == null) {
            return; // too dense: the kernels use the binary search, checked by BackendContract
        }
        float[] t = table.thresholds();
        for (float threshold : t) {
            for (float v : new float[] {threshold, Math.nextUp(threshold), Math.nextDown(threshold),
                threshold * 0.999f, threshold * 1.001f}) {
                assertEquals(plainCount(t, v), index.count(v), () -> "v=" + v + " " + table);
            }
        }
        SplittableRandom rng = new SplittableRandom(seed);
        float span = Math.max(Math.abs(t[0]), Math.abs(t[t.length - 1])) * 3 + 1e-30f;
        for (int i = 0; i < 2000; i++) {
            float v = (float) ((rng.nextDouble() * 2 - 1) * span);
            assertEquals(plainCount(t, v), index.count(v), () -> "v=" + v + " " + table);
        }
        for (float v : new float[] {Float.NEGATIVE_INFINITY, -Float.MAX_VALUE, -1e30f, -0f, 0f,
            Float.MIN_VALUE, 1e30f, Float.MAX_VALUE, Float.POSITIVE_INFINITY}) {
            assertEquals(plainCount(t, v), index.count(v), () -> "v=" + v + " " + table);
        }
    }

    @Test
    void sparseTablesGetAnIndexAndDenseOnesDoNot() {
        float[] nf4Like = new float[15];
        for (int j = 0; j < nf4Like.length; j++) {
            nf4Like[j] = -0.9f + j * 0.12f;
        }
        assertNotNull(BucketIndex.of(BucketTable.identityCodes(nf4Like)));
        float[] dense = new float[255];
        for (int j = 0; j < dense.length; j++) {
            dense[j] = (float) Math.pow(10, -8 + 8.0 * j / 254); // gaps from ~1e-9 to ~0.07
        }
        assertNull(BucketIndex.of(BucketTable.identityCodes(dense)));
    }

    private static int plainCount(float[] thresholds, float v) {
        int k = 0;
        for (float t : thresholds) {
            k += v > t ? 1 : 0;
        }
        return k;
    }
}
