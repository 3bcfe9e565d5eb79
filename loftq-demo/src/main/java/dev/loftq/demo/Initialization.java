package dev.loftq.demo;

import dev.loftq.djl.wrap.LoraInitializer;
import dev.loftq.quant.loftq.Loftq;
import dev.loftq.quant.loftq.LoftqConfig;
import dev.loftq.quant.loftq.LoftqResult;

/** How the quantized backbone and the adapters start. */
public enum Initialization {
    /** Q = quant(W), B = 0: the model starts with the whole quantization error. */
    QLORA("QLoRA"),
    /** LoftQ as published ({@link LoftqConfig#published}: absmax scales, exact SVD, last step). */
    LOFTQ_PUBLISHED("LoftQ published"),
    /** This library's LoftQ default (MSE-optimal block scales, fast low-rank path, keep-best). */
    LOFTQ_DEFAULT("LoftQ default");

    private final String label;

    Initialization(String label) {
        this.label = label;
    }

    /** A short name for tables and plots. */
    public String label() {
        return label;
    }

    /**
     * The initializer for the wrapper.
     *
     * @param iterations LoftQ's alternating steps T (ignored by QLoRA)
     * @param seed seed of the random A (QLoRA) or of the randomized SVD sketches
     */
    public LoraInitializer initializer(int iterations, long seed) {
        return switch (this) {
            case QLORA -> LoraInitializer.qlora(seed);
            case LOFTQ_PUBLISHED -> LoraInitializer.loftq(iterations, seed);
            case LOFTQ_DEFAULT -> (scope, w, path, spec) -> {
                LoftqConfig config = LoftqConfig.builder(spec.quantizer()).rank(spec.rank())
                        .iterations(iterations).loraAlpha(spec.alpha()).rsLora(spec.rsLora())
                        .seed(seed ^ path.hashCode()).build();
                LoftqResult r = Loftq.initialize(scope, w, path + ".weight", config);
                return new LoraInitializer.Init(r.quantized(), r.loraA(), r.loraB(), r.error());
            };
        };
    }
}
