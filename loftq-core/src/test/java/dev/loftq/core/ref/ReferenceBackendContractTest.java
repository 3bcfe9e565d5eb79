package dev.loftq.core.ref;

import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.core.testkit.BackendContract;
import java.util.OptionalLong;

/** The backend contract on the reference backend, with its live-tensor count as leak check. */
class ReferenceBackendContractTest extends BackendContract {
    @Override
    protected Backend backend() {
        return new ReferenceBackend();
    }

    @Override
    protected OptionalLong liveTensorCount(TensorScope scope) {
        return OptionalLong.of(((RefScope) scope).liveTensorCount());
    }
}
