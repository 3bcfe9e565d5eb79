package dev.loftq.core.testkit;

import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;

/**
 * A FLOAT32 [2, 2] tensor of a backend named "foreign" that no scope belongs to: for checking that
 * a backend rejects tensors of another backend.
 */
public final class ForeignTensor implements Tensor {
    private static final Backend FOREIGN = new Backend() {
        @Override
        public String name() {
            return "foreign";
        }

        @Override
        public String device() {
            return "nowhere";
        }

        @Override
        public TensorScope newScope() {
            throw new UnsupportedOperationException(
                    "newScope: the foreign test backend has no scopes");
        }
    };

    @Override
    public int[] shape() {
        return new int[] {2, 2};
    }

    @Override
    public DType dtype() {
        return DType.FLOAT32;
    }

    @Override
    public Backend backend() {
        return FOREIGN;
    }

    @Override
    public boolean isAlive() {
        return true;
    }
}
