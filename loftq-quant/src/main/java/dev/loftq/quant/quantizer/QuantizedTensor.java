package dev.loftq.quant.quantizer;

import dev.loftq.core.Checks;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.HostKernels;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.Shapes;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.codebook.Codebook;
import java.util.Arrays;
import java.util.Optional;

/**
 * A quantized tensor: packed codes, per-block scales (plain or themselves quantized), optional zero
 * points, the original shape and the format. Made by a {@link Quantizer}, which also
 * {@linkplain #dequantize dequantizes} it.
 *
 * <p>Layout. The tensor is flattened row-major and cut into blocks of {@link #blockSize()}
 * consecutive elements, the last one possibly shorter; block {@code b} has scale {@code b} (and zero
 * point {@code b}). Codes, one per element, form a bit stream of {@link #bits()} bits each,
 * packed as {@link TensorScope#pack} says in {@link #packOrder()}: UINT8
 * {@code [ceil(numel · bits / 8)]}. The unused bits of the last byte ({@link #paddingBits()}) hold
 * pad codes. bitsandbytes 4-bit: MSB first (the first element in the high nibble; its
 * {@code [(n+1)/2, 1]} tensor is this one reshaped), the pad nibble of an odd count is the code of
 * 0.0 in the last block.
 *
 * <p>Ownership. The tensors belong to the scope given to {@link Quantizer#quantize}; the object is
 * usable while that scope is open, or after {@link #keep} moved them to another scope. Otherwise
 * immutable; not thread-safe beyond what the scope allows.
 */
public final class QuantizedTensor {
    /**
     * Scales quantized in turn (bitsandbytes {@code compress_statistics}):
     * {@code scale = quantized.dequantize() + offset}.
     *
     * @param quantized the quantization of {@code scale - offset}, one element per block
     * @param offset finite
     */
    public record NestedScales(QuantizedTensor quantized, float offset) {
        /** Validates. */
        public NestedScales {
            Checks.notNull("quantized", quantized);
            Checks.finite("offset", offset);
        }

        /**
         * The scales, FLOAT32 [numel of {@code quantized}], owned by {@code scope}:
         * {@code f32(f32(D[q] · absmax2) + offset)}, the nested quantizer's dequantization, then
         * the offset added (two roundings, as bitsandbytes).
         */
        public Tensor values(TensorScope scope) {
            try (TensorScope tmp = scope.newChild()) {
                Tensor a = quantized.dequantize(tmp);
                return scope.keep(tmp.add(tmp.reshape(a, quantized.numel()), offset));
            }
        }
    }

    private final Quantizer quantizer;
    private final String format;
    private final int[] shape;
    private final int numel;
    private final Tensor packed;
    private final int bits;
    private final PackOrder packOrder;
    private final int blockSize;
    private final Tensor scales;
    private final NestedScales nested;
    private final Tensor zeroPoints;
    private final int zeroPointBits;
    private final Codebook codebook;

    private QuantizedTensor(Builder b) {
        this.quantizer = b.quantizer;
        this.format = b.format;
        this.shape = b.shape;
        this.numel = b.numel;
        this.packed = b.packed;
        this.bits = b.bits;
        this.packOrder = b.packOrder;
        this.blockSize = b.blockSize;
        this.scales = b.scales;
        this.nested = b.nested;
        this.zeroPoints = b.zeroPoints;
        this.zeroPointBits = b.zeroPointBits;
        this.codebook = b.codebook;
    }

    /**
     * Starts a quantized tensor; a user-written {@link Quantizer} builds its results with this.
     *
     * @param quantizer the quantizer that dequantizes it
     * @param format a short format id, e.g. {@code "bnb-nf4"}
     * @param shape the original shape, rank >= 1, at least one element; copied
     */
    public static Builder builder(Quantizer quantizer, String format, int... shape) {
        return new Builder(quantizer, format, shape);
    }

    /** The quantizer that made this tensor. */
    public Quantizer quantizer() {
        return quantizer;
    }

    /** The short format id, e.g. {@code "bnb-nf4"}, {@code "native-nf2"}, {@code "int4-asym-g128"}. */
    public String format() {
        return format;
    }

    /** The original shape (a copy). */
    public int[] shape() {
        return shape.clone();
    }

    /** Number of elements. */
    public int numel() {
        return numel;
    }

    /** The packed codes, UINT8 {@code [ceil(numel · bits / 8)]}. */
    public Tensor packed() {
        return packed;
    }

    /** Width of one code in the packed stream. */
    public int bits() {
        return bits;
    }

    /** Where the first code of a byte goes. */
    public PackOrder packOrder() {
        return packOrder;
    }

    /** Consecutive flat elements per scale. */
    public int blockSize() {
        return blockSize;
    }

    /** Number of blocks (scales): {@code ceil(numel / blockSize)}. */
    public int numBlocks() {
        return (int) ((numel + (long) blockSize - 1) / blockSize);
    }

    /** Plain FLOAT32 scales {@code [numBlocks]}; empty when they are {@linkplain #nestedScales nested}. */
    public Optional<Tensor> plainScales() {
        return Optional.ofNullable(scales);
    }

    /** Quantized scales (bitsandbytes double quantization), if used. */
    public Optional<NestedScales> nestedScales() {
        return Optional.ofNullable(nested);
    }

    /** FLOAT32 zero points {@code [numBlocks]} (integer-valued), for asymmetric integer formats. */
    public Optional<Tensor> zeroPoints() {
        return Optional.ofNullable(zeroPoints);
    }

    /** The codebook of codebook formats. */
    public Optional<Codebook> codebook() {
        return Optional.ofNullable(codebook);
    }

    /**
     * The FLOAT32 scales {@code [numBlocks]}, owned by {@code scope}: the plain ones (a fresh
     * copy), or for nested scales {@code f32(f32(D[q] · absmax2) + offset)}: the nested
     * quantizer's dequantization, then the offset added (two roundings, as bitsandbytes).
     */
    public Tensor scales(TensorScope scope) {
        if (scales != null) {
            return scope.reshape(scales, numBlocks());
        }
        return nested.values(scope);
    }

    /** The codes, UINT8 {@code [numel]}, owned by {@code scope}. */
    public Tensor codes(TensorScope scope) {
        return scope.unpack(packed, bits, packOrder, numel);
    }

    /** The dequantized values, FLOAT32 in {@link #shape()}: {@code quantizer().dequantize(scope, this)}. */
    public Tensor dequantize(TensorScope scope) {
        return quantizer.dequantize(scope, this);
    }

    /** Bits of the packed stream after the last code. */
    public long paddingBits() {
        return (long) packedBytes() * 8 - (long) numel * bits;
    }

    /**
     * Storage of this tensor in bits: packed codes (with padding), scales at 32 bits each (nested:
     * the nested tensor's storage plus the 32-bit offset), zero points at their stated width.
     */
    public long storageBits() {
        long total = (long) packedBytes() * 8;
        total += nested != null ? nested.quantized().storageBits() + 32 : 32L * numBlocks();
        if (zeroPoints != null) {
            total += (long) zeroPointBits * numBlocks();
        }
        return total;
    }

    /** {@link #storageBits()} per element: 4.5 for NF4 with block 64, about 4.127 with double quantization. */
    public double bitsPerParameter() {
        return (double) storageBits() / numel;
    }

    /** Moves every tensor of this object (nested ones included) into {@code target}; returns this. */
    public QuantizedTensor keep(TensorScope target) {
        target.keep(packed);
        if (scales != null) {
            target.keep(scales);
        }
        if (nested != null) {
            nested.quantized().keep(target);
        }
        if (zeroPoints != null) {
            target.keep(zeroPoints);
        }
        return this;
    }

    private int packedBytes() {
        return HostKernels.packedLength(numel, bits);
    }

    @Override
    public String toString() {
        return "QuantizedTensor[" + format + " " + Arrays.toString(shape) + ", " + bits
                + "-bit codes, block " + blockSize + (nested != null ? ", nested scales" : "")
                + (zeroPoints != null ? ", zero points" : "") + "]";
    }

    /** Assembles and validates a {@link QuantizedTensor}. */
    public static final class Builder {
        private final Quantizer quantizer;
        private final String format;
        private final int[] shape;
        private final int numel;
        private Tensor packed;
        private int bits;
        private PackOrder packOrder;
        private int blockSize;
        private Tensor scales;
        private NestedScales nested;
        private Tensor zeroPoints;
        private int zeroPointBits;
        private Codebook codebook;

        private Builder(Quantizer quantizer, String format, int[] shape) {
            this.quantizer = Checks.notNull("quantizer", quantizer);
            this.format = Checks.notNull("format", format);
            this.shape = Checks.notNull("shape", shape).clone();
            if (shape.length == 0) {
                throw new IllegalArgumentException("shape must have rank >= 1, got []");
            }
            this.numel = Shapes.numelInt("shape", shape);
            if (numel == 0) {
                throw new IllegalArgumentException("shape must have at least one element, got "
                        + Arrays.toString(shape));
            }
        }

        /**
         * Required: the packed codes, UINT8 {@code [ceil(numel · bits / 8)]}.
         *
         * @param bits 1, 2, 3, 4 or 8
         */
        public Builder packed(Tensor packed, int bits, PackOrder order) {
            this.bits = Checks.oneOf("bits", bits, 1, 2, 3, 4, 8);
            this.packOrder = Checks.notNull("order", order);
            this.packed = checkTensor("packed", packed, DType.UINT8,
                    HostKernels.packedLength(numel, bits));
            return this;
        }

        /** The scales, FLOAT32 {@code [ceil(numel / blockSize)]}; this or {@link #nestedScales} is required. */
        public Builder scales(Tensor scales, int blockSize) {
            this.blockSize = Checks.inRange("blockSize", blockSize, 1, Integer.MAX_VALUE);
            this.scales = checkTensor("scales", scales, DType.FLOAT32, blocks());
            return this;
        }

        /** Quantized scales, with {@code ceil(numel / blockSize)} elements; this or {@link #scales} is required. */
        public Builder nestedScales(NestedScales nested, int blockSize) {
            this.blockSize = Checks.inRange("blockSize", blockSize, 1, Integer.MAX_VALUE);
            this.nested = Checks.notNull("nested", nested);
            if (nested.quantized().numel() != blocks()) {
                throw new IllegalArgumentException("nested scales must have " + blocks()
                        + " elements (one per block), got " + nested.quantized().numel());
            }
            return this;
        }

        /**
         * Optional zero points, FLOAT32 {@code [numBlocks]} holding integers, each accounted at
         * {@code bitsEach} bits of storage.
         */
        public Builder zeroPoints(Tensor zeroPoints, int bitsEach) {
            this.zeroPointBits = Checks.inRange("zero point bits", bitsEach, 1, 32);
            this.zeroPoints = zeroPoints;
            return this;
        }

        /** Optional: the codebook of a codebook format. */
        public Builder codebook(Codebook codebook) {
            this.codebook = Checks.notNull("codebook", codebook);
            return this;
        }

        /**
         * @throws IllegalArgumentException if the packed codes or the scales are missing, both plain
         *     and nested scales were given, or a tensor has the wrong dtype or size
         */
        public QuantizedTensor build() {
            if (packed == null) {
                throw new IllegalArgumentException("packed codes are required");
            }
            if ((scales == null) == (nested == null)) {
                throw new IllegalArgumentException("exactly one of scales and nested scales is "
                        + "required, got " + (scales == null ? "neither" : "both"));
            }
            if (zeroPoints != null) {
                checkTensor("zeroPoints", zeroPoints, DType.FLOAT32, blocks());
            }
            return new QuantizedTensor(this);
        }

        private int blocks() {
            return (int) ((numel + (long) blockSize - 1) / blockSize);
        }

        private static Tensor checkTensor(String name, Tensor t, DType dtype, long length) {
            Checks.notNull(name, t);
            if (t.dtype() != dtype || t.rank() != 1 || t.numel() != length) {
                throw new IllegalArgumentException(name + " must be " + dtype + " [" + length
                        + "], got " + t.dtype() + " " + Arrays.toString(t.shape()));
            }
            return t;
        }
    }
}
