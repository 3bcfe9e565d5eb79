package dev.loftq.quant.codebook;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.io.SafetensorsFile;
import dev.loftq.core.tensor.BucketTable;
import dev.loftq.quant.Vectors;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Each derived {@link BucketTable} against an independent scalar oracle written from the kernel or
 * library it models, on every threshold and its float neighbours and on random values.
 */
class EncodersTest {
    private static final SafetensorsFile BOOKS = Vectors.load("codebooks");

    @Test
    void nf4UsesTheKernelLiteralsFourOfWhichAreOneUlpOffTheMidpoints() {
        float[] kernel = BOOKS.tensor("nf4_thresholds_cuda").floats();
        float[] midpoints = BOOKS.tensor("nf4_f32_midpoints").floats();
        float[] ours = Encoders.bitsandbytes(Codebook.NF4).thresholds();
        assertBitsEqual(kernel, ours);
        List<Integer> differing = new ArrayList<>();
        for (int i = 0; i < kernel.length; i++) {
            if (kernel[i] != midpoints[i]) {
                assertEquals(1, Math.abs(Float.floatToIntBits(kernel[i]) - Float.floatToIntBits(midpoints[i])));
                differing.add(i);
            }
        }
        assertEquals(List.of(0, 8, 12, 14), differing);
        BucketTable t = Encoders.bitsandbytes(Codebook.NF4);
        for (float v : probes(kernel, 5000)) {
            int expected = 0;
            for (float k : kernel) {
                expected += v > k ? 1 : 0;
            }
            assertEquals(expected, t.encode(v), () -> "nf4 at " + v);
        }
        assertEquals(0, t.encode(Float.NaN));
    }

    @Test
    void fp4MatchesTheKernelsSignAndMagnitudeTree() {
        float[] u = BOOKS.tensor("fp4_thresholds_cuda").floats();
        byte[] magnitudeCode = BOOKS.tensor("fp4_magnitude_code").bytes();
        BucketTable t = Encoders.bitsandbytes(Codebook.FP4);
        List<Float> values = new ArrayList<>();
        for (float v : probes(u, 5000)) {
            values.add(v);
            values.add(-v);
        }
        values.addAll(List.of(0f, -0f, Float.MIN_VALUE, -Float.MIN_VALUE, 1f, -1f, 2f, -2f, Float.NaN));
        for (float v : values) {
            int sign = v < 0 ? 8 : 0;
            float a = Math.abs(v);
            int k = 0;
            for (float threshold : u) {
                k += a > threshold ? 1 : 0;
            }
            int expected = magnitudeCode[k] | sign;
            assertEquals(expected, t.encode(v), () -> "fp4 at " + v + " (bits "
                    + Integer.toHexString(Float.floatToRawIntBits(v)) + ")");
        }
        assertEquals(8, t.encode(-0.002f)); // |xn| <= U[0]: -0.0
    }

    @Test
    void dynamicMapFollowsTheKernelsBinarySearch() {
        float[] code = Codebook.DYNAMIC_8BIT.values();
        float[] mids = new float[255];
        for (int k = 0; k < 255; k++) {
            mids[k] = (code[k] + code[k + 1]) * 0.5f;
        }
        BucketTable t = Encoders.bitsandbytes(Codebook.DYNAMIC_8BIT);
        List<Float> values = new ArrayList<>();
        for (float v : probes(mids, 200_000)) {
            values.add(v);
        }
        for (float c : code) {
            values.add(c);
        }
        values.addAll(List.of(-1f, 1f, 0f, -0f, Float.NaN));
        int ties = 0;
        for (float v : values) {
            int expected = dQuantize(code, v);
            assertEquals(expected, t.encode(v), () -> "dynamic map at " + v);
        }
        for (int k = 0; k < 255; k++) {
            int expected = k % 2 == 0 ? k : k + 1;
            ties += t.encode(mids[k]) == expected ? 1 : 0;
        }
        assertEquals(255, ties, "a value on a midpoint goes to the even index");
    }

    @Test
    void otherSortedCodebooksUseMidpointsWithTiesToEven() {
        BucketTable t = Encoders.bitsandbytes(Codebook.UNIFORM4);
        float[] v = Codebook.UNIFORM4.values();
        for (int k = 0; k < 15; k++) {
            float m = (v[k] + v[k + 1]) * 0.5f;
            assertEquals(k % 2 == 0 ? k : k + 1, t.encode(m));
            assertEquals(k, t.encode(Math.nextDown(m)));
            assertEquals(k + 1, t.encode(Math.nextUp(m)));
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Encoders.bitsandbytes(Codebook.of("unsorted", 1f, -1f)));
        assertTrue(e.getMessage().startsWith("codebook unsorted must be strictly increasing"),
                e.getMessage());
    }

    static Stream<Codebook> argminCodebooks() {
        return Stream.of(Codebook.NF2, Codebook.NF3, Codebook.NF4, Codebook.FP4, Codebook.UNIFORM2,
                Codebook.UNIFORM3, Codebook.UNIFORM4, Codebook.DYNAMIC_8BIT,
                Codebook.of("unsorted-with-duplicates", 0.5f, -1f, 0.5f, 1f, 0f, -0f, -0.25f));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("argminCodebooks")
    void argminEqualsTorchArgminWithinItsExactRange(Codebook codebook) {
        float[] table = codebook.values();
        BucketTable t = Encoders.firstIndexArgmin(codebook);
        float range = Encoders.argminExactRange(codebook);
        assertTrue(range >= 2f, "range " + range);
        List<Float> values = new ArrayList<>();
        for (float v : probes(t.thresholds(), 20_000)) {
            values.add(v);
        }
        SplittableRandom rnd = new SplittableRandom(7);
        for (int i = 0; i < 5000; i++) {
            values.add((float) ((rnd.nextDouble() * 2 - 1) * range));
            values.add((float) ((rnd.nextDouble() * 2 - 1) * 4));
        }
        values.addAll(List.of(range, -range, 0f, -0f, Float.NaN));
        for (float v : values) {
            assertEquals(argmin(table, v), t.encode(v), () -> codebook.name() + " at " + v);
        }
    }

    @Test
    void argminRangeIsWhereFloatRoundingStartsToTieFarValues() {
        BucketTable t = Encoders.firstIndexArgmin(Codebook.UNIFORM4);
        float[] table = Codebook.UNIFORM4.values();
        assertEquals(0x1p19f, Encoders.argminExactRange(Codebook.UNIFORM4));
        assertEquals(0x1p20f, Encoders.argminExactRange(Codebook.NF2));
        assertEquals(2f, Encoders.argminExactRange(Codebook.DYNAMIC_8BIT));
        float x = 0x1p20f;
        while (argmin(table, x) == t.encode(x)) {
            x = Math.nextUp(x);
        }
        assertTrue(x > 0x1p20f, "first disagreement at " + x);
        assertTrue(argmin(table, x) < 15, "torch's argmin picks a far value at " + x);
    }

    /** torch.argmin(|x - table|) in float32: first minimum; an all-NaN row gives 0. */
    private static int argmin(float[] table, float x) {
        int best = 0;
        float bestDistance = Math.abs(x - table[0]);
        for (int j = 1; j < table.length; j++) {
            float d = Math.abs(x - table[j]);
            if (d < bestDistance) {
                best = j;
                bestDistance = d;
            }
        }
        return best;
    }

    /** bitsandbytes' {@code dQuantize<0>}: the 7-step binary search, then the midpoint test. */
    private static int dQuantize(float[] code, float x) {
        int pivot = 127;
        int upperPivot = 255;
        int lowerPivot = 0;
        float lower = -1f;
        float upper = 1f;
        float val = code[pivot];
        for (int i = 64; i > 0; i >>= 1) {
            if (x > val) {
                lowerPivot = pivot;
                lower = val;
                pivot += i;
            } else {
                upperPivot = pivot;
                upper = val;
                pivot -= i;
            }
            val = code[pivot];
        }
        if (upperPivot == 255) {
            upper = code[255];
        }
        if (lowerPivot == 0) {
            lower = code[0];
        }
        if (x > val) {
            float midpoint = (upper + val) * 0.5f;
            return x > midpoint ? upperPivot : pivot;
        }
        float midpoint = (lower + val) * 0.5f;
        return x < midpoint ? lowerPivot : pivot;
    }

    /** Each point, its two float neighbours on each side, and random values in [-1.1, 1.1]. */
    private static float[] probes(float[] points, int random) {
        float[] out = new float[points.length * 5 + random];
        int n = 0;
        for (float p : points) {
            out[n++] = p;
            out[n++] = Math.nextUp(p);
            out[n++] = Math.nextUp(Math.nextUp(p));
            out[n++] = Math.nextDown(p);
            out[n++] = Math.nextDown(Math.nextDown(p));
        }
        SplittableRandom rnd = new SplittableRandom(42);
        for (int i = 0; i < random; i++) {
            out[n++] = (float) (rnd.nextDouble() * 2.2 - 1.1);
        }
        return out;
    }

    private static void assertBitsEqual(float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]),
                    "element " + i);
        }
    }
}
