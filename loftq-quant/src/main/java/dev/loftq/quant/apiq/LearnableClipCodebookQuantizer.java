package dev.loftq.quant.apiq;

import dev.loftq.core.Checks;
import dev.loftq.core.tensor.Autograd;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.util.Arrays;

/**
 * Blockwise codebook fake quantization (NF-k, as in QLoRA and LoftQ) with learnable clipping of the
 * block absmax: our extension of ApiQ's learnable weight clipping (issue 8) to the codebook
 * quantizers. Per block of {@link CodebookQuantizer#blockSize()} consecutive elements, the scale is
 * {@code sigmoid(γ)·absmax}; values beyond it take the end codes. The forward values are exactly
 * what {@link CodebookQuantizer#quantize(TensorScope, Tensor, String, Tensor)} stores with clip
 * factors sigmoid(γ) (the same encode and decode kernels on the same scales), so what is learned is
 * what {@link #quantize} stores.
 *
 * <p>Gradient: the nearest-code lookup uses a straight-through estimator. The output carries the
 * gradient of {@code scale·(xn + stopGradient(q − xn))}, with {@code xn = clamp(w / scale, −1, 1)}
 * and q the code's value, so γ receives {@code (q − xn)} from elements inside the range and the end
 * code's value from clipped ones, as learnable clipping of an integer quantizer does. Immutable.
 */
public final class LearnableClipCodebookQuantizer {
    private final CodebookQuantizer quantizer;

    /**
     * @param quantizer a codebook quantizer with absmax block scales and plain (not
     *     double-quantized) scales, e.g. {@link CodebookQuantizer#loftqNormalFloat}
     * @throws IllegalArgumentException for another block scale or double quantization
     */
    public LearnableClipCodebookQuantizer(CodebookQuantizer quantizer) {
        Checks.notNull("quantizer", quantizer);
        if (quantizer.blockScale() != CodebookQuantizer.BlockScale.ABSMAX
                || quantizer.doubleQuantization()) {
            throw new IllegalArgumentException("quantizer must have plain absmax block scales to "
                    + "learn their clipping, got " + quantizer.description());
        }
        this.quantizer = quantizer;
    }

    /** The quantizer of the stored result. */
    public CodebookQuantizer quantizer() {
        return quantizer;
    }

    /**
     * Number of blocks (clipping logits) of a weight.
     *
     * @throws IllegalArgumentException if the element count is not a multiple of the block size
     */
    public int blocks(Tensor w, String name) {
        long n = w.numel();
        if (n == 0 || n % quantizer.blockSize() != 0) {
            throw new IllegalArgumentException("weight " + name + " must hold a positive multiple of "
                    + "the block size " + quantizer.blockSize() + " elements, got "
                    + Arrays.toString(w.shape()));
        }
        return Math.toIntExact(n / quantizer.blockSize());
    }

    /**
     * A weight cut into blocks, with each block's absmax: what every {@link #fakeQuantize} of it
     * needs and that does not depend on the learned logits.
     *
     * @param blocks FLOAT32 [blocks, blockSize]
     * @param absmax FLOAT32 [blocks]
     * @param shape the weight's shape
     */
    public record Blocked(Tensor blocks, Tensor absmax, int[] shape) {}

    /**
     * Cuts {@code w} into blocks once, so repeated fake quantizations skip the reduction.
     *
     * @param scope owns the result
     * @param w FLOAT32, any shape; not modified
     */
    public Blocked block(TensorScope scope, Tensor w, String name) {
        int blocks = blocks(w, name);
        Tensor x = scope.reshape(w, blocks, quantizer.blockSize());
        return new Blocked(x, scope.blockAbsMax(x, quantizer.blockSize()), w.shape());
    }

    /**
     * deq(quant(w; sigmoid(γ)·absmax)), differentiable in γ (and, straight through, in w) where
     * {@code autograd} is given.
     *
     * @param gamma clipping logits, FLOAT32 [blocks]
     * @param autograd for the straight-through estimator; null for the values alone
     * @return FLOAT32 of the weight's shape, in {@code scope}
     */
    public Tensor fakeQuantize(TensorScope scope, Blocked w, Tensor gamma, Autograd autograd) {
        int blocks = w.absmax().dim(0);
        if (gamma.rank() != 1 || gamma.dim(0) != blocks) {
            throw new IllegalArgumentException("gamma must be FLOAT32 [" + blocks + "] (one logit "
                    + "per block), got " + gamma.dtype() + " " + Arrays.toString(gamma.shape()));
        }
        int size = quantizer.blockSize();
        // the scale as quantize computes it: f32(absmax · clip)
        Tensor scale = scope.mul(w.absmax(), scope.sigmoid(gamma));
        Tensor fixed = autograd == null ? scale : autograd.stopGradient(scope, scale);
        Tensor codes = scope.encode(w.blocks(), fixed, size, quantizer.scaleMode(),
                quantizer.encoder());
        float[] values = quantizer.codebook().values();
        Tensor table = scope.fromHost(values, values.length);
        Tensor y = scope.decode(codes, table, fixed, size);
        if (autograd != null) {
            // an all-zero block (scale 0) dequantizes to zeros; scale 1 keeps its surrogate finite
            Tensor safe = scope.where(scope.eq(scale, scope.full(0f, 1)), scope.full(1f, 1), scale);
            Tensor s = scope.reshape(safe, blocks, 1);
            Tensor xn = scope.clamp(scope.div(w.blocks(), s), -1f, 1f);
            Tensor q = scope.gather(table, codes);
            Tensor surrogate = scope.mul(scope.add(xn,
                    autograd.stopGradient(scope, scope.sub(q, xn))), s);
            // y + (surrogate − surrogate): the values of y, the gradient of the surrogate
            y = scope.add(y, scope.sub(surrogate, autograd.stopGradient(scope, surrogate)));
        }
        return scope.reshape(y, w.shape());
    }

    /**
     * The stored form: {@link CodebookQuantizer#quantize(TensorScope, Tensor, String, Tensor)}
     * with clip factors sigmoid(γ).
     *
     * @throws IllegalArgumentException if a sigmoid is 0 (a logit below about −88)
     */
    public QuantizedTensor quantize(TensorScope scope, Tensor w, String name, Tensor gamma) {
        int blocks = blocks(w, name);
        if (gamma.rank() != 1 || gamma.dim(0) != blocks) {
            throw new IllegalArgumentException("gamma must be FLOAT32 [" + blocks + "] (one logit "
                    + "per block), got " + gamma.dtype() + " " + Arrays.toString(gamma.shape()));
        }
        try (TensorScope tmp = scope.newChild()) {
            return quantizer.quantize(scope, w, name, tmp.sigmoid(gamma));
        }
    }
}
