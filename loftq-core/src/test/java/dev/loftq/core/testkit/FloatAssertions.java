package dev.loftq.core.testkit;

import java.util.Arrays;

/**
 * Comparisons of backend results with expected values, each reporting the first mismatching
 * index, both values and how many elements differ. The comparison kinds are the tolerances of the
 * backend test kit:
 * <ul>
 *   <li>{@link #assertSameBits}: identical float32 bits; NaN matches any NaN (payloads are not
 *       part of any contract);</li>
 *   <li>{@link #assertSameValues}: equal as numbers ({@code ==}) or both NaN, so {@code -0} and
 *       {@code +0} match (for operations whose sign of zero is unspecified);</li>
 *   <li>{@link #assertWithinUlps}: within k ulps of a double reference (or within an absolute
 *       floor, for results in the subnormal range);</li>
 *   <li>{@link #assertWithin}: {@code |actual - expected| <= rel * scale[i] + abs}, for sums
 *       whose rounding depends on the summation order.</li>
 * </ul>
 * Infinities must match exactly and NaN must match NaN in every kind.
 */
public final class FloatAssertions {
    private FloatAssertions() {}

    /** Identical bits (NaN payloads ignored) and equal lengths. */
    public static void assertSameBits(String what, float[] expected, float[] actual) {
        assertLength(what, expected.length, actual.length);
        int bad = 0;
        int first = -1;
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(actual[i])) {
                bad++;
                first = first < 0 ? i : first;
            }
        }
        report(what, "same bits", bad, first, first < 0 ? "" : String.valueOf(expected[first]),
                first < 0 ? "" : String.valueOf(actual[first]), expected.length);
    }

    /** Equal as numbers, or both NaN. */
    public static void assertSameValues(String what, float[] expected, float[] actual) {
        assertLength(what, expected.length, actual.length);
        int bad = 0;
        int first = -1;
        for (int i = 0; i < expected.length; i++) {
            float e = expected[i];
            float a = actual[i];
            if (!(e == a || (e != e && a != a))) {
                bad++;
                first = first < 0 ? i : first;
            }
        }
        report(what, "same values (±0 equal)", bad, first,
                first < 0 ? "" : String.valueOf(expected[first]),
                first < 0 ? "" : String.valueOf(actual[first]), expected.length);
    }

    /**
     * {@code |actual - expected| <= max(ulps * ulp((float) expected), absFloor)}; NaN and
     * infinities exact.
     */
    public static void assertWithinUlps(String what, double[] expected, float[] actual, int ulps,
            double absFloor) {
        assertLength(what, expected.length, actual.length);
        int bad = 0;
        int first = -1;
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i];
            float a = actual[i];
            boolean ok;
            if (Double.isNaN(e) || Double.isInfinite(e) || !Float.isFinite(a)) {
                ok = Double.isNaN(e) ? a != a : e == a;
            } else {
                double tol = Math.max(ulps * (double) Math.ulp((float) e), absFloor);
                ok = Math.abs(a - e) <= tol;
            }
            if (!ok) {
                bad++;
                first = first < 0 ? i : first;
            }
        }
        report(what, "within " + ulps + " ulps (floor " + absFloor + ")", bad, first,
                first < 0 ? "" : String.valueOf(expected[first]),
                first < 0 ? "" : String.valueOf(actual[first]), expected.length);
    }

    /**
     * {@code |actual - expected| <= rel * scale[i] + abs} with {@code scale[i] >= 0} (typically the
     * sum of the absolute values of the terms); NaN and infinities exact.
     */
    public static void assertWithin(String what, double[] expected, double[] scale, float[] actual,
            double rel, double abs) {
        assertLength(what, expected.length, actual.length);
        int bad = 0;
        int first = -1;
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i];
            float a = actual[i];
            boolean ok;
            if (Double.isNaN(e) || Double.isInfinite(e) || !Float.isFinite(a)) {
                ok = Double.isNaN(e) ? a != a : e == a;
            } else {
                ok = Math.abs(a - e) <= rel * scale[i] + abs;
            }
            if (!ok) {
                bad++;
                first = first < 0 ? i : first;
            }
        }
        report(what, "within " + rel + " * scale + " + abs
                + (first < 0 ? "" : " (scale there " + scale[first] + ")"), bad, first,
                first < 0 ? "" : String.valueOf(expected[first]),
                first < 0 ? "" : String.valueOf(actual[first]), expected.length);
    }

    /** {@link #assertWithin} between two float results, e.g. two backends. */
    public static void assertWithin(String what, float[] expected, double[] scale, float[] actual,
            double rel, double abs) {
        double[] e = new double[expected.length];
        for (int i = 0; i < e.length; i++) {
            e[i] = expected[i];
        }
        assertWithin(what, e, scale, actual, rel, abs);
    }

    /** Identical bytes and equal lengths. */
    public static void assertSameBytes(String what, byte[] expected, byte[] actual) {
        assertLength(what, expected.length, actual.length);
        int bad = 0;
        int first = -1;
        for (int i = 0; i < expected.length; i++) {
            if (expected[i] != actual[i]) {
                bad++;
                first = first < 0 ? i : first;
            }
        }
        report(what, "same bytes", bad, first,
                first < 0 ? "" : String.valueOf(expected[first] & 0xFF),
                first < 0 ? "" : String.valueOf(actual[first] & 0xFF), expected.length);
    }

    /** Equal shapes. */
    public static void assertShape(String what, int[] expected, int[] actual) {
        if (!Arrays.equals(expected, actual)) {
            throw new AssertionError(what + ": expected shape " + Arrays.toString(expected)
                    + ", got " + Arrays.toString(actual));
        }
    }

    private static void assertLength(String what, int expected, int actual) {
        if (expected != actual) {
            throw new AssertionError(what + ": expected " + expected + " elements, got " + actual);
        }
    }

    private static void report(String what, String kind, int bad, int first, String expected,
            String actual, int n) {
        if (bad > 0) {
            throw new AssertionError(what + ": " + bad + " of " + n + " elements differ (" + kind
                    + "); first at flat index " + first + ": expected " + expected + ", got "
                    + actual);
        }
    }
}
