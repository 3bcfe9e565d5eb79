package dev.loftq.core.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.tensor.BucketTable;
import dev.loftq.core.testkit.LoftqArbitraries.Distribution;
import java.util.Arrays;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.Tuple.Tuple2;
import net.jqwik.api.constraints.IntRange;

/** The shared arbitraries generate what their javadoc promises. */
class LoftqArbitrariesTest {
    @Property(tries = 100)
    void matricesHaveBoundedShapes(@ForAll("matrices") Matrix m) {
        assertTrue(m.rows() >= 1 && m.rows() <= LoftqArbitraries.MAX_SIDE, "rows " + m.rows());
        assertTrue(m.cols() >= 1 && m.cols() <= LoftqArbitraries.MAX_SIDE, "cols " + m.cols());
        assertEquals(m.rows() * m.cols(), m.data().length, "data length");
    }

    @Provide
    Arbitrary<Matrix> matrices() {
        return LoftqArbitraries.matrices();
    }

    @Property(tries = 100)
    void wellScaledMatricesAreFiniteAndModerate(@ForAll("wellScaled") Matrix m) {
        for (int i = 0; i < m.size(); i++) {
            float v = m.at(i);
            assertTrue(Float.isFinite(v) && Math.abs(v) < 1e9f, "value " + v + " at " + i);
        }
    }

    @Provide
    Arbitrary<Matrix> wellScaled() {
        return LoftqArbitraries.wellScaledMatrices(64, 64);
    }

    @Property(tries = 50)
    void valuesAreDeterministic(@ForAll Distribution d, @ForAll long seed,
            @ForAll @IntRange(min = 0, max = 40) int rows,
            @ForAll @IntRange(min = 0, max = 40) int cols) {
        float[] first = LoftqArbitraries.values(d, rows, cols, seed);
        float[] second = LoftqArbitraries.values(d, rows, cols, seed);
        assertEquals(rows * cols, first.length, "length");
        assertTrue(Arrays.equals(first, second), "same seed, same values");
        if (d.finite()) {
            for (float v : first) {
                assertTrue(Float.isFinite(v), d + " gave " + v);
            }
        }
    }

    @Example
    void distributionsHaveTheirFeatures() {
        float[] zeroRows = LoftqArbitraries.values(Distribution.ZERO_ROWS, 30, 20, 7);
        boolean someZeroRow = false;
        for (int r = 0; r < 30 && !someZeroRow; r++) {
            someZeroRow = Arrays.equals(Arrays.copyOfRange(zeroRows, r * 20, r * 20 + 20),
                    new float[20]);
        }
        assertTrue(someZeroRow, "ZERO_ROWS has an all-zero row");

        float[] spike = LoftqArbitraries.values(Distribution.SPIKE, 10, 10, 3);
        assertEquals(99, Arrays.stream(toDoubles(spike)).filter(v -> v == 0).count(),
                "SPIKE has one non-zero");

        float[] sub = LoftqArbitraries.values(Distribution.SUBNORMAL, 10, 10, 5);
        for (float v : sub) {
            assertTrue(Math.abs(v) <= Float.MIN_NORMAL, "SUBNORMAL gave " + v);
        }

        float[] blocks = LoftqArbitraries.values(Distribution.CONSTANT_BLOCKS, 1, 64 * 30, 11);
        int constant = 0;
        for (int b = 0; b < 30; b++) {
            float first = blocks[b * 64];
            boolean same = true;
            for (int i = 1; i < 64; i++) {
                same &= blocks[b * 64 + i] == first;
            }
            constant += same ? 1 : 0;
        }
        assertTrue(constant >= 10, "CONSTANT_BLOCKS has constant 64-blocks, got " + constant
                + " of 30");

        float[] nonFinite = LoftqArbitraries.values(Distribution.NON_FINITE, 100, 100, 13);
        assertTrue(Arrays.stream(toDoubles(nonFinite)).anyMatch(Double::isNaN),
                "NON_FINITE has NaN");
        assertTrue(Arrays.stream(toDoubles(nonFinite)).anyMatch(Double::isInfinite),
                "NON_FINITE has Inf");

        float[] extreme = LoftqArbitraries.values(Distribution.EXTREME, 100, 100, 17);
        assertTrue(Arrays.stream(toDoubles(extreme)).anyMatch(v -> Math.abs(v) == Float.MAX_VALUE),
                "EXTREME has ±MAX_VALUE");
    }

    private static double[] toDoubles(float[] x) {
        double[] d = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            d[i] = x[i];
        }
        return d;
    }

    @Property(tries = 50)
    void broadcastShapesBroadcast(@ForAll("triples") int[][] shapes) {
        int[] out = Oracle.broadcast(Oracle.broadcast(shapes[0], shapes[1]), shapes[2]);
        for (int[] s : shapes) {
            for (int a = 0; a < s.length; a++) {
                int d = out[out.length - s.length + a];
                assertTrue(s[a] == 1 || s[a] == d, Arrays.toString(s) + " vs "
                        + Arrays.toString(out));
            }
        }
    }

    @Provide
    Arbitrary<int[][]> triples() {
        return LoftqArbitraries.broadcastShapes(3);
    }

    @Property(tries = 50)
    void codesFitTheirBitWidth(@ForAll("codeArrays") Tuple2<Integer, byte[]> bitsAndCodes) {
        int bits = bitsAndCodes.get1();
        for (byte c : bitsAndCodes.get2()) {
            assertTrue((c & 0xFF) < (1 << bits), "code " + (c & 0xFF) + " at " + bits + " bits");
        }
    }

    @Provide
    Arbitrary<Tuple2<Integer, byte[]>> codeArrays() {
        return LoftqArbitraries.bitWidths()
                .flatMap(b -> LoftqArbitraries.codes(b, 100).map(c -> Tuple.of(b, c)));
    }

    @Provide
    Arbitrary<Integer> bits() {
        return LoftqArbitraries.bitWidths();
    }

    @Property(tries = 50)
    void codebooksAreSortedAndSeparated(@ForAll("bits") int bits, @ForAll long seed) {
        float[] book = LoftqArbitraries.codebook(bits, seed);
        assertEquals(1 << bits, book.length, "codebook size");
        assertEquals(-1f, book[0], "first value");
        for (int j = 1; j < book.length; j++) {
            assertTrue(book[j] - book[j - 1] >= 0x1p-10f, "gap at " + j + " in "
                    + Arrays.toString(book));
        }
        BucketTable nearest = LoftqArbitraries.nearestTable(book);
        for (int j = 0; j < book.length; j++) {
            assertEquals(j, nearest.encode(book[j]), "nearest code of value " + j);
        }
    }

    @Property(tries = 50)
    void bucketTablesAreValid(@ForAll("tables") BucketTable table) {
        float[] t = table.thresholds();
        assertTrue(t.length >= 1 && t.length <= 255, "size " + t.length);
        assertEquals(t.length + 1, table.codes().length, "codes length");
    }

    @Provide
    Arbitrary<BucketTable> tables() {
        return LoftqArbitraries.bucketTables();
    }

    @Property(tries = 50)
    void blockSizesArePositive(@ForAll("blockSizes") int blockSize) {
        assertTrue(blockSize >= 1 && blockSize <= 1024, "block size " + blockSize);
    }

    @Provide
    Arbitrary<Integer> blockSizes() {
        return LoftqArbitraries.blockSizes();
    }
}
