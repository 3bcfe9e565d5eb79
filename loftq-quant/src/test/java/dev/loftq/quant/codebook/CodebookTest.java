package dev.loftq.quant.codebook;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.io.SafetensorsFile;
import dev.loftq.quant.Vectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class CodebookTest {
    private static final SafetensorsFile BOOKS = Vectors.load("codebooks");

    static Stream<Arguments> builtIns() {
        return Stream.of(
                Arguments.of(Codebook.NF4, "nf4_bnb", 4),
                Arguments.of(Codebook.NF4, "nf4", 4),
                Arguments.of(Codebook.NF3, "nf3", 3),
                Arguments.of(Codebook.NF2, "nf2", 2),
                Arguments.of(Codebook.FP4, "fp4_bnb", 4),
                Arguments.of(Codebook.UNIFORM2, "uniform2", 2),
                Arguments.of(Codebook.UNIFORM3, "uniform3", 3),
                Arguments.of(Codebook.UNIFORM4, "uniform4", 4),
                Arguments.of(Codebook.DYNAMIC_8BIT, "dynamic_map", 8));
    }

    @ParameterizedTest(name = "{0} == codebooks.safetensors:{1}")
    @MethodSource("builtIns")
    void builtInTablesMatchTheVectorsBitForBit(Codebook codebook, String tensor, int bits) {
        float[] expected = BOOKS.tensor(tensor).floats();
        float[] actual = codebook.values();
        assertEquals(expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]),
                    codebook.name() + "[" + i + "]: expected " + expected[i] + ", got " + actual[i]);
        }
        assertEquals(bits, codebook.bits());
    }

    @Test
    void factoriesPickTheTables() {
        assertSame(Codebook.NF2, Codebook.normalFloat(2));
        assertSame(Codebook.NF3, Codebook.normalFloat(3));
        assertSame(Codebook.NF4, Codebook.normalFloat(4));
        assertSame(Codebook.UNIFORM2, Codebook.uniform(2));
        assertSame(Codebook.UNIFORM4, Codebook.uniform(4));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Codebook.normalFloat(8));
        assertEquals("NormalFloat bits must be one of [2, 3, 4], got 8", e.getMessage());
    }

    @Test
    void roundingErrorIsHalfTheLargestGapOrTheDistanceToAnEnd() {
        assertEquals(0.5, Codebook.NF2.maxRoundingError()); // the gap -1 .. 0
        assertEquals((1.0 - (double) Codebook.UNIFORM2.value(2)) / 2, Codebook.UNIFORM2.maxRoundingError());
        // FP4's largest gap is 2/3 .. 1
        assertEquals((1.0 - (double) Codebook.FP4.value(2)) / 2, Codebook.FP4.maxRoundingError());
        Codebook half = Codebook.of("half", -0.5f, 0.5f);
        assertEquals(0.5, half.maxRoundingError());
        assertEquals(1.0, half.minGap());
        assertEquals((double) Codebook.DYNAMIC_8BIT.value(128), Codebook.DYNAMIC_8BIT.minGap());
    }

    @Test
    void customCodebooksAreValidated() {
        Codebook ternary = Codebook.of("ternary", -1f, 0f, 1f);
        assertEquals(2, ternary.bits());
        assertEquals(8, Codebook.of("five-bit", spread(32)).bits());
        assertTrue(ternary.isSorted());
        assertFalse(Codebook.FP4.isSorted());
        assertEquals("codebook bad: value 1 must be finite and in [-1, 1], got 1.5",
                assertThrows(IllegalArgumentException.class,
                        () -> Codebook.of("bad", 0f, 1.5f)).getMessage());
        assertEquals("number of codebook values must be in [2, 256], got 1",
                assertThrows(IllegalArgumentException.class, () -> Codebook.of("one", 0f)).getMessage());
        assertEquals("codebook zeros: needs at least two distinct values, got [0.0, -0.0]",
                assertThrows(IllegalArgumentException.class,
                        () -> Codebook.of("zeros", 0f, -0f)).getMessage());
        assertThrows(IllegalArgumentException.class, () -> Codebook.of("nan", 0f, Float.NaN));
        assertThrows(IllegalArgumentException.class, () -> Codebook.NF4.value(16));
    }

    @Test
    void equalityIsByNameAndBits() {
        assertEquals(Codebook.NF4, Codebook.of("nf4", Codebook.NF4.values()));
        assertEquals(Codebook.NF4.hashCode(), Codebook.of("nf4", Codebook.NF4.values()).hashCode());
        assertNotEquals(Codebook.NF4, Codebook.of("mine", Codebook.NF4.values()));
        float[] v = Codebook.NF4.values();
        v[7] = -0f;
        assertNotEquals(Codebook.NF4, Codebook.of("nf4", v));
    }

    private static float[] spread(int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = -1f + 2f * i / (n - 1);
        }
        return v;
    }
}
