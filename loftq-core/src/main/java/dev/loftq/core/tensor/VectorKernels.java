package dev.loftq.core.tensor;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
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
    /** The elements of one step: one per partial sum of the fit, held by two vectors. */
    private static final int CHUNK = HostKernels.FIT_LANES;
    private static final int LANES = CHUNK / 2;

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
            FloatVector t0 = lookup(normalise(v0, s, r, reciprocal), thresholds, valuePerCount,
                    nanValue);
            FloatVector t1 = lookup(normalise(v1, s, r, reciprocal), thresholds, valuePerCount,
                    nanValue);
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
     * {@code out[o, …)}: {@code codePerCount[count of thresholds below xn]} ({@code nanCode} for
     * NaN), the codes held as floats, which are exact up to 255.
     *
     * @return the number of leading elements done, a multiple of 16
     */
    static int encode(float[] x, int o, int len, float s, boolean reciprocal, float[] thresholds,
            float[] codePerCount, float nanCode, byte[] out) {
        float r = 1f / s;
        int done = len - len % CHUNK;
        for (int i = o; i < o + done; i += CHUNK) {
            FloatVector c0 = lookup(normalise(FloatVector.fromArray(F, x, i), s, r, reciprocal),
                    thresholds, codePerCount, nanCode);
            FloatVector c1 = lookup(normalise(FloatVector.fromArray(F, x, i + LANES), s, r,
                    reciprocal), thresholds, codePerCount, nanCode);
            toBytes(c0).intoArray(out, i);
            toBytes(c1).intoArray(out, i + LANES);
        }
        return done;
    }

    /** x·r or x / s, as the scalar kernels normalise. */
    private static FloatVector normalise(FloatVector v, float s, float r, boolean reciprocal) {
        return reciprocal ? v.mul(r) : v.div(s);
    }

    /**
     * Per lane, {@code perCount[count of thresholds below xn]}, or {@code nanValue} where xn is
     * NaN: the per-count value blended in at each threshold the lane exceeds, in increasing order.
     */
    private static FloatVector lookup(FloatVector xn, float[] thresholds, float[] perCount,
            float nanValue) {
        FloatVector t = FloatVector.broadcast(F, perCount[0]);
        for (int k = 0; k < thresholds.length; k++) {
            t = t.blend(perCount[k + 1], xn.compare(VectorOperators.GT, thresholds[k]));
        }
        return t.blend(nanValue, xn.compare(VectorOperators.NE, xn));
    }

    /**
     * Codes held as floats in [0, 255], as bytes: c + 2^23 has c in its low mantissa bits, so its
     * bits narrowed to a byte are c (cheaper here than a float-to-int conversion).
     */
    private static ByteVector toBytes(FloatVector codes) {
        return codes.add(0x1p23f).reinterpretAsInts()
                .convertShape(VectorOperators.I2B, ByteVector.SPECIES_64, 0).reinterpretAsBytes();
    }
}
