package dev.loftq.quant.loftq;

import dev.loftq.core.Checks;
import dev.loftq.core.linalg.LowRankOptions;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.Quantizer;

/**
 * Immutable configuration of {@link Loftq}. Build with {@link #builder(Quantizer)} or start from
 * {@link #published(Quantizer, int)}, the paper's algorithm as peft implements it.
 *
 * <p>Scaling: the adapters are used as {@code s·B·A} with {@code s = loraAlpha / rank}, or
 * {@code loraAlpha / sqrt(rank)} with rsLoRA. LoftQ here honours {@code s}: it stores
 * {@code B = U·√S / √s} and {@code A = √S·Vᵀ / √s}, so {@code s·B·A} is the rank-r approximation
 * whatever alpha is (peft's LoftQ ignores {@code s}, its issue #1982).
 */
public final class LoftqConfig {
    private final Quantizer quantizer;
    private final int rank;
    private final int iterations;
    private final float loraAlpha;
    private final boolean rsLora;
    private final LowRankOptions lowRank;
    private final boolean keepBest;
    private final boolean optimalScales;
    private final long seed;

    private LoftqConfig(Builder b, float loraAlpha) {
        this.quantizer = b.quantizer;
        this.rank = b.rank;
        this.iterations = b.iterations;
        this.loraAlpha = loraAlpha;
        this.rsLora = b.rsLora;
        this.lowRank = b.lowRank;
        this.keepBest = b.keepBest;
        this.optimalScales = b.optimalScales;
        this.seed = b.seed;
    }

    /**
     * A builder with this library's defaults: rank 16, T = 5, alpha = rank (s = 1), fast low-rank
     * mode, keep-best on, MSE-optimal block scales on (where the quantizer supports them), seed 0.
     */
    public static Builder builder(Quantizer quantizer) {
        return new Builder(quantizer);
    }

    /**
     * The published algorithm (Li et al., LoftQ, ICLR 2024; peft's {@code loftq_init}): absmax
     * block scales, an exact truncated SVD every step, the last step returned (no keep-best),
     * T = 5, alpha = rank. Reproduces the errors of peft's loop.
     */
    public static LoftqConfig published(Quantizer quantizer, int rank) {
        return builder(quantizer).rank(rank).loraAlpha(rank).lowRank(LowRankOptions.exactDefaults())
                .keepBest(false).optimalScales(false).build();
    }

    /** A builder holding this configuration. */
    public Builder toBuilder() {
        return new Builder(quantizer).rank(rank).iterations(iterations).loraAlpha(loraAlpha)
                .rsLora(rsLora).lowRank(lowRank).keepBest(keepBest).optimalScales(optimalScales)
                .seed(seed);
    }

    public Quantizer quantizer() {
        return quantizer;
    }

    public int rank() {
        return rank;
    }

    public int iterations() {
        return iterations;
    }

    public float loraAlpha() {
        return loraAlpha;
    }

    public boolean rsLora() {
        return rsLora;
    }

    public LowRankOptions lowRank() {
        return lowRank;
    }

    public boolean keepBest() {
        return keepBest;
    }

    /** Whether the quantizer searches MSE-optimal block scales (see {@link Builder#optimalScales}). */
    public boolean optimalScales() {
        return optimalScales;
    }

    public long seed() {
        return seed;
    }

    /** The LoRA scaling s: alpha / r, or alpha / √r with rsLoRA. */
    public float scaling() {
        return (float) (rsLora ? loraAlpha / Math.sqrt(rank) : loraAlpha / (double) rank);
    }

    @Override
    public String toString() {
        return "LoftqConfig[" + quantizer.description() + ", rank " + rank + ", T " + iterations
                + ", alpha " + loraAlpha + (rsLora ? " (rsLoRA)" : "") + ", "
                + (lowRank.exact() ? "exact" : "fast") + " low-rank, keepBest " + keepBest
                + ", optimalScales " + optimalScales + ", seed " + seed + "]";
    }

    /** Builder: {@code build()} validates every field. */
    public static final class Builder {
        private Quantizer quantizer;
        private int rank = 16;
        private int iterations = 5;
        private float loraAlpha = Float.NaN; // NaN: equal to the rank
        private boolean rsLora;
        private LowRankOptions lowRank = LowRankOptions.fastDefaults();
        private boolean keepBest = true;
        private boolean optimalScales = true;
        private long seed;

        private Builder(Quantizer quantizer) {
            this.quantizer = Checks.notNull("quantizer", quantizer);
        }

        /** The quantizer of the backbone. */
        public Builder quantizer(Quantizer quantizer) {
            this.quantizer = Checks.notNull("quantizer", quantizer);
            return this;
        }

        /** LoRA rank r in [1, 4096]; at most min(out, in) of the weight. Default 16. */
        public Builder rank(int rank) {
            this.rank = rank;
            return this;
        }

        /** Alternating steps T >= 1. Default 5. */
        public Builder iterations(int iterations) {
            this.iterations = iterations;
            return this;
        }

        /** lora_alpha > 0. Default: the rank (s = 1). */
        public Builder loraAlpha(float loraAlpha) {
            this.loraAlpha = loraAlpha;
            return this;
        }

        /** rsLoRA scaling alpha / √r. Default false. */
        public Builder rsLora(boolean rsLora) {
            this.rsLora = rsLora;
            return this;
        }

        /** The low-rank mode. Default {@link LowRankOptions#fastDefaults()}. */
        public Builder lowRank(LowRankOptions lowRank) {
            this.lowRank = Checks.notNull("lowRank", lowRank);
            return this;
        }

        /** Return the step with the lowest error instead of the last. Default true. */
        public Builder keepBest(boolean keepBest) {
            this.keepBest = keepBest;
            return this;
        }

        /**
         * Search, per block, the scale that minimises the block's squared quantization error (values
         * beyond it clip to the end codes) instead of the absmax. Applies to
         * {@link CodebookQuantizer}s with absmax scales; other quantizers are used as given. The
         * stored scale still dequantizes as code × scale, so files stay loadable by bitsandbytes.
         * Default true.
         */
        public Builder optimalScales(boolean optimalScales) {
            this.optimalScales = optimalScales;
            return this;
        }

        /** Seed of the randomized low-rank sketches. Default 0. */
        public Builder seed(long seed) {
            this.seed = seed;
            return this;
        }

        public LoftqConfig build() {
            Checks.inRange("rank", rank, 1, 4096);
            Checks.inRange("iterations", iterations, 1, 1000);
            float alpha = Float.isNaN(loraAlpha) ? rank : loraAlpha;
            Checks.positive("loraAlpha", alpha);
            return new LoftqConfig(this, alpha);
        }
    }
}
