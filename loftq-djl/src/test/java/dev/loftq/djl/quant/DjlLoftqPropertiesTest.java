package dev.loftq.djl.quant;

import dev.loftq.core.tensor.Backend;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.quant.loftq.LoftqProperties;

/** The LoftQ invariants on the DJL backend. */
class DjlLoftqPropertiesTest extends LoftqProperties {
    private static final Backend BACKEND = DjlBackend.cpu();

    @Override
    protected Backend backend() {
        return BACKEND;
    }
}
