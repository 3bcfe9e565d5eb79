package dev.loftq.quant.loftq;

import dev.loftq.core.ref.ReferenceBackend;
import dev.loftq.core.tensor.Backend;

class ReferenceLoftqPropertiesTest extends LoftqProperties {
    private static final Backend BACKEND = new ReferenceBackend();

    @Override
    protected Backend backend() {
        return BACKEND;
    }
}
