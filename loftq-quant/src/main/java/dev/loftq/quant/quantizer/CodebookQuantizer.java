package dev.loftq.quant.quantizer;

import dev.loftq.core.Checks;
import dev.loftq.core.tensor.BucketTable;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.ScaleMode;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.codebook.Codebook;
import dev.loftq.quant.codebook.Encoders;
import java.util.Arrays;
import java.util.Locale;
import java.util.Objects;

/**
 * Blockwise codebook quantization: the flattened tensor is cut into blocks of {@code blockSize}
 * consecutive elements (rows do not matter: 1-D and N-D tensors are flattened row-major, as
 * bitsandbytes does), each block is normalised by its scale and every element is mapped to a code
 * of the {@link Codebook}. Two conventions are reproduced bit for bit:
 *
 * <ul>
 *   <li>{@link Convention#BITSANDBYTES}: bitsandbytes' CUDA kernels ({@code quantize_4bit},
 *       {@code quantize_blockwise}; Dettmers et al., QLoRA, 2023). Scale = block absmax,
 *       {@code xn = f32(x · f32(1 / absmax))}, the kernel's encoder ({@link Encoders#bitsandbytes}),
 *       codes packed most significant first (the first element of a byte in the high nibble), a
 *       short last block when the element count is not a multiple of the block size, and an odd
 *       4-bit count padded with the code of 0.0 in the last block. Optional double quantization
 *       ({@code compress_statistics=True}): the absmax values minus their correctly rounded mean are
 *       quantized with the {@linkplain Codebook#DYNAMIC_8BIT dynamic 8-bit map} in blocks of 256.
 *       An all-zero block has scale 0, its codes are 0 (NaN normalised values), and it
 *       dequantizes to (signed) zeros. In a block whose absmax is below 2^-128 (a subnormal with
 *       an infinite reciprocal) the kernel's exact arithmetic likewise gives the zeros code 0,
 *       which dequantizes to {@code table[0] · absmax}, and the other elements ±∞, so the extreme
 *       codes.</li>
 *   <li>{@link Convention#LOFTQ_NATIVE}: the {@code NFQuantizer} of the official LoftQ code and of
 *       peft's {@code loftq_utils.py} (Li et al., LoftQ, 2023). Scale = block absmax
 *       ({@code method="normal"}) or {@code mean + 2.5·std} ({@code method="uniform"}),
 *       {@code xn = f32(x / scale)}, the code of the nearest value by {@code torch.argmin} (first
 *       index on ties, {@link Encoders#firstIndexArgmin}), codes packed least significant first,
 *       and the element count must be a multiple of the block size. 3-bit codes, which the
 *       official packing cannot store, are packed here as a plain LSB-first bit stream.</li>
 * </ul>
 *
 * <p>Instances are immutable, thread-safe and equal when their configuration is.
 */
public final class CodebookQuantizer implements Quantizer {
    /** Which implementation's arithmetic, encoder and packing to reproduce. */
    public enum Convention {
        /** bitsandbytes' CUDA kernels: reciprocal multiply, kernel thresholds, MSB-first packing. */
        BITSANDBYTES,
        /** LoftQ's / peft's {@code NFQuantizer}: division, torch argmin, LSB-first packing. */
        LOFTQ_NATIVE
    }

    /** How a block's scale is computed. */
    public enum BlockScale {
        /** The largest absolute value of the block. */
        ABSMAX,
        /**
         * {@code f32(mean + f32(2.5 · std))} with the unbiased standard deviation, each reduction
         * correctly rounded: LoftQ's {@code method="uniform"}. Only with
         * {@link Convention#LOFTQ_NATIVE}.
         */
        MEAN_PLUS_2_5_STD,
        /**
         * Per block, the scale that (nearly) minimises the block's squared quantization error,
         * values beyond it clipping to the end codes: a common clipping ratio found on a sample,
         * then least-squares (Lloyd) refinement per block ({@code MseScaleSearch}). The stored
         * scale still dequantizes as code value × scale. Not part of the paper; LoftQ's default.
         */
        MSE_OPTIMAL
    }

    /** Default block size of bitsandbytes ({@code Params4bit}) and of LoftQ. */
    public static final int DEFAULT_BLOCK_SIZE = 64;

    /** Block size of the double quantization of scales, fixed by bitsandbytes. */
    public static final int NESTED_BLOCK_SIZE = 256;

    private static final int[] BLOCK_SIZES = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096};

    /** The quantizer of double-quantized scales. */
    private static final CodebookQuantizer NESTED = bitsandbytesBlockwise8(NESTED_BLOCK_SIZE);

    private final Codebook codebook;
    private final Convention convention;
    private final BlockScale blockScale;
    private final int blockSize;
    private final boolean doubleQuantization;
    private final BucketTable encoder;
    private final ScaleMode scaleMode;
    private final PackOrder packOrder;
    private final float argminRange;

    private CodebookQuantizer(Builder b) {
        this.codebook = b.codebook;
        this.convention = b.convention;
        this.blockScale = b.blockScale;
        this.blockSize = b.blockSize;
        this.doubleQuantization = b.doubleQuantization;
        boolean bnb = convention == Convention.BITSANDBYTES;
        this.encoder = bnb ? Encoders.bitsandbytes(codebook) : Encoders.firstIndexArgmin(codebook);
        this.scaleMode = bnb ? ScaleMode.MULTIPLY_RECIPROCAL : ScaleMode.DIVIDE;
        this.packOrder = bnb ? PackOrder.MSB_FIRST : PackOrder.LSB_FIRST;
        this.argminRange = bnb ? Float.POSITIVE_INFINITY : Encoders.argminExactRange(codebook);
    }

    /** A builder for {@code codebook}, defaulting to bitsandbytes, absmax, block 64, no double quantization. */
    public static Builder builder(Codebook codebook) {
        return new Builder(codebook);
    }

    /** bitsandbytes NF4 with block 64, as LoftQ's loop uses it ({@code compress_statistics=False}). */
    public static CodebookQuantizer bitsandbytesNf4() {
        return builder(Codebook.NF4).build();
    }

    /** bitsandbytes NF4 with block 64 and double quantization: QLoRA's storage format. */
    public static CodebookQuantizer bitsandbytesNf4DoubleQuant() {
        return builder(Codebook.NF4).doubleQuantization(true).build();
    }

    /** bitsandbytes FP4 with block 64. */
    public static CodebookQuantizer bitsandbytesFp4() {
        return builder(Codebook.FP4).build();
    }

    /**
     * bitsandbytes {@code quantize_blockwise} with the dynamic 8-bit map: the quantizer of double
     * quantization.
     */
    public static CodebookQuantizer bitsandbytesBlockwise8(int blockSize) {
        return builder(Codebook.DYNAMIC_8BIT).blockSize(blockSize).build();
    }

    /** LoftQ's {@code NFQuantizer(num_bits=bits, method="normal", block_size=64)}: NF2, NF3 or NF4. */
    public static CodebookQuantizer loftqNormalFloat(int bits) {
        return builder(Codebook.normalFloat(bits)).convention(Convention.LOFTQ_NATIVE).build();
    }

    /** LoftQ's {@code NFQuantizer(num_bits=bits, method="uniform", block_size=64)}. */
    public static CodebookQuantizer loftqUniform(int bits) {
        return builder(Codebook.uniform(bits)).convention(Convention.LOFTQ_NATIVE)
                .blockScale(BlockScale.MEAN_PLUS_2_5_STD).build();
    }

    /** The codebook. */
    public Codebook codebook() {
        return codebook;
    }

    /** The convention reproduced. */
    public Convention convention() {
        return convention;
    }

    /** How block scales are computed. */
    public BlockScale blockScale() {
        return blockScale;
    }

    /** Elements per block. */
    public int blockSize() {
        return blockSize;
    }

    /** Whether scales are double-quantized. */
    public boolean doubleQuantization() {
        return doubleQuantization;
    }

    /** The scalar encoder applied to normalised values. */
    public BucketTable encoder() {
        return encoder;
    }

    /** How a value is normalised by its block scale before encoding. */
    public ScaleMode scaleMode() {
        return scaleMode;
    }

    @Override
    public int bits() {
        return codebook.bits();
    }

    @Override
    public String description() {
        String scale = switch (blockScale) {
            case ABSMAX -> "absmax";
            case MEAN_PLUS_2_5_STD -> "mean + 2.5·std";
            case MSE_OPTIMAL -> "MSE-optimal scale";
        };
        return (convention == Convention.BITSANDBYTES
                ? "bitsandbytes " + codebook.name().toUpperCase(Locale.ROOT) + ", block " + blockSize
                        + (blockScale == BlockScale.MSE_OPTIMAL ? ", " + scale : "")
                : "LoftQ native " + codebook.name().toUpperCase(Locale.ROOT) + " (argmin of x / "
                        + scale + "), block " + blockSize)
                + (doubleQuantization ? ", double quantization (dynamic 8-bit, block "
                        + NESTED_BLOCK_SIZE + ")" : "");
    }

    /** A short id: {@code "bnb-nf4"}, {@code "native-uniform2"}, … */
    private String format() {
        return (convention == Convention.BITSANDBYTES ? "bnb-" : "native-") + codebook.name();
    }

    @Override
    public QuantizedTensor quantize(TensorScope scope, Tensor w, String name) {
        return quantize(scope, w, name, null);
    }

    /**
     * Quantizes with clipped block scales: block b's scale is {@code f32(absmax[b] · clip[b])},
     * and values beyond it take the end codes (learnable clipping of the block absmax, as ApiQ
     * learns it). {@code clip == null} is {@link #quantize(TensorScope, Tensor, String)}.
     *
     * @param clip FLOAT32 [number of blocks], values in (0, 1]; not modified
     * @throws IllegalArgumentException if the block scale is not {@link BlockScale#ABSMAX}, or for
     *     a clip factor of the wrong shape or outside (0, 1]
     */
    public QuantizedTensor quantize(TensorScope scope, Tensor w, String name, Tensor clip) {
        try (TensorScope tmp = scope.newChild()) {
            Encoded e = encoded(tmp, w, name, clip);
            return packed(scope, w.shape(), e.codes(), stored(scope, e.scale(), name), e.padCode());
        }
    }

    /**
     * Keeps the codes unpacked: decodes them only when asked (the dequantized weight, or a
     * residual in one pass), and packs only when {@link RoundTrip#quantized} is called. The same
     * bits as quantize then dequantize, without a pack and an unpack per call.
     */
    @Override
    public RoundTrip roundTrip(TensorScope scope, Tensor w, String name) {
        try (TensorScope tmp = scope.newChild()) {
            Encoded e = encoded(tmp, w, name, null);
            Stored scales = stored(scope, e.scale(), name);
            return new CodebookRoundTrip(scope, w.shape(), scope.keep(e.codes()), scales,
                    e.padCode());
        }
    }

    /** Codes (flat UINT8 [n]) and block scales ([nb]), owned by the scope they were made in. */
    private record Encoded(Tensor codes, Tensor scale, int padCode) {}

    /**
     * Scales and codes of {@code w}: everything of {@link #quantize} but the packing.
     *
     * @param clip factors of the absmax block scales, or null
     */
    private Encoded encoded(TensorScope tmp, Tensor w, String name, Tensor clip) {
        int n = Inputs.numel(w, name);
        if (convention == Convention.LOFTQ_NATIVE && n % blockSize != 0) {
            throw new IllegalArgumentException("tensor " + name + " has " + n + " elements, not a "
                    + "multiple of the block size " + blockSize + ", which the LoftQ native "
                    + "convention requires (bitsandbytes allows a short last block)");
        }
        Tensor flat = tmp.reshape(w, n);
        Tensor scale;
        float[] hostScale;
        if (blockScale != BlockScale.MEAN_PLUS_2_5_STD) {
            scale = tmp.blockAbsMax(flat, blockSize);
            hostScale = tmp.toFloatArray(scale);
            Inputs.requireFinite(tmp, flat, blockSize, name, hostScale);
            if (clip != null) {
                requireClip(tmp, clip, hostScale.length, name);
                scale = tmp.mul(scale, clip);
                hostScale = tmp.toFloatArray(scale);
            }
            if (blockScale == BlockScale.MSE_OPTIMAL) {
                scale = MseScaleSearch.search(tmp, flat, blockSize, hostScale, encoder,
                        scaleMode, codebook);
                hostScale = tmp.toFloatArray(scale);
            }
        } else {
            requireClip(tmp, clip, 0, name);
            float[] x = tmp.toFloatArray(flat);
            Inputs.requireFinite(x, name);
            hostScale = FloatStats.meanPlus2p5Std(x, blockSize);
            requireArgminExact(x, hostScale, name);
            scale = tmp.fromHost(hostScale, hostScale.length);
        }
        Tensor codes = tmp.encode(flat, scale, blockSize, scaleMode, encoder);
        int padCode = encoder.encode(normalise(0f, hostScale[hostScale.length - 1]));
        return new Encoded(codes, scale, padCode);
    }

    /** The scales as stored: plain, or double-quantized (then {@code plain} is null). */
    private record Stored(Tensor plain, QuantizedTensor.NestedScales nested) {
        /** The scales a dequantization multiplies by, FLOAT32 [nb], owned by {@code scope}. */
        Tensor values(TensorScope scope) {
            return plain != null ? scope.reshape(plain, plain.dim(0)) : nested.values(scope);
        }

        void keep(TensorScope target) {
            if (plain != null) {
                target.keep(plain);
            } else {
                nested.quantized().keep(target);
            }
        }
    }

    /** The block scales as stored, owned by {@code scope}; {@code scale} may move there. */
    private Stored stored(TensorScope scope, Tensor scale, String name) {
        if (!doubleQuantization) {
            return new Stored(scope.keep(scale), null);
        }
        try (TensorScope tmp = scope.newChild()) {
            float offset = FloatStats.correctlyRoundedMean(tmp.toFloatArray(scale));
            Tensor centred = tmp.add(scale, -offset);
            QuantizedTensor nested = NESTED.quantize(scope, centred, name + ".absmax");
            return new Stored(null, new QuantizedTensor.NestedScales(nested, offset));
        }
    }

    /** The quantized tensor of codes and stored scales, the packed codes owned by {@code scope}. */
    private QuantizedTensor packed(TensorScope scope, int[] shape, Tensor codes, Stored scales,
            int padCode) {
        QuantizedTensor.Builder out = QuantizedTensor.builder(this, format(), shape)
                .codebook(codebook);
        try (TensorScope tmp = scope.newChild()) {
            out.packed(scope.keep(tmp.pack(codes, bits(), packOrder, padCode)), bits(), packOrder);
        }
        if (scales.plain() != null) {
            out.scales(scales.plain(), blockSize);
        } else {
            out.nestedScales(scales.nested(), blockSize);
        }
        return out.build();
    }

    /** {@link #roundTrip}: codes kept unpacked (flat), decoded on demand. */
    private final class CodebookRoundTrip implements RoundTrip {
        private final TensorScope owner;
        private final int[] shape;
        private final Tensor codes;
        private final Stored scales;
        private final int padCode;
        private Tensor dequantized;

        CodebookRoundTrip(TensorScope owner, int[] shape, Tensor codes, Stored scales,
                int padCode) {
            this.owner = owner;
            this.shape = shape;
            this.codes = codes;
            this.scales = scales;
            this.padCode = padCode;
        }

        @Override
        public Tensor dequantized() {
            if (dequantized == null) {
                try (TensorScope tmp = owner.newChild()) {
                    Tensor table = tmp.fromHost(codebook.values(), codebook.size());
                    Tensor y = tmp.decode(codes, table, scales.values(tmp), blockSize);
                    dequantized = owner.keep(tmp.reshape(y, shape));
                }
            }
            return dequantized;
        }

        @Override
        public Tensor residual(TensorScope scope, Tensor from) {
            Inputs.requireShape("residual", "from", from, shape);
            try (TensorScope tmp = scope.newChild()) {
                Tensor table = tmp.fromHost(codebook.values(), codebook.size());
                return scope.keep(tmp.decodeResidual(from, codes, table, scales.values(tmp),
                        blockSize));
            }
        }

        @Override
        public RoundTrip keep(TensorScope target) {
            target.keep(codes);
            scales.keep(target);
            return this;
        }

        @Override
        public QuantizedTensor quantized(TensorScope scope) {
            if (!codes.isAlive()) {
                throw new IllegalStateException("quantized: the codes were freed with their "
                        + "scope; keep the round trip first");
            }
            scales.keep(scope);
            return packed(scope, shape, codes, scales, padCode);
        }
    }

    @Override
    public Tensor dequantize(TensorScope scope, QuantizedTensor q) {
        if (!equals(q.quantizer())) {
            throw new IllegalArgumentException("dequantize: " + q + " was made by "
                    + q.quantizer().description() + ", not by " + description());
        }
        try (TensorScope tmp = scope.newChild()) {
            Tensor table = tmp.fromHost(codebook.values(), codebook.size());
            Tensor y = tmp.decode(q.codes(tmp), table, q.scales(tmp), blockSize);
            return scope.keep(tmp.reshape(y, q.shape()));
        }
    }

    /** This quantizer with another block scale (validated as {@link Builder#build()} does). */
    public CodebookQuantizer withBlockScale(BlockScale scale) {
        return builder(codebook).convention(convention).blockScale(scale).blockSize(blockSize)
                .doubleQuantization(doubleQuantization).build();
    }

    /** Checks clip factors of {@code blocks} absmax scales; a null {@code clip} passes. */
    private void requireClip(TensorScope tmp, Tensor clip, int blocks, String name) {
        if (clip == null) {
            return;
        }
        if (blockScale != BlockScale.ABSMAX) {
            throw new IllegalArgumentException("clipped block scales of " + name + " need "
                    + "absmax block scales, got " + description());
        }
        if (clip.rank() != 1 || clip.dim(0) != blocks || clip.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException("clip factors of " + name + " must be FLOAT32 ["
                    + blocks + "] (one per block), got " + clip.dtype() + " "
                    + Arrays.toString(clip.shape()));
        }
        float[] c = tmp.toFloatArray(clip);
        for (int b = 0; b < c.length; b++) {
            if (!(c[b] > 0f && c[b] <= 1f)) {
                throw new IllegalArgumentException("clip factor " + b + " of " + name
                        + " must be in (0, 1], got " + c[b]);
            }
        }
    }

    private float normalise(float x, float scale) {
        return scaleMode == ScaleMode.MULTIPLY_RECIPROCAL ? x * (1f / scale) : x / scale;
    }

    /**
     * The argmin encoder is exact for |x / scale| up to {@link Encoders#argminExactRange}; a
     * mean + 2.5·std scale close to zero (a block whose mean is about -2.5 standard deviations)
     * would exceed it, where torch's float32 argmin starts to tie far values. Such blocks are
     * rejected rather than encoded differently from torch.
     */
    private void requireArgminExact(float[] x, float[] scale, String name) {
        for (int b = 0; b < scale.length; b++) {
            float absmax = 0f;
            for (int i = b * blockSize; i < (b + 1) * blockSize; i++) {
                absmax = Math.max(absmax, Math.abs(x[i]));
            }
            if (absmax > 0f && !(absmax / Math.abs((double) scale[b]) <= argminRange)) {
                throw new IllegalArgumentException("tensor " + name + ", block " + b
                        + ": the scale mean + 2.5·std = " + scale[b] + " is too small for max |x| = "
                        + absmax + " (allowed: max |x| / |scale| <= " + argminRange
                        + ", beyond which float32 rounding makes torch's argmin tie far values)");
            }
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof CodebookQuantizer c && codebook.equals(c.codebook)
                && convention == c.convention && blockScale == c.blockScale
                && blockSize == c.blockSize && doubleQuantization == c.doubleQuantization;
    }

    @Override
    public int hashCode() {
        return Objects.hash(codebook, convention, blockScale, blockSize, doubleQuantization);
    }

    @Override
    public String toString() {
        return "CodebookQuantizer[" + description() + "]";
    }

    /** Configures a {@link CodebookQuantizer}; {@link #build()} validates the combination. */
    public static final class Builder {
        private final Codebook codebook;
        private Convention convention = Convention.BITSANDBYTES;
        private BlockScale blockScale = BlockScale.ABSMAX;
        private int blockSize = DEFAULT_BLOCK_SIZE;
        private boolean doubleQuantization;

        private Builder(Codebook codebook) {
            this.codebook = Checks.notNull("codebook", codebook);
        }

        /** Default {@link Convention#BITSANDBYTES}. */
        public Builder convention(Convention convention) {
            this.convention = Checks.notNull("convention", convention);
            return this;
        }

        /** Default {@link BlockScale#ABSMAX}. */
        public Builder blockScale(BlockScale blockScale) {
            this.blockScale = Checks.notNull("blockScale", blockScale);
            return this;
        }

        /**
         * Default 64; a power of two from 16 to 4096. (bitsandbytes ≥ 0.49 accepts 32 to 4096 for
         * 4-bit and 64 to 4096 for 8-bit; 16 is valid here but not loadable by bitsandbytes.)
         */
        public Builder blockSize(int blockSize) {
            this.blockSize = Checks.oneOf("blockSize", blockSize, BLOCK_SIZES);
            return this;
        }

        /** Default false; bitsandbytes' {@code compress_statistics}. */
        public Builder doubleQuantization(boolean doubleQuantization) {
            this.doubleQuantization = doubleQuantization;
            return this;
        }

        /**
         * @throws IllegalArgumentException for double quantization outside the bitsandbytes
         *     absmax convention, a mean + 2.5·std scale outside the LoftQ native convention, an
         *     unsorted codebook (other than FP4) with the bitsandbytes convention, or a codebook
         *     whose values are closer than 2^-22 with the LoftQ native convention
         */
        public CodebookQuantizer build() {
            if (doubleQuantization && (convention != Convention.BITSANDBYTES
                    || blockScale == BlockScale.MEAN_PLUS_2_5_STD)) {
                throw new IllegalArgumentException("doubleQuantization needs convention "
                        + "BITSANDBYTES and blockScale ABSMAX or MSE_OPTIMAL, got " + convention
                        + " and " + blockScale);
            }
            if (blockScale == BlockScale.MEAN_PLUS_2_5_STD
                    && convention != Convention.LOFTQ_NATIVE) {
                throw new IllegalArgumentException("blockScale MEAN_PLUS_2_5_STD needs convention "
                        + "LOFTQ_NATIVE, got " + convention);
            }
            if (convention == Convention.LOFTQ_NATIVE && Encoders.argminExactRange(codebook) < 1f) {
                throw new IllegalArgumentException("codebook " + codebook.name() + ": values "
                        + codebook.minGap() + " apart are too close for the LoftQ native "
                        + "convention (allowed: gaps >= 2^-22)");
            }
            return new CodebookQuantizer(this);
        }
    }
}
