package dev.loftq.core.testkit;

import dev.loftq.core.tensor.BucketTable;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.SplittableRandom;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.Tuple;

/**
 * Shared jqwik arbitraries for loftq: matrices and tensors of awkward shapes and value
 * distributions, block sizes, bit widths, code arrays and bucket tables.
 *
 * <p>Shapes are drawn from bounded ranges (sides up to {@link #MAX_SIDE}) with 1, 63, 64, 65,
 * 127, 128, 129 and the maximum as extra edge cases, so 1 x 1, tall, wide and
 * non-multiple-of-64 shapes all occur. Values are generated from a drawn seed by
 * {@link #values}, so a failing case shrinks by shape, distribution and seed rather than element by
 * element (which would be slow for 90 000-element matrices) and is reproducible from its printout.
 */
public final class LoftqArbitraries {
    private LoftqArbitraries() {}

    /** The largest side of a generated matrix. */
    public static final int MAX_SIDE = 300;

    /** Bit widths of {@link dev.loftq.core.tensor.TensorScope#pack}. */
    public static final int[] PACK_BITS = {1, 2, 3, 4, 8};

    /** Value distributions of generated data. */
    public enum Distribution {
        /** N(0, σ²) with σ = 10^u, u uniform in [-3, 3]. */
        GAUSSIAN(true),
        /** Student-t with 3 degrees of freedom, plus ~0.5 % planted outliers 100x larger. */
        HEAVY_TAILED(true),
        /** Gaussian with about a third of the rows all zero (every row when there is one). */
        ZERO_ROWS(true),
        /** Runs of 64 flat elements sharing one value (zero in a third of them), else Gaussian. */
        CONSTANT_BLOCKS(true),
        /** All zeros but one spike of magnitude 10^u, u in [0, 4], at a random position. */
        SPIKE(true),
        /** Subnormal values, zeros of both signs and ±Float.MIN_NORMAL. */
        SUBNORMAL(true),
        /** Multiples of 0.5 in [-300, 300]: rounding ties and the 0/255 clamp edges. */
        HALF_INTEGERS(true),
        /** Finite extremes: ±Float.MAX_VALUE, ±MIN_VALUE, ±0, ±1, large and tiny values. */
        EXTREME(false),
        /** Gaussian with about 5 % NaN, +Inf and -Inf. */
        NON_FINITE(false);

        private final boolean wellScaled;

        Distribution(boolean wellScaled) {
            this.wellScaled = wellScaled;
        }

        /**
         * True when every value is finite and sums or products of up to MAX_SIDE² terms cannot
         * overflow float32: safe for matmul and sum-like reductions.
         */
        public boolean wellScaled() {
            return wellScaled;
        }

        /** True when every value is finite. */
        public boolean finite() {
            return this != NON_FINITE;
        }

        /** The well-scaled distributions. */
        public static Distribution[] wellScaledValues() {
            return Arrays.stream(values()).filter(Distribution::wellScaled)
                    .toArray(Distribution[]::new);
        }

        /** The finite distributions. */
        public static Distribution[] finiteValues() {
            return Arrays.stream(values()).filter(Distribution::finite)
                    .toArray(Distribution[]::new);
        }
    }

    // ---- sizes ---------------------------------------------------------------------------------

    /** Sizes in [min, max], with the block-boundary sizes 1, 63, 64, 65, 127, 128, 129 and max. */
    public static Arbitrary<Integer> sides(int min, int max) {
        Integer[] edges = Arrays.stream(new int[] {min, 1, 2, 63, 64, 65, 127, 128, 129, max})
                .filter(v -> v >= min && v <= max).boxed().distinct().toArray(Integer[]::new);
        return Arbitraries.frequencyOf(
                Tuple.of(4, Arbitraries.integers().between(min, max)),
                Tuple.of(1, Arbitraries.of(edges)));
    }

    /** Block sizes of the coarse kernels: 1 to 1024, favouring the usual powers of two. */
    public static Arbitrary<Integer> blockSizes() {
        return Arbitraries.frequencyOf(
                Tuple.of(2, Arbitraries.of(1, 16, 32, 64, 128, 256, 1024)),
                Tuple.of(3, Arbitraries.integers().between(1, 1024)));
    }

    /** The bit widths of pack and unpack: 1, 2, 3, 4, 8. */
    public static Arbitrary<Integer> bitWidths() {
        return Arbitraries.of(1, 2, 3, 4, 8);
    }

    /** Distributions, any of {@code allowed} (all when empty). */
    public static Arbitrary<Distribution> distributions(Distribution... allowed) {
        return Arbitraries.of(allowed.length == 0 ? Distribution.values() : allowed);
    }

    // ---- matrices and tensors ------------------------------------------------------------------

    /** Matrices of every distribution, sides in [1, MAX_SIDE]. */
    public static Arbitrary<Matrix> matrices() {
        return matrices(MAX_SIDE, MAX_SIDE);
    }

    /**
     * Matrices with sides in [1, maxRows] x [1, maxCols] of any of {@code allowed} (all if
     * none).
     */
    public static Arbitrary<Matrix> matrices(int maxRows, int maxCols, Distribution... allowed) {
        return matrices(sides(1, maxRows), sides(1, maxCols), distributions(allowed));
    }

    /** Matrices of the well-scaled distributions (safe for sums and products). */
    public static Arbitrary<Matrix> wellScaledMatrices(int maxRows, int maxCols) {
        return matrices(maxRows, maxCols, Distribution.wellScaledValues());
    }

    /** Matrices with the given row and column sizes and distributions. */
    public static Arbitrary<Matrix> matrices(Arbitrary<Integer> rows, Arbitrary<Integer> cols,
            Arbitrary<Distribution> distribution) {
        return Combinators.combine(rows, cols, distribution, seeds())
                .as((r, c, d, seed) -> new Matrix(r, c, values(d, r, c, seed)));
    }

    /** Seeds for {@link #values}. */
    public static Arbitrary<Long> seeds() {
        return Arbitraries.longs();
    }

    /**
     * Shapes of rank 0 to {@code maxRank} with dimensions in [0, maxDim] (zero-size dimensions
     * included, but rarely).
     */
    public static Arbitrary<int[]> shapes(int maxRank, int maxDim) {
        Arbitrary<Integer> dims = Arbitraries.frequencyOf(
                Tuple.of(12, Arbitraries.integers().between(1, maxDim)),
                Tuple.of(1, Arbitraries.just(0)));
        return dims.array(int[].class).ofMinSize(0).ofMaxSize(maxRank);
    }

    /** Tensors of the given shapes filled from any of {@code allowed} (all if none). */
    public static Arbitrary<HostTensor> tensors(Arbitrary<int[]> shapes, Distribution... allowed) {
        return Combinators.combine(shapes, distributions(allowed), seeds())
                .as((s, d, seed) -> tensor(s, d, seed));
    }

    /**
     * Shapes of {@code operands} tensors that broadcast together: an output shape (small N-D
     * shapes of rank 0 to 4, or 2-D shapes up to MAX_SIDE) from which each operand drops leading
     * axes and sets some dimensions to 1.
     */
    public static Arbitrary<int[][]> broadcastShapes(int operands) {
        Arbitrary<int[]> out = Arbitraries.frequencyOf(
                Tuple.of(3, shapes(4, 6)),
                Tuple.of(1, Combinators.combine(sides(1, MAX_SIDE), sides(1, MAX_SIDE))
                        .as((r, c) -> new int[] {r, c})));
        return Combinators.combine(out, seeds()).as((shape, seed) -> {
            SplittableRandom rng = new SplittableRandom(seed);
            int[][] result = new int[operands][];
            for (int k = 0; k < operands; k++) {
                int drop = rng.nextInt(4) == 0 ? rng.nextInt(shape.length + 1) : 0;
                int[] s = Arrays.copyOfRange(shape, drop, shape.length);
                for (int a = 0; a < s.length; a++) {
                    if (rng.nextInt(3) == 0) {
                        s[a] = 1;
                    }
                }
                result[k] = s;
            }
            return result;
        });
    }

    /** A tensor of {@code shape} with values of {@code d} from {@code seed}. */
    public static HostTensor tensor(int[] shape, Distribution d, long seed) {
        long n = 1;
        for (int v : shape) {
            n *= v;
        }
        int cols = shape.length == 0 ? 1 : shape[shape.length - 1];
        int rows = cols == 0 ? 0 : (int) (n / cols);
        return new HostTensor(shape, cols == 0 ? new float[0] : values(d, rows, cols, seed));
    }

    /**
     * Row-major values of a [rows, cols] matrix drawn from {@code d} with a
     * {@link SplittableRandom} seeded by {@code seed}: deterministic.
     */
    public static float[] values(Distribution d, int rows, int cols, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        int n = Math.multiplyExact(rows, cols);
        float[] x = new float[n];
        switch (d) {
            case GAUSSIAN: {
                double sigma = Math.pow(10, rng.nextDouble(-3, 3));
                for (int i = 0; i < n; i++) {
                    x[i] = (float) (sigma * gaussian(rng));
                }
                break;
            }
            case HEAVY_TAILED:
                for (int i = 0; i < n; i++) {
                    double z = gaussian(rng);
                    double chi2 = 0;
                    for (int k = 0; k < 3; k++) {
                        double g = gaussian(rng);
                        chi2 += g * g;
                    }
                    double t = z / Math.sqrt(chi2 / 3);
                    x[i] = (float) (rng.nextInt(200) == 0 ? 100 * t : t);
                }
                break;
            case ZERO_ROWS:
                for (int r = 0; r < rows; r++) {
                    boolean zero = rows == 1 || rng.nextInt(3) == 0;
                    for (int c = 0; c < cols; c++) {
                        x[r * cols + c] = zero ? 0f : (float) gaussian(rng);
                    }
                }
                break;
            case CONSTANT_BLOCKS:
                for (int o = 0; o < n; o += 64) {
                    int end = Math.min(n, o + 64);
                    int kind = rng.nextInt(3);
                    float v = kind == 0 ? 0f : (float) gaussian(rng);
                    for (int i = o; i < end; i++) {
                        x[i] = kind == 2 ? (float) gaussian(rng) : v;
                    }
                }
                break;
            case SPIKE:
                if (n > 0) {
                    float spike = (float) (Math.pow(10, rng.nextDouble(0, 4)));
                    x[rng.nextInt(n)] = rng.nextBoolean() ? spike : -spike;
                }
                break;
            case SUBNORMAL:
                for (int i = 0; i < n; i++) {
                    int kind = rng.nextInt(8);
                    float v = kind == 0 ? 0f : kind == 1 ? Float.MIN_NORMAL
                            : Float.intBitsToFloat(1 + rng.nextInt(0x007F_FFFF));
                    x[i] = rng.nextBoolean() ? v : -v;
                }
                break;
            case HALF_INTEGERS:
                for (int i = 0; i < n; i++) {
                    x[i] = rng.nextInt(-600, 601) * 0.5f;
                }
                break;
            case EXTREME: {
                float[] pool = {Float.MAX_VALUE, Float.MIN_VALUE, Float.MIN_NORMAL, 0f, 1f, 0.5f,
                    1.5f, 2.5f, 255f, 255.5f, 256f, 1e30f, 1e-30f, 3.4e38f, 16777217f, 8388608.5f};
                for (int i = 0; i < n; i++) {
                    float v = rng.nextInt(4) == 0 ? (float) gaussian(rng)
                            : pool[rng.nextInt(pool.length)];
                    x[i] = rng.nextBoolean() ? v : -v;
                }
                break;
            }
            case NON_FINITE: {
                float[] special = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
                for (int i = 0; i < n; i++) {
                    x[i] = rng.nextInt(20) == 0 ? special[rng.nextInt(3)] : (float) gaussian(rng);
                }
                break;
            }
            default:
                throw new AssertionError(d);
        }
        return x;
    }

    private static double gaussian(SplittableRandom rng) {
        double u;
        double v;
        double s;
        do {
            u = rng.nextDouble(-1, 1);
            v = rng.nextDouble(-1, 1);
            s = u * u + v * v;
        } while (s >= 1 || s == 0);
        return u * Math.sqrt(-2 * Math.log(s) / s);
    }

    // ---- codes and codebooks -------------------------------------------------------------------

    /** Code arrays of length [0, maxLength] with values in [0, 2^bits). */
    public static Arbitrary<byte[]> codes(int bits, int maxLength) {
        return Arbitraries.integers().between(0, (1 << bits) - 1).map(Integer::byteValue)
                .array(byte[].class).ofMinSize(0).ofMaxSize(maxLength);
    }

    /**
     * Sorted codebooks of 2^bits values from -1 to about 1, neighbours at least 2^-10 apart:
     * uniform grids, NF-like (denser near 0) and random spacings.
     */
    public static Arbitrary<float[]> codebooks(int bits) {
        return seeds().map(seed -> codebook(bits, seed));
    }

    /** The codebook of {@link #codebooks} for {@code seed}: deterministic. */
    public static float[] codebook(int bits, long seed) {
        int size = 1 << bits;
        SplittableRandom rng = new SplittableRandom(seed);
        double[] gaps = new double[size];
        int kind = rng.nextInt(3);
        for (int j = 1; j < size; j++) {
            gaps[j] = kind == 0 ? 1 : kind == 1 ? 1 + Math.abs(j - size / 2.0)
                    : rng.nextDouble(0.05, 1);
        }
        double total = 0;
        for (double g : gaps) {
            total += g;
        }
        float[] values = new float[size];
        double acc = 0;
        for (int j = 0; j < size; j++) {
            acc += gaps[j];
            values[j] = (float) (-1 + 2 * acc / total);
        }
        for (int j = 1; j < size; j++) { // 2^-9 apart, so at least 2^-10 after float rounding
            values[j] = Math.max(values[j], values[j - 1] + 0x1p-9f);
        }
        return values;
    }

    /**
     * The nearest-value encoder of a sorted codebook: thresholds at the float32 midpoints of
     * neighbours, bucket i gets code i, NaN gets code 0.
     *
     * @param sortedValues strictly increasing, at least 2 values; not modified
     */
    public static BucketTable nearestTable(float[] sortedValues) {
        float[] thresholds = new float[sortedValues.length - 1];
        for (int j = 0; j < thresholds.length; j++) {
            thresholds[j] = (sortedValues[j] + sortedValues[j + 1]) / 2;
        }
        return BucketTable.identityCodes(thresholds);
    }

    /**
     * Bucket tables of 1 to 255 thresholds (mostly 1 to 15): strictly increasing finite
     * thresholds of varied scale, codes in [0, 255] (identity or random), any NaN code.
     */
    public static Arbitrary<BucketTable> bucketTables() {
        Arbitrary<Integer> sizes = Arbitraries.frequencyOf(
                Tuple.of(2, Arbitraries.of(1, 3, 7, 15)),
                Tuple.of(2, Arbitraries.integers().between(1, 16)),
                Tuple.of(1, Arbitraries.integers().between(17, 255)));
        Arbitrary<Boolean> identityCodes = Arbitraries.of(true, false);
        return Combinators.combine(sizes, identityCodes, seeds()).as((size, identity, seed) -> {
            SplittableRandom rng = new SplittableRandom(seed);
            double scale = Math.pow(10, rng.nextDouble(-2, 2));
            float[] t = new float[size];
            for (int j = 0; j < size; j++) {
                t[j] = (float) (scale * gaussian(rng));
            }
            Arrays.sort(t);
            for (int j = 1; j < size; j++) {
                if (!(t[j] > t[j - 1])) {
                    t[j] = Math.nextUp(t[j - 1]);
                }
            }
            int[] codes = new int[size + 1];
            for (int j = 0; j <= size; j++) {
                codes[j] = identity ? j : rng.nextInt(256);
            }
            return BucketTable.of(t, codes, rng.nextInt(256));
        });
    }

    /** Every distribution except those in {@code excluded}. */
    public static Distribution[] allBut(Distribution... excluded) {
        EnumSet<Distribution> set = EnumSet.allOf(Distribution.class);
        set.removeAll(List.of(excluded));
        return set.toArray(new Distribution[0]);
    }
}
