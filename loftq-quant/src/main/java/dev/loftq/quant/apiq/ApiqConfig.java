package dev.loftq.quant.apiq;

import dev.loftq.core.Checks;
import dev.loftq.quant.codebook.Codebook;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.Grouping;
import dev.loftq.quant.quantizer.IntAffineQuantizer;

/**
 * Settings of one ApiQ run (Liao &amp; Monz, "ApiQ: Finetuning of 2-bit quantized large language
 * model", 2024). Immutable; {@link Builder#build()} validates. The defaults are the official ones
 * where the paper has them: int2 asymmetric, groups of 64 along the input axis, rank 16, alpha 16,
 * clipping logits starting at 4.0, AdamW with lr 5e-3 / weight decay 0.1 for the clipping and
 * 5e-4 / 0.1 for A and B, no aug term. Our additions: a held-out part of the calibration samples,
 * evaluated every {@link #evalEvery()} steps, whose best loss picks the parameters kept, and early
 * stopping after {@link #patience()} evaluations without improvement, and (with
 * {@link #normalFloat()}) NF-k with learnable clipping of the block absmax instead of int-k.
 */
public final class ApiqConfig {
    private final int bits;
    private final int groupSize;
    private final boolean symmetric;
    private final boolean normalFloat;
    private final int rank;
    private final float loraAlpha;
    private final boolean rsLora;
    private final int steps;
    private final int batchSize;
    private final float clipLr;
    private final float clipWeightDecay;
    private final float loraLr;
    private final float loraWeightDecay;
    private final float clipInit;
    private final boolean aug;
    private final double holdOut;
    private final int evalEvery;
    private final int patience;
    private final long seed;

    private ApiqConfig(Builder b) {
        bits = b.bits;
        groupSize = b.groupSize;
        symmetric = b.symmetric;
        normalFloat = b.normalFloat;
        rank = b.rank;
        loraAlpha = b.loraAlpha;
        rsLora = b.rsLora;
        steps = b.steps;
        batchSize = b.batchSize;
        clipLr = b.clipLr;
        clipWeightDecay = b.clipWeightDecay;
        loraLr = b.loraLr;
        loraWeightDecay = b.loraWeightDecay;
        clipInit = b.clipInit;
        aug = b.aug;
        holdOut = b.holdOut;
        evalEvery = b.evalEvery;
        patience = b.patience;
        seed = b.seed;
    }

    /** A builder with the defaults; the seed is mandatory. */
    public static Builder builder(long seed) {
        return new Builder(seed);
    }

    /** A builder starting from this configuration. */
    public Builder toBuilder() {
        Builder b = new Builder(seed);
        b.bits = bits;
        b.groupSize = groupSize;
        b.symmetric = symmetric;
        b.normalFloat = normalFloat;
        b.rank = rank;
        b.loraAlpha = loraAlpha;
        b.rsLora = rsLora;
        b.steps = steps;
        b.batchSize = batchSize;
        b.clipLr = clipLr;
        b.clipWeightDecay = clipWeightDecay;
        b.loraLr = loraLr;
        b.loraWeightDecay = loraWeightDecay;
        b.clipInit = clipInit;
        b.aug = aug;
        b.holdOut = holdOut;
        b.evalEvery = evalEvery;
        b.patience = patience;
        return b;
    }

    /** The integer quantizer whose clipping is learned (and which stores the result). */
    public IntAffineQuantizer quantizer() {
        return IntAffineQuantizer.builder(bits).symmetric(symmetric)
                .grouping(Grouping.ofSize(groupSize)).build();
    }

    /**
     * The NF-k quantizer whose block absmax clipping is learned when {@link #normalFloat()}: LoftQ's
     * NF-k (argmin of x / scale) with blocks of {@link #groupSize()} elements.
     */
    public CodebookQuantizer codebookQuantizer() {
        return CodebookQuantizer.builder(Codebook.normalFloat(bits))
                .convention(CodebookQuantizer.Convention.LOFTQ_NATIVE).blockSize(groupSize).build();
    }

    /**
     * Whether ApiQ learns the clipping of NF-k's block absmax ({@link #codebookQuantizer()}, one
     * logit per block; our extension) instead of int-k's group maximum and minimum.
     */
    public boolean normalFloat() {
        return normalFloat;
    }

    /** Bits per weight, 2 to 8 (2 to 4 for NF-k). */
    public int bits() {
        return bits;
    }

    /** Elements per clipping group along the input axis. */
    public int groupSize() {
        return groupSize;
    }

    /** Symmetric (no zero point) instead of asymmetric integer quantization. */
    public boolean symmetric() {
        return symmetric;
    }

    /** LoRA rank r. */
    public int rank() {
        return rank;
    }

    /** LoRA alpha. */
    public float loraAlpha() {
        return loraAlpha;
    }

    /** Whether the scaling is alpha / √r (rsLoRA) instead of alpha / r. */
    public boolean rsLora() {
        return rsLora;
    }

    /** The LoRA scaling s. */
    public float scaling() {
        return rsLora ? (float) (loraAlpha / Math.sqrt(rank)) : loraAlpha / rank;
    }

    /** Optimiser steps per target (an upper bound when early stopping ends it sooner). */
    public int steps() {
        return steps;
    }

    /** Calibration samples per step; 0 = all of them (full batch). */
    public int batchSize() {
        return batchSize;
    }

    /** AdamW learning rate of the clipping logits. */
    public float clipLr() {
        return clipLr;
    }

    /** AdamW (decoupled) weight decay of the clipping logits. */
    public float clipWeightDecay() {
        return clipWeightDecay;
    }

    /** AdamW learning rate of A and B. */
    public float loraLr() {
        return loraLr;
    }

    /** AdamW (decoupled) weight decay of A and B. */
    public float loraWeightDecay() {
        return loraWeightDecay;
    }

    /** Initial clipping logit γ = β (sigmoid(4) ≈ 0.982 of the group's max/min). */
    public float clipInit() {
        return clipInit;
    }

    /** Whether the loss adds ApiQ's aug term ‖f_fp(X_q) − f_q(X_q)‖². */
    public boolean aug() {
        return aug;
    }

    /** Fraction of the calibration samples held out for model selection, in [0, 0.9]. */
    public double holdOut() {
        return holdOut;
    }

    /** Steps between evaluations of the held-out loss. */
    public int evalEvery() {
        return evalEvery;
    }

    /** Evaluations without a better held-out loss before a target stops; 0 = never stop early. */
    public int patience() {
        return patience;
    }

    /** Seed of A's initialisation and of the mini-batch order. */
    public long seed() {
        return seed;
    }

    @Override
    public String toString() {
        return "ApiqConfig[" + (normalFloat ? "NF" + bits + " clipped absmax" : "int" + bits
                + (symmetric ? " sym" : " asym")) + " g" + groupSize + ", r"
                + rank + ", alpha " + loraAlpha + (rsLora ? " (rsLoRA)" : "") + ", steps " + steps
                + ", batch " + (batchSize == 0 ? "full" : batchSize) + ", lr " + clipLr + "/"
                + loraLr + ", wd " + clipWeightDecay + "/" + loraWeightDecay + ", clip init "
                + clipInit + (aug ? ", aug" : "") + ", hold-out " + holdOut + " every "
                + evalEvery + " patience " + patience + ", seed " + seed + "]";
    }

    /** Builds an {@link ApiqConfig}; every setter is optional. */
    public static final class Builder {
        private final long seed;
        private int bits = 2;
        private int groupSize = 64;
        private boolean symmetric;
        private boolean normalFloat;
        private int rank = 16;
        private float loraAlpha = 16f;
        private boolean rsLora;
        private int steps = 500;
        private int batchSize;
        private float clipLr = 5e-3f;
        private float clipWeightDecay = 0.1f;
        private float loraLr = 5e-4f;
        private float loraWeightDecay = 0.1f;
        private float clipInit = 4f;
        private boolean aug;
        private double holdOut = 0.25;
        private int evalEvery = 10;
        private int patience = 10;

        private Builder(long seed) {
            this.seed = seed;
        }

        /** Default 2. */
        public Builder bits(int bits) {
            this.bits = bits;
            return this;
        }

        /** Default 64. */
        public Builder groupSize(int groupSize) {
            this.groupSize = groupSize;
            return this;
        }

        /** Default false (asymmetric, with zero points, as ApiQ). */
        public Builder symmetric(boolean symmetric) {
            this.symmetric = symmetric;
            return this;
        }

        /** Default false (int-k); true: NF-k with learned block absmax clipping, 2 to 4 bits. */
        public Builder normalFloat(boolean normalFloat) {
            this.normalFloat = normalFloat;
            return this;
        }

        /** Default 16. */
        public Builder rank(int rank) {
            this.rank = rank;
            return this;
        }

        /** Default 16. */
        public Builder loraAlpha(float loraAlpha) {
            this.loraAlpha = loraAlpha;
            return this;
        }

        /** Default false. */
        public Builder rsLora(boolean rsLora) {
            this.rsLora = rsLora;
            return this;
        }

        /** Default 500. */
        public Builder steps(int steps) {
            this.steps = steps;
            return this;
        }

        /** Default 0 (full batch). */
        public Builder batchSize(int batchSize) {
            this.batchSize = batchSize;
            return this;
        }

        /** Defaults 5e-3 and 0.1 (official). */
        public Builder clipOptimizer(float lr, float weightDecay) {
            this.clipLr = lr;
            this.clipWeightDecay = weightDecay;
            return this;
        }

        /** Defaults 5e-4 and 0.1 (official). */
        public Builder loraOptimizer(float lr, float weightDecay) {
            this.loraLr = lr;
            this.loraWeightDecay = weightDecay;
            return this;
        }

        /** Default 4.0 (official). */
        public Builder clipInit(float clipInit) {
            this.clipInit = clipInit;
            return this;
        }

        /** Default false. */
        public Builder aug(boolean aug) {
            this.aug = aug;
            return this;
        }

        /** Default 0.25; 0 selects on the training loss. */
        public Builder holdOut(double holdOut) {
            this.holdOut = holdOut;
            return this;
        }

        /** Default 10. */
        public Builder evalEvery(int evalEvery) {
            this.evalEvery = evalEvery;
            return this;
        }

        /** Default 10; 0 disables early stopping. */
        public Builder patience(int patience) {
            this.patience = patience;
            return this;
        }

        /**
         * Validates and builds.
         *
         * @throws IllegalArgumentException naming the first setting out of range
         */
        public ApiqConfig build() {
            Checks.inRange("bits", bits, 2, 8);
            Checks.inRange("groupSize", groupSize, 1, 1 << 20);
            if (normalFloat) {
                Checks.inRange("bits (NF-k)", bits, 2, 4);
                Checks.oneOf("groupSize (NF-k block size)", groupSize, 16, 32, 64, 128, 256, 512,
                        1024, 2048, 4096);
            }
            Checks.inRange("rank", rank, 1, 4096);
            Checks.positive("loraAlpha", loraAlpha);
            Checks.inRange("steps", steps, 1, 1_000_000);
            Checks.inRange("batchSize", batchSize, 0, 1 << 20);
            Checks.positive("clipLr", clipLr);
            Checks.positive("loraLr", loraLr);
            nonNegative("clipWeightDecay", clipWeightDecay);
            nonNegative("loraWeightDecay", loraWeightDecay);
            Checks.finite("clipInit", clipInit);
            if (!(holdOut >= 0 && holdOut <= 0.9)) {
                throw new IllegalArgumentException("holdOut must be in [0, 0.9], got " + holdOut);
            }
            Checks.inRange("evalEvery", evalEvery, 1, 1_000_000);
            Checks.inRange("patience", patience, 0, 1_000_000);
            return new ApiqConfig(this);
        }

        private static void nonNegative(String name, float v) {
            if (!(v >= 0f) || Float.isInfinite(v)) {
                throw new IllegalArgumentException(name + " must be finite and >= 0, got " + v);
            }
        }
    }
}
