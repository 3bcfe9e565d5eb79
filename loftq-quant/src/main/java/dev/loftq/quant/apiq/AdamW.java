package dev.loftq.quant.apiq;

import dev.loftq.core.Checks;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.Arrays;

/**
 * AdamW (Loshchilov &amp; Hutter, 2019) over SPI tensors, step for step as {@code torch.optim.AdamW}
 * with β = (0.9, 0.999), ε = 1e-8: {@code p ← p·(1 − lr·wd)}, then
 * {@code m ← β1·m + (1−β1)·g}, {@code v ← β2·v + (1−β2)·g²},
 * {@code p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + ε)}.
 *
 * <p>SPI tensors are immutable, so each {@link #step} returns new parameters and keeps new moments,
 * all made in the scope it is given: once it returns, the scope holding the previous parameters
 * and moments may be closed. Each parameter belongs to a {@link Group} with its learning rate and
 * weight decay. Not thread-safe.
 */
public final class AdamW {
    private static final float BETA1 = 0.9f;
    private static final float BETA2 = 0.999f;
    private static final float EPS = 1e-8f;

    private final Group[] groups;
    private final Tensor[] m;
    private final Tensor[] v;
    private int t;

    /** Learning rate (> 0) and decoupled weight decay (>= 0) of some parameters. */
    public record Group(float lr, float weightDecay) {
        /** Validates. */
        public Group {
            Checks.positive("lr", lr);
            if (!(weightDecay >= 0f) || Float.isInfinite(weightDecay)) {
                throw new IllegalArgumentException("weightDecay must be finite and >= 0, got "
                        + weightDecay);
            }
        }
    }

    /**
     * An optimiser for {@code groups.length} parameters.
     *
     * @param groups the group of each parameter, in the order {@link #step} receives them
     */
    public AdamW(Group... groups) {
        if (groups.length == 0) {
            throw new IllegalArgumentException("groups must name at least one parameter, got 0");
        }
        this.groups = groups.clone();
        this.m = new Tensor[groups.length];
        this.v = new Tensor[groups.length];
    }

    /** Steps taken so far. */
    public int steps() {
        return t;
    }

    /**
     * One update.
     *
     * @param out owns the new parameters and moments
     * @param params current values, FLOAT32; not modified
     * @param grads gradients, each of its parameter's shape; not modified
     * @return the updated parameters, in {@code out}
     */
    public Tensor[] step(TensorScope out, Tensor[] params, Tensor[] grads) {
        if (params.length != groups.length || grads.length != groups.length) {
            throw new IllegalArgumentException("step: expected " + groups.length
                    + " parameters and gradients, got " + params.length + " and " + grads.length);
        }
        t++;
        float bc1 = (float) (1 - Math.pow(BETA1, t));
        float sqrtBc2 = (float) Math.sqrt(1 - Math.pow(BETA2, t));
        Tensor[] next = new Tensor[params.length];
        for (int i = 0; i < params.length; i++) {
            Tensor p = params[i];
            Tensor g = grads[i];
            if (!Arrays.equals(p.shape(), g.shape())) {
                throw new IllegalArgumentException("step: gradient " + i + " must have shape "
                        + Arrays.toString(p.shape()) + ", got " + Arrays.toString(g.shape()));
            }
            Group group = groups[i];
            try (TensorScope tmp = out.newChild()) {
                Tensor mi = m[i] == null ? tmp.mul(g, 1 - BETA1)
                        : tmp.add(tmp.mul(m[i], BETA1), tmp.mul(g, 1 - BETA1));
                Tensor g2 = tmp.mul(g, g);
                Tensor vi = v[i] == null ? tmp.mul(g2, 1 - BETA2)
                        : tmp.add(tmp.mul(v[i], BETA2), tmp.mul(g2, 1 - BETA2));
                Tensor decayed = tmp.mul(p, 1 - group.lr() * group.weightDecay());
                Tensor denom = tmp.add(tmp.div(tmp.sqrt(vi), sqrtBc2), EPS);
                Tensor update = tmp.mul(tmp.div(mi, denom), group.lr() / bc1);
                next[i] = out.keep(tmp.sub(decayed, update));
                m[i] = out.keep(mi);
                v[i] = out.keep(vi);
            }
        }
        return next;
    }
}
