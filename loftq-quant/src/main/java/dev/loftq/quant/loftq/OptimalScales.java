package dev.loftq.quant.loftq;

import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.CodebookQuantizer.BlockScale;
import dev.loftq.quant.quantizer.Quantizer;

/** The quantizer a LoftQ run uses. */
final class OptimalScales {
    private OptimalScales() {}

    /**
     * The configured quantizer, or, with {@link LoftqConfig#optimalScales()}, its MSE-optimal-scale
     * variant where one exists (a codebook quantizer with absmax scales).
     */
    static Quantizer quantizerFor(LoftqConfig config) {
        Quantizer q = config.quantizer();
        if (config.optimalScales() && q instanceof CodebookQuantizer c
                && c.blockScale() == BlockScale.ABSMAX) {
            return c.withBlockScale(BlockScale.MSE_OPTIMAL);
        }
        return q;
    }
}
