package dev.loftq.djl.quant;

import dev.loftq.core.tensor.Backend;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.quant.quantizer.QuantizerVectorTests;

/** Every bitsandbytes and native LoftQ vector, bit for bit, on the DJL backend. */
class DjlQuantizerVectorTest extends QuantizerVectorTests {
    private static final Backend BACKEND = DjlBackend.cpu();

    @Override
    protected Backend backend() {
        return BACKEND;
    }
}
