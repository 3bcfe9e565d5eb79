package dev.loftq.core.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.testkit.LoftqArbitraries;
import java.util.SplittableRandom;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

/**
 * The SIMD kernels give the scalar kernels' bits: encode's codes and the codebook fit's statistics
 * agree on tables of every size (those above {@link VectorKernels#MAX_THRESHOLDS} stay scalar),
 * block sizes that are and are not multiples of 16, a short last block, both scale modes, and
 * inputs at the thresholds, at zero scales and NaN. The test JVM runs with the module (the build's
 * surefire argLine), so the public kernels, which every backend contract test calls, take the
 * SIMD path there.
 */
class VectorKernelsTest {

    @Test
    void theTestJvmRunsTheSimdKernels() {
        assertTrue(ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent(),
                "surefire must start test JVMs with --add-modules jdk.incubator.vector");
        assertEquals(VectorKernels.supported(), HostKernels.vectorized());
    }

    @Provide
    Arbitrary<BucketTable> tables() {
        return LoftqArbitraries.bucketTables();
    }

    @Provide
    Arbitrary<Integer> blockSizes() {
        return Arbitraries.of(1, 5, 16, 17, 32, 64, 100, 256);
    }

    @Property(tries = 200)
    void encodeGivesTheScalarCodes(@ForAll("tables") BucketTable table,
            @ForAll("blockSizes") int blockSize, @ForAll ScaleMode mode, @ForAll long seed) {
        Input in = Input.random(table, blockSize, 1, seed);
        byte[] scalar = new byte[in.n];
        byte[] simd = new byte[in.n];
        HostKernels.encode(in.x, in.n, in.scale, blockSize, mode, table, scalar, false);
        HostKernels.encode(in.x, in.n, in.scale, blockSize, mode, table, simd, true);
        assertArrayEquals(scalar, simd, table::toString);
        for (int i = 0; i < in.n; i++) { // and the table's own encoder, element by element
            float s = in.scale[i / blockSize];
            float xn = mode == ScaleMode.MULTIPLY_RECIPROCAL ? in.x[i] * (1f / s) : in.x[i] / s;
            assertEquals((byte) table.encode(xn), simd[i]);
        }
    }

    @Property(tries = 200)
    void codebookFitGivesTheScalarStatistics(@ForAll("tables") BucketTable table,
            @ForAll("blockSizes") int blockSize, @ForAll ScaleMode mode, @ForAll long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        int sets = 1 + rng.nextInt(3);
        Input in = Input.random(table, blockSize, sets, seed);
        float[] values = new float[256];
        for (int k = 0; k < values.length; k++) {
            values[k] = (float) (rng.nextDouble() * 2 - 1);
        }
        int nb = HostKernels.blockCount(in.n, blockSize);
        float[] scalar = new float[3 * sets * nb];
        float[] simd = new float[3 * sets * nb];
        HostKernels.blockCodebookFit(in.x, in.n, in.scale, sets, blockSize, mode, table, values,
                scalar, false);
        HostKernels.blockCodebookFit(in.x, in.n, in.scale, sets, blockSize, mode, table, values,
                simd, true);
        for (int k = 0; k < scalar.length; k++) {
            int at = k;
            assertEquals(Float.floatToIntBits(scalar[k]), Float.floatToIntBits(simd[k]),
                    () -> "statistic " + at + ": " + scalar[at] + " vs " + simd[at] + " " + table);
        }
    }

    /** Flat values and {@code sets} scale sets of whole and short blocks. */
    private record Input(float[] x, int n, float[] scale) {
        static Input random(BucketTable table, int blockSize, int sets, long seed) {
            SplittableRandom rng = new SplittableRandom(seed);
            int nb = 1 + rng.nextInt(6);
            int n = (nb - 1) * blockSize + 1 + rng.nextInt(blockSize); // the last block may be short
            float[] t = table.thresholds();
            float[] scale = new float[sets * nb];
            for (int j = 0; j < scale.length; j++) {
                int kind = rng.nextInt(20);
                scale[j] = kind == 0 ? 0f : kind == 1 ? Float.NaN
                        : (float) Math.pow(10, rng.nextDouble(-3, 3));
            }
            float[] x = new float[n];
            for (int i = 0; i < n; i++) {
                float s = scale[i / blockSize];
                int kind = rng.nextInt(40);
                x[i] = switch (kind) {
                    case 0 -> Float.NaN;
                    case 1 -> rng.nextBoolean() ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY;
                    case 2 -> rng.nextBoolean() ? 0f : -0f;
                    // on and next to a threshold, scaled back
                    case 3, 4, 5, 6, 7, 8 -> {
                        float at = t[rng.nextInt(t.length)] * s;
                        yield kind % 3 == 0 ? at : kind % 3 == 1 ? Math.nextUp(at) : Math.nextDown(at);
                    }
                    default -> (float) ((rng.nextDouble() * 2.4 - 1.2)
                            * Math.max(Math.abs(t[0]), Math.abs(t[t.length - 1])) * s);
                };
            }
            return new Input(x, n, scale);
        }
    }
}
