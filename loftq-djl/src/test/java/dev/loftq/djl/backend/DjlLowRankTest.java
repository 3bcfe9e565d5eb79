package dev.loftq.djl.backend;

import dev.loftq.core.linalg.LowRankProperties;
import dev.loftq.core.tensor.Backend;

/** The low-rank properties on the DJL backend: big products on PyTorch, small problems on EJML. */
class DjlLowRankTest extends LowRankProperties {
    private static final DjlBackend BACKEND = DjlBackend.cpu();

    @Override
    protected Backend backend() {
        return BACKEND;
    }
}
