package dev.loftq.djl.backend;

import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.core.testkit.BackendContract;
import java.util.OptionalLong;

/** The backend test kit, run on the DJL backend against the reference backend. */
class DjlBackendContractTest extends BackendContract {
    private static final DjlBackend BACKEND = DjlBackend.cpu();

    @Override
    protected Backend backend() {
        return BACKEND;
    }

    /** Live NDArrays under the scope's manager and its sub-managers. */
    @Override
    protected OptionalLong liveTensorCount(TensorScope scope) {
        return OptionalLong.of(DjlBackend.manager(scope).getManagedArrays().size());
    }
}
