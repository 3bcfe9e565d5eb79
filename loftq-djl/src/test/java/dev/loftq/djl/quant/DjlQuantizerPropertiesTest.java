package dev.loftq.djl.quant;

import dev.loftq.core.tensor.Backend;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.quant.quantizer.QuantizerProperties;

/** The quantizer properties on the DJL backend (codes identical to the reference backend's). */
class DjlQuantizerPropertiesTest extends QuantizerProperties {
    private static final Backend BACKEND = DjlBackend.cpu();

    @Override
    protected Backend backend() {
        return BACKEND;
    }
}
