package dev.loftq.quant.apiq;

import dev.loftq.core.Checks;
import dev.loftq.core.tensor.Autograd;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.quantizer.ClipFactors;
import dev.loftq.quant.quantizer.IntAffineQuantizer;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.util.Arrays;

/**
 * Integer affine fake quantization with learnable weight clipping (OmniQuant's LWC, used by ApiQ):
 * per group, the range is {@code sigmoid(γ)·max} and {@code sigmoid(β)·min}, and the weight is
 * quantized and dequantized exactly as {@link IntAffineQuantizer} does with those
 * {@link ClipFactors}, in differentiable SPI operations. Rounding (of the codes and of the zero
 * point) uses the straight-through estimator {@code x + stopGradient(round(x) − x)}, so gradients
 * reach γ and β through the scale and zero point, and the weight's gradient passes the rounding.
 *
 * <p>The forward values equal {@code quantizer.dequantize(quantizer.quantize(w, clip))} (the same
 * float32 operations in the same order), so what is learned is what {@link #quantize} stores.
 * One difference: a group whose scale underflows (range below {@code qmax·Float.MIN_VALUE}, but
 * not 0) is not given {@link Float#MIN_VALUE}; real weights never have such groups. Immutable.
 */
public final class LearnableClipQuantizer {
    private final IntAffineQuantizer quantizer;
    private final int groupSize;

    /**
     * @param quantizer the integer quantizer; must group by a fixed size along the input axis
     * @param groupSize its group size (the builder's {@code Grouping.ofSize})
     */
    public LearnableClipQuantizer(IntAffineQuantizer quantizer, int groupSize) {
        this.quantizer = Checks.notNull("quantizer", quantizer);
        this.groupSize = Checks.inRange("groupSize", groupSize, 1, 1 << 20);
    }

    /** The quantizer of the stored result. */
    public IntAffineQuantizer quantizer() {
        return quantizer;
    }

    /**
     * Number of clipping groups of a weight [out, in].
     *
     * @throws IllegalArgumentException if {@code w} is not 2-D or the group size does not divide in
     */
    public int groups(Tensor w, String name) {
        int[] s = w.shape();
        if (s.length != 2 || s[1] % groupSize != 0) {
            throw new IllegalArgumentException("weight " + name + " must be [out, in] with in a "
                    + "multiple of the group size " + groupSize + ", got " + Arrays.toString(s));
        }
        return s[0] * (s[1] / groupSize);
    }

    /**
     * A weight viewed as groups, with its per-group maximum and minimum: what every
     * {@link #fakeQuantize} of it needs and that does not depend on the learned parameters.
     *
     * @param groups FLOAT32 [groups, groupSize]
     * @param max FLOAT32 [groups]
     * @param min FLOAT32 [groups]
     * @param shape the weight's shape
     */
    public record Grouped(Tensor groups, Tensor max, Tensor min, int[] shape) {}

    /**
     * Groups {@code w} once, so repeated fake quantizations (one per optimiser step) skip the
     * reductions. The weight gets no gradient through the group extremes (ApiQ learns only γ, β,
     * A and B).
     *
     * @param scope owns the result
     * @param w FLOAT32 [out, in]; not modified
     */
    public Grouped group(TensorScope scope, Tensor w, String name) {
        int groups = groups(w, name);
        Tensor x = scope.reshape(w, groups, groupSize);
        return new Grouped(x, scope.maxLast(x), scope.minLast(x), w.shape());
    }

    /**
     * deq(quant(w; sigmoid(γ), sigmoid(β))), differentiable in w, γ and β where {@code autograd}
     * is given (else plain rounding: the same values, no gradient path needed).
     *
     * @param w FLOAT32 [out, in]; not modified
     * @param gamma clipping logits of the maxima, FLOAT32 [groups]
     * @param beta clipping logits of the minima, FLOAT32 [groups]
     * @param autograd for the straight-through rounding; null without autograd
     * @return FLOAT32 [out, in] in {@code scope}
     */
    public Tensor fakeQuantize(TensorScope scope, Tensor w, Tensor gamma, Tensor beta,
            Autograd autograd) {
        try (TensorScope tmp = scope.newChild()) {
            return scope.keep(fakeQuantize(tmp, group(tmp, w, "w"), gamma, beta, autograd));
        }
    }

    /**
     * {@link #fakeQuantize(TensorScope, Tensor, Tensor, Tensor, Autograd)} of a weight grouped
     * with {@link #group}.
     */
    public Tensor fakeQuantize(TensorScope scope, Grouped w, Tensor gamma, Tensor beta,
            Autograd autograd) {
        int groups = w.max().dim(0);
        checkLogits("gamma", gamma, groups);
        checkLogits("beta", beta, groups);
        int bits = quantizer.codeBits();
        int qmax = (1 << bits) - 1;
        Tensor hi = scope.mul(scope.sigmoid(gamma), w.max());
        Tensor lo = scope.mul(scope.sigmoid(beta), w.min());
        Tensor scale;
        Tensor zero;
        if (quantizer.symmetric()) {
            int h = (1 << (bits - 1)) - 1;
            Tensor a = scope.maximum(scope.abs(hi), scope.abs(lo));
            scale = nonZero(scope, scope.div(a, h), a);
            zero = scope.full(h, groups, 1);
            scale = scope.reshape(scale, groups, 1);
        } else {
            Tensor zeros = scope.full(0f, groups);
            hi = scope.maximum(hi, zeros);
            lo = scope.minimum(lo, zeros);
            Tensor range = scope.sub(hi, lo);
            scale = nonZero(scope, scope.div(range, qmax), range);
            zero = scope.clamp(round(scope, scope.div(scope.neg(lo), scale), autograd), 0f, qmax);
            scale = scope.reshape(scale, groups, 1);
            zero = scope.reshape(zero, groups, 1);
        }
        // code = clamp(round(w / s) + zero, 0, qmax), as clamp(round(w / s) + (zero + 1), 1,
        // qmax + 1) - 1: bounds away from 0 keep the clamp a single kernel on every backend. The
        // shift is added to the per-group zero, so (code - zero)·s is (shifted code - (zero + 1))·s:
        // small integers, so exactly the same values, and two fewer passes over the weight
        Tensor zeroPlusOne = scope.add(zero, 1f);
        Tensor shifted = scope.add(round(scope, scope.div(w.groups(), scale), autograd), zeroPlusOne);
        Tensor y = scope.mul(scope.sub(scope.clamp(shifted, 1f, qmax + 1), zeroPlusOne), scale);
        return scope.reshape(y, w.shape());
    }

    /**
     * The stored form: {@link IntAffineQuantizer#quantize} with clip factors sigmoid(γ),
     * sigmoid(β).
     *
     * @throws IllegalArgumentException if a sigmoid is 0 (a logit below about −88)
     */
    public QuantizedTensor quantize(TensorScope scope, Tensor w, String name, Tensor gamma,
            Tensor beta) {
        int groups = groups(w, name);
        checkLogits("gamma", gamma, groups);
        checkLogits("beta", beta, groups);
        try (TensorScope tmp = scope.newChild()) {
            ClipFactors clip = new ClipFactors(tmp.sigmoid(gamma), tmp.sigmoid(beta));
            return quantizer.quantize(scope, w, name, clip);
        }
    }

    /** {@code s} where {@code range != 0}, else 1 (an all-zero group dequantizes to zeros). */
    private static Tensor nonZero(TensorScope scope, Tensor s, Tensor range) {
        return scope.where(scope.eq(range, scope.full(0f, 1)), scope.full(1f, 1), s);
    }

    /**
     * Round half to even; with autograd, the straight-through estimator
     * {@code x + stopGradient(round(x) − x)}: the same values (round(x) − x is exact in float32;
     * a negative zero may come out positive), and the gradient of the identity.
     *
     * @param autograd null for plain rounding
     */
    public static Tensor round(TensorScope scope, Tensor x, Autograd autograd) {
        Tensor r = scope.round(x);
        if (autograd == null) {
            return r;
        }
        return scope.add(x, autograd.stopGradient(scope, scope.sub(r, x)));
    }

    private static void checkLogits(String name, Tensor t, int groups) {
        if (t.rank() != 1 || t.dim(0) != groups) {
            throw new IllegalArgumentException(name + " must be FLOAT32 [" + groups
                    + "] (one logit per group), got " + t.dtype() + " "
                    + Arrays.toString(t.shape()));
        }
    }
}
