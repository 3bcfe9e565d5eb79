package dev.loftq.quant.quantizer;

import dev.loftq.core.Checks;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.Arrays;
import java.util.Objects;

/**
 * Integer affine (uniform) quantization with a scale, and for the asymmetric variant a zero point,
 * per group ({@link Grouping}: per tensor, per row, or groups along the input axis as in GPTQ and
 * ApiQ). With {@code qmax = 2^bits - 1}, per group, after optional {@linkplain ClipFactors clipping}
 * {@code hi = upper·max(x)}, {@code lo = lower·min(x)}:
 * <ul>
 *   <li>asymmetric: {@code hi = max(hi, 0)}, {@code lo = min(lo, 0)},
 *       {@code scale = f32(f32(hi - lo) / qmax)}, {@code zero = rint(f32(-lo / scale))};</li>
 *   <li>symmetric: {@code h = 2^(bits-1) - 1}, {@code scale = f32(max(|hi|, |lo|) / h)},
 *       {@code zero = h} (not stored);</li>
 * </ul>
 * {@code code = clamp(rint(f32(x / scale)) + zero, 0, qmax)} (round half to even) and
 * {@code x̂ = f32((code - zero) · scale)}. A group whose range is 0 (all zeros) gets scale 1, so it
 * dequantizes to zeros; a scale that underflows to 0 becomes {@link Float#MIN_VALUE}.
 *
 * <p>This follows OmniQuant's {@code UniformAffineQuantizer}, on which ApiQ builds (Shao et al.,
 * 2024; Liao et al., ApiQ, 2024), with two documented differences: the asymmetric range always
 * contains 0 (as in GPTQ), so the zero point is an integer in [0, qmax] and 0.0 is exact; and scales
 * are not clamped to [1e-5, 1e4], so small weights keep their precision. Codes are packed least
 * significant first (for 2, 4 and 8 bits the bytes of GPTQ's little-endian int32 words); 5 to 7
 * bit codes occupy 8-bit slots. Immutable and thread-safe.
 */
public final class IntAffineQuantizer implements Quantizer {
    private final int codeBits;
    private final boolean symmetric;
    private final Grouping grouping;

    private IntAffineQuantizer(Builder b) {
        this.codeBits = b.bits;
        this.symmetric = b.symmetric;
        this.grouping = b.grouping;
    }

    /**
     * A builder for {@code bits}-bit codes, asymmetric and per row unless changed.
     *
     * @param bits 2 to 8
     */
    public static Builder builder(int bits) {
        return new Builder(Checks.inRange("bits", bits, 2, 8));
    }

    /** Bits of information per code (2 to 8); {@link #bits()} is the packed slot width. */
    public int codeBits() {
        return codeBits;
    }

    /** Whether the zero point is fixed at {@code 2^(bits-1) - 1}. */
    public boolean symmetric() {
        return symmetric;
    }

    /** Which elements share a scale. */
    public Grouping grouping() {
        return grouping;
    }

    @Override
    public int bits() {
        return codeBits <= 4 ? codeBits : 8;
    }

    @Override
    public String description() {
        return "int" + codeBits + (symmetric ? " symmetric" : " asymmetric") + ", " + grouping
                + (bits() != codeBits ? " (stored in " + bits() + "-bit slots)" : "");
    }

    private String format() {
        return "int" + codeBits + (symmetric ? "-sym-" : "-asym-") + grouping.id();
    }

    @Override
    public QuantizedTensor quantize(TensorScope scope, Tensor w, String name) {
        return quantize(scope, w, name, null);
    }

    /**
     * Quantizes {@code w} with the range of each group clipped by {@code clip}.
     *
     * @param clip null for none; else both tensors FLOAT32 {@code [groups]} with values in (0, 1],
     *     where groups = numel / elements per group
     * @see Quantizer#quantize
     */
    public QuantizedTensor quantize(TensorScope scope, Tensor w, String name, ClipFactors clip) {
        int n = Inputs.numel(w, name);
        int[] shape = w.shape();
        int size = grouping.elementsPerGroup(shape, n, name);
        int groups = n / size;
        int qmax = (1 << codeBits) - 1;
        int h = (1 << (codeBits - 1)) - 1;
        QuantizedTensor.Builder out = QuantizedTensor.builder(this, format(), shape);
        try (TensorScope tmp = scope.newChild()) {
            Tensor x = tmp.reshape(w, groups, size);
            float[] max = tmp.toFloatArray(tmp.maxLast(x));
            float[] min = tmp.toFloatArray(tmp.minLast(x));
            Inputs.requireFinite(tmp, tmp.reshape(w, n), size, name, max, min);
            float[] upper = clipFactors(tmp, clip == null ? null : clip.upper(), "upper", groups);
            float[] lower = clipFactors(tmp, clip == null ? null : clip.lower(), "lower", groups);
            float[] scale = new float[groups];
            float[] zero = new float[groups];
            for (int g = 0; g < groups; g++) {
                float hi = upper[g] * max[g];
                float lo = lower[g] * min[g];
                if (symmetric) {
                    float a = Math.max(Math.abs(hi), Math.abs(lo));
                    scale[g] = positiveScale(a, h);
                    zero[g] = h;
                } else {
                    hi = Math.max(hi, 0f);
                    lo = Math.min(lo, 0f);
                    float range = hi - lo;
                    if (range == Float.POSITIVE_INFINITY) {
                        throw new IllegalArgumentException("tensor " + name + ", group " + g
                                + ": the range " + hi + " - (" + lo + ") overflows float32 "
                                + "(allowed: max - min <= " + Float.MAX_VALUE + ")");
                    }
                    scale[g] = positiveScale(range, qmax);
                    zero[g] = Math.min(qmax, Math.max(0f, (float) Math.rint(-lo / scale[g])));
                }
            }
            Tensor s = tmp.fromHost(scale, groups, 1);
            Tensor z = tmp.fromHost(zero, groups, 1);
            Tensor q = tmp.clamp(tmp.add(tmp.round(tmp.div(x, s)), z), 0f, qmax);
            Tensor codes = tmp.cast(tmp.reshape(q, n), DType.UINT8);
            int padCode = (int) zero[groups - 1];
            out.packed(scope.keep(tmp.pack(codes, bits(), PackOrder.LSB_FIRST, padCode)), bits(),
                    PackOrder.LSB_FIRST);
            out.scales(scope.keep(tmp.reshape(s, groups)), size);
            if (!symmetric) {
                out.zeroPoints(scope.keep(tmp.reshape(z, groups)), codeBits);
            }
        }
        return out.build();
    }

    @Override
    public Tensor dequantize(TensorScope scope, QuantizedTensor q) {
        if (!equals(q.quantizer())) {
            throw new IllegalArgumentException("dequantize: " + q + " was made by "
                    + q.quantizer().description() + ", not by " + description());
        }
        int groups = q.numBlocks();
        int size = q.blockSize();
        try (TensorScope tmp = scope.newChild()) {
            Tensor c = tmp.reshape(tmp.cast(q.codes(tmp), DType.FLOAT32), groups, size);
            Tensor centred = q.zeroPoints().isPresent()
                    ? tmp.sub(c, tmp.reshape(q.zeroPoints().get(), groups, 1))
                    : tmp.add(c, -((1 << (codeBits - 1)) - 1));
            Tensor y = tmp.mul(centred, tmp.reshape(q.scales(tmp), groups, 1));
            return scope.keep(tmp.reshape(y, q.shape()));
        }
    }

    /** {@code f32(range / steps)}, or 1 for a zero range, or the smallest float if it underflows. */
    private static float positiveScale(float range, int steps) {
        float s = range / steps;
        return s > 0f ? s : range == 0f ? 1f : Float.MIN_VALUE;
    }

    private static float[] clipFactors(TensorScope scope, Tensor factors, String which, int groups) {
        float[] out = new float[groups];
        if (factors == null) {
            Arrays.fill(out, 1f);
            return out;
        }
        if (factors.dtype() != DType.FLOAT32 || factors.rank() != 1 || factors.numel() != groups) {
            throw new IllegalArgumentException("clip factors " + which + " must be FLOAT32 ["
                    + groups + "] (one per group), got " + factors.dtype() + " "
                    + Arrays.toString(factors.shape()));
        }
        float[] f = scope.toFloatArray(factors);
        for (int g = 0; g < groups; g++) {
            if (!(f[g] > 0f && f[g] <= 1f)) {
                throw new IllegalArgumentException("clip factors " + which + "[" + g
                        + "] must be in (0, 1], got " + f[g]);
            }
            out[g] = f[g];
        }
        return out;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof IntAffineQuantizer a && a.codeBits == codeBits
                && a.symmetric == symmetric && a.grouping.equals(grouping);
    }

    @Override
    public int hashCode() {
        return Objects.hash(codeBits, symmetric, grouping);
    }

    @Override
    public String toString() {
        return "IntAffineQuantizer[" + description() + "]";
    }

    /** Configures an {@link IntAffineQuantizer}. */
    public static final class Builder {
        private final int bits;
        private boolean symmetric;
        private Grouping grouping = Grouping.perRow();

        private Builder(int bits) {
            this.bits = bits;
        }

        /** Default false (asymmetric, with zero points). */
        public Builder symmetric(boolean symmetric) {
            this.symmetric = symmetric;
            return this;
        }

        /** Default {@link Grouping#perRow()}. */
        public Builder grouping(Grouping grouping) {
            this.grouping = Checks.notNull("grouping", grouping);
            return this;
        }

        /** The quantizer. */
        public IntAffineQuantizer build() {
            return new IntAffineQuantizer(this);
        }
    }
}
