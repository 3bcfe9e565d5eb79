package dev.loftq.quant.quantizer;

import dev.loftq.core.ref.ReferenceBackend;
import dev.loftq.core.tensor.Backend;

/** The quantizer properties on the pure-Java reference backend. */
class ReferenceQuantizerPropertiesTest extends QuantizerProperties {
    @Override
    protected Backend backend() {
        return new ReferenceBackend();
    }
}
