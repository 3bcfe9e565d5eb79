package dev.loftq.core.tensor;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * SIMD forms of the inner loops of {@link HostKernels#encode} and
 * {@link HostKernels#blockCodebookFit}, written with the JDK's incubating Vector API. This class
 * is loaded only when the JVM runs with {@code --add-modules jdk.incubator.vector} (see
 * {@link HostKernels#vectorized()}); each method does the leading whole 16-element chunks of one
 * block and leaves the rest to the scalar loop, with bit-identical results.
 *
 * <p>A value's bucket needs no table lookup: thresholds increase, so {@code xn > t_k} holds
 * exactly for k below the value's count, and blending in the per-count value at each threshold in
 * order leaves the value of the count. That is one compare and one blend per threshold, cheaper
 * than the scalar bin lookup up to {@value #MAX_THRESHOLDS} thresholds (a 4-bit codebook).
 *
 * <p>Two 8-lane vectors per 16 elements: 256-bit operations run at full speed on AVX2 and AVX-512
 * alike, and the two independent blend chains keep the core busy (on this project's AVX-512 box,
 * twice the speed of one 16-lane chain). Lane l of the pair accumulates the block's elements e
 * with e mod 16 = l, in order: the {@value HostKernels#FIT_LANES} partial sums of the
 * {@link TensorScope#blockCodebookFit} specification.
 */
final class VectorKernels {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_256;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_256;
    private static final int LANES = 8;
    private static final int CHUNK = 2 * LANES;

    /** Tables with more thresholds stay on the scalar loop. */
    static final int MAX_THRESHOLDS = 15;

    private VectorKernels() {}

    /** Whether this CPU runs 256-bit vectors natively (otherwise the API would emulate them). */
    static boolean supported() {
        return VectorShape.preferredShape().vectorBitSize() >= F.vectorBitSize();
    }

    /**
     * Accumulates the whole 16-element chunks of the block {@code x[o, o + len)} into the
     * partial sums {@code p[e mod 16] += x·t} and {@code p[16 + e mod 16] += t·t}, with
     * {@code t = valuePerCount[count of thresholds below xn]} ({@code nanValue} for NaN).
     *
     * @return the number of leading elements done, a multiple of 16
     */
    static int fit(float[] x, int o, int len, float s, boolean reciprocal, float[] thresholds,
            float[] valuePerCount, float nanValue, float[] p) {
        float r = 1f / s;
        FloatVector xt0 = FloatVector.fromArray(F, p, 0);
        FloatVector xt1 = FloatVector.fromArray(F, p, LANES);
        FloatVector tt0 = FloatVector.fromArray(F, p, CHUNK);
        FloatVector tt1 = FloatVector.fromArray(F, p, CHUNK + LANES);
        int done = len - len % CHUNK;
        for (int i = o; i < o + done; i += CHUNK) {
            FloatVector v0 = FloatVector.fromArray(F, x, i);
            FloatVector v1 = FloatVector.fromArray(F, x, i + LANES);
            FloatVector xn0 = reciprocal ? v0.mul(r) : v0.div(s);
            FloatVector xn1 = reciprocal ? v1.mul(r) : v1.div(s);
            FloatVector t0 = FloatVector.broadcast(F, valuePerCount[0]);
            FloatVector t1 = t0;
            for (int k = 0; k < thresholds.length; k++) {
                float above = valuePerCount[k + 1];
                t0 = t0.blend(above, xn0.compare(VectorOperators.GT, thresholds[k]));
                t1 = t1.blend(above, xn1.compare(VectorOperators.GT, thresholds[k]));
            }
            t0 = t0.blend(nanValue, xn0.compare(VectorOperators.NE, xn0));
            t1 = t1.blend(nanValue, xn1.compare(VectorOperators.NE, xn1));
            xt0 = xt0.add(v0.mul(t0));
            xt1 = xt1.add(v1.mul(t1));
            tt0 = tt0.add(t0.mul(t0));
            tt1 = tt1.add(t1.mul(t1));
        }
        xt0.intoArray(p, 0);
        xt1.intoArray(p, LANES);
        tt0.intoArray(p, CHUNK);
        tt1.intoArray(p, CHUNK + LANES);
        return done;
    }

    /**
     * Accumulates {@code p[e mod 16] += x·x} over the whole 16-element chunks of {@code x[o, o +
     * len)}.
     *
     * @return the number of leading elements done, a multiple of 16
     */
    static int squares(float[] x, int o, int len, float[] p) {
        FloatVector xx0 = FloatVector.fromArray(F, p, 0);
        FloatVector xx1 = FloatVector.fromArray(F, p, LANES);
        int done = len - len % CHUNK;
        for (int i = o; i < o + done; i += CHUNK) {
            FloatVector v0 = FloatVector.fromArray(F, x, i);
            FloatVector v1 = FloatVector.fromArray(F, x, i + LANES);
            xx0 = xx0.add(v0.mul(v0));
            xx1 = xx1.add(v1.mul(v1));
        }
        xx0.intoArray(p, 0);
        xx1.intoArray(p, LANES);
        return done;
    }

    /**
     * Encodes the whole 16-element chunks of the block {@code x[o, o + len)} into
     * {@code out[o, …)}: {@code codePerCount[count of thresholds below xn]}, {@code nanCode} for
     * NaN.
     *
     * @return the number of leading elements done, a multiple of 16
     */
    static int encode(float[] x, int o, int len, float s, boolean reciprocal, float[] thresholds,
            int[] codePerCount, int nanCode, byte[] out) {
        float r = 1f / s;
        int done = len - len % CHUNK;
        for (int i = o; i < o + done; i += CHUNK) {
            FloatVector v0 = FloatVector.fromArray(F, x, i);
            FloatVector v1 = FloatVector.fromArray(F, x, i + LANES);
            FloatVector xn0 = reciprocal ? v0.mul(r) : v0.div(s);
            FloatVector xn1 = reciprocal ? v1.mul(r) : v1.div(s);
            IntVector c0 = IntVector.broadcast(I, codePerCount[0]);
            IntVector c1 = c0;
            for (int k = 0; k < thresholds.length; k++) {
                int above = codePerCount[k + 1];
                c0 = c0.blend(above, asInt(xn0.compare(VectorOperators.GT, thresholds[k])));
                c1 = c1.blend(above, asInt(xn1.compare(VectorOperators.GT, thresholds[k])));
            }
            c0 = c0.blend(nanCode, asInt(xn0.compare(VectorOperators.NE, xn0)));
            c1 = c1.blend(nanCode, asInt(xn1.compare(VectorOperators.NE, xn1)));
            toBytes(c0).intoArray(out, i);
            toBytes(c1).intoArray(out, i + LANES);
        }
        return done;
    }

    private static VectorMask<Integer> asInt(VectorMask<Float> m) {
        return m.cast(I);
    }

    /** The low byte of each lane (codes are in [0, 255]). */
    private static ByteVector toBytes(IntVector codes) {
        return codes.convertShape(VectorOperators.I2B, ByteVector.SPECIES_64, 0)
                .reinterpretAsBytes();
    }
}
