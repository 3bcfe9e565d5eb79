package dev.loftq.quant.loftq;

import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.CodebookQuantizer.BlockScale;
import dev.loftq.quant.quantizer.QuantizedTensor;
import dev.loftq.quant.quantizer.Quantizer;

/**
 * The quantizer a LoftQ run uses: the configured one, or, with {@link LoftqConfig#optimalScales()},
 * its MSE-optimal-scale variant where one exists (codebook quantizers with absmax scales), warm
 * started from the previous step's scales.
 */
final class OptimalScales {
    private final Quantizer quantizer;
    private final CodebookQuantizer searching;

    private OptimalScales(Quantizer quantizer, CodebookQuantizer searching) {
        this.quantizer = quantizer;
        this.searching = searching;
    }

    static OptimalScales of(LoftqConfig config) {
        Quantizer q = config.quantizer();
        if (config.optimalScales() && q instanceof CodebookQuantizer c
                && c.blockScale() == BlockScale.ABSMAX) {
            CodebookQuantizer mse = c.withBlockScale(BlockScale.MSE_OPTIMAL);
            return new OptimalScales(mse, mse);
        }
        if (q instanceof CodebookQuantizer c && c.blockScale() == BlockScale.MSE_OPTIMAL) {
            return new OptimalScales(c, c);
        }
        return new OptimalScales(q, null);
    }

    /** The quantizer that runs (the MSE-optimal variant, or the configured one). */
    Quantizer quantizer() {
        return quantizer;
    }

    /** Quantizes {@code target}, warm-starting a scale search from {@code previous} if given. */
    QuantizedTensor quantize(TensorScope scope, Tensor target, String name, QuantizedTensor previous) {
        if (searching == null || previous == null) {
            return quantizer.quantize(scope, target, name);
        }
        try (TensorScope tmp = scope.newChild()) {
            return searching.quantize(scope, target, name, previous.scales(tmp));
        }
    }
}
