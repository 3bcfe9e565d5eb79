package dev.loftq.core.linalg;

import dev.loftq.core.ref.ReferenceBackend;
import dev.loftq.core.tensor.Backend;

class ReferenceLowRankTest extends LowRankProperties {
    private static final Backend BACKEND = new ReferenceBackend();

    @Override
    protected Backend backend() {
        return BACKEND;
    }
}
