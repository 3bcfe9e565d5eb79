package dev.loftq.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import org.junit.jupiter.api.Test;

class FloatConversionsTest {
    @Test
    void everyHalfAndBfloat16SurvivesWideningAndNarrowing() {
        for (int h = 0; h <= 0xFFFF; h++) {
            float half = FloatConversions.halfToFloat((short) h);
            float bf16 = Float.intBitsToFloat(h << 16);
            short halfBack = FloatConversions.floatToHalf(half);
            short bf16Back = FloatConversions.floatToBfloat16(bf16);
            String hex = "0x" + Integer.toHexString(h);
            if (Float.isNaN(half)) {
                assertTrue(Float.isNaN(FloatConversions.halfToFloat(halfBack)), hex);
            } else {
                assertEquals((short) h, halfBack, "half " + hex);
            }
            if (Float.isNaN(bf16)) {
                assertTrue(Float.isNaN(Float.intBitsToFloat(bf16Back << 16)), hex);
            } else {
                assertEquals((short) h, bf16Back, "bf16 " + hex);
            }
        }
    }

    /** Narrowing rounds to nearest, ties to even: no representable value is closer. */
    @Property(tries = 2000)
    void narrowingPicksTheNearestValue(@ForAll float x) {
        if (Float.isNaN(x) || Math.abs(x) > 60000f) {
            return;
        }
        short h = FloatConversions.floatToHalf(x);
        double err = Math.abs((double) FloatConversions.halfToFloat(h) - x);
        for (int d = -1; d <= 1; d += 2) {
            short n = (short) (h + d);
            float neighbour = FloatConversions.halfToFloat(n);
            if (!Float.isNaN(neighbour) && !Float.isInfinite(neighbour)
                    && Math.signum(neighbour) * Math.signum(FloatConversions.halfToFloat(h)) >= 0) {
                assertTrue(err <= Math.abs((double) neighbour - x), x + " -> " + h);
            }
        }
        short b = FloatConversions.floatToBfloat16(x);
        double errB = Math.abs((double) Float.intBitsToFloat(b << 16) - x);
        for (int d = -1; d <= 1; d += 2) {
            float neighbour = Float.intBitsToFloat(((short) (b + d)) << 16);
            if (!Float.isNaN(neighbour) && !Float.isInfinite(neighbour)
                    && Math.signum(neighbour) * Math.signum(Float.intBitsToFloat(b << 16)) >= 0) {
                assertTrue(errB <= Math.abs((double) neighbour - x), x + " -> bf16 " + b);
            }
        }
    }
}
