package dev.loftq.djl.quant;

import dev.loftq.core.tensor.Backend;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.quant.loftq.LoftqVectorTests;

/** The peft LoftQ vectors on the DJL backend (published preset). */
class DjlLoftqVectorTest extends LoftqVectorTests {
    private static final Backend BACKEND = DjlBackend.cpu();

    @Override
    protected Backend backend() {
        return BACKEND;
    }
}
