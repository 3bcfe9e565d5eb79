package dev.loftq.quant.quantizer;

import dev.loftq.core.ref.ReferenceBackend;
import dev.loftq.core.tensor.Backend;

/** The reference vectors on the pure-Java reference backend. */
class ReferenceQuantizerVectorTest extends QuantizerVectorTests {
    @Override
    protected Backend backend() {
        return new ReferenceBackend();
    }
}
