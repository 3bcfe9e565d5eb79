package dev.loftq.quant.apiq;

import dev.loftq.core.ref.ReferenceBackend;
import dev.loftq.core.tensor.Backend;

/** ApiQ's building blocks on the pure-Java reference backend (which has no autograd). */
class ReferenceApiqPropertiesTest extends ApiqProperties {
    @Override
    protected Backend backend() {
        return new ReferenceBackend();
    }
}
