package dev.loftq.djl.backend;

import ai.djl.engine.Engine;
import ai.djl.engine.EngineException;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.GradientCollector;
import dev.loftq.core.tensor.Autograd;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.Arrays;

/**
 * PyTorch autograd behind the SPI's {@link Autograd}, through DJL's {@link GradientCollector}.
 *
 * <ul>
 *   <li>{@link #requireGradient} sets {@code requires_grad} and zeroes a gradient left by an
 * earlier       pass; gradients then accumulate over backward passes until the next call.</li>
 *   <li>{@link #record()} opens a {@code GradientCollector}. DJL's PyTorch engine allows only one
 * at a       time in the whole process, so a second concurrent tape (any thread) throws
 *       {@link IllegalStateException}.</li>
 *   <li>{@link #gradient} returns a copy of the accumulated gradient, owned by the leaf's scope, so
 * a       later {@link #requireGradient} or backward pass never changes a gradient already handed
 *       out.</li>
 * </ul>
 */
final class DjlAutograd implements Autograd {
    private final DjlBackend backend;

    DjlAutograd(DjlBackend backend) {
        this.backend = backend;
    }

    @Override
    public void requireGradient(Tensor leaf) {
        DjlTensor d = arg("requireGradient", "leaf", leaf);
        NDArray nd = d.nd();
        if (nd.hasGradient()) {
            try (NDManager tmp = d.owner().manager().newSubManager()) {
                NDArray grad = NdKernels.own(tmp, nd.getGradient());
                grad.set(new NDIndex("..."), 0f);
            }
        }
        try {
            nd.setRequiresGradient(true);
        } catch (EngineException e) {
            throw new IllegalArgumentException("requireGradient: leaf "
                    + Arrays.toString(d.shape()) + " cannot require a gradient (it must not be "
                    + "computed from a tensor that requires one): " + e.getMessage(), e);
        }
    }

    @Override
    public Tape record() {
        boolean gradMode = JniUtils.isGradMode();
        try {
            return new DjlTape(Engine.getEngine(DjlBackend.ENGINE).newGradientCollector());
        } catch (IllegalStateException e) {
            // DJL turns grad mode on before it finds another collector running.
            JniUtils.setGradMode(gradMode);
            throw new IllegalStateException("record: another tape (DJL GradientCollector) is "
                    + "recording; the PyTorch engine allows one at a time per process", e);
        }
    }

    @Override
    public Tensor gradient(Tensor leaf) {
        DjlTensor d = arg("gradient", "leaf", leaf);
        if (!d.nd().hasGradient()) {
            throw new IllegalStateException("gradient: leaf " + Arrays.toString(d.shape())
                    + " was not marked with requireGradient");
        }
        DjlScope owner = d.owner();
        try (NDManager tmp = owner.manager().newSubManager()) {
            NDArray grad = NdKernels.own(tmp, d.nd().getGradient());
            return owner.adopt(grad.duplicate());
        }
    }

    @Override
    public Tensor stopGradient(TensorScope scope, Tensor t) {
        DjlScope s = DjlScope.of("stopGradient", scope);
        if (s.backend() != backend) {
            throw new IllegalArgumentException("stopGradient: scope belongs to another "
                    + DjlBackend.NAME + " backend instance (" + s.backend().device() + ")");
        }
        DjlTensor d = DjlTensor.of("stopGradient", "t", t);
        checkBackend("stopGradient", "t", d);
        NDArray detached = d.nd().stopGradient();
        return s.adopt(detached == d.nd() ? d.nd().reshape(d.nd().getShape()) : detached);
    }

    private DjlTensor arg(String op, String name, Tensor t) {
        DjlTensor d = DjlTensor.of(op, name, t);
        checkBackend(op, name, d);
        if (d.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException(op + ": " + name + " must be FLOAT32, got "
                    + d.dtype());
        }
        return d;
    }

    private void checkBackend(String op, String name, DjlTensor d) {
        if (d.djlBackend() != backend) {
            throw new IllegalArgumentException(op + ": " + name + " belongs to another "
                    + DjlBackend.NAME + " backend instance (" + d.backend().device() + ")");
        }
    }

    /** One recording: a {@link GradientCollector} until closed. */
    private final class DjlTape implements Tape {
        private final GradientCollector collector;
        private boolean closed;

        DjlTape(GradientCollector collector) {
            this.collector = collector;
        }

        @Override
        public void backward(Tensor loss) {
            if (closed) {
                throw new IllegalStateException("backward: the tape is closed");
            }
            DjlTensor l = DjlTensor.of("backward", "loss", loss);
            checkBackend("backward", "loss", l);
            if (l.dtype() != DType.FLOAT32 || l.numel() != 1) {
                throw new IllegalArgumentException("backward: loss must be a single FLOAT32 "
                        + "element, got " + l.dtype() + " " + Arrays.toString(l.shape()));
            }
            // DJL's backward makes its seed gradient in the loss's manager: hand it a view owned by
            // a temporary manager instead, so the seed dies here.
            try (NDManager tmp = l.owner().manager().newSubManager()) {
                NDArray view = NdKernels.own(tmp, l.nd().reshape(l.nd().getShape()));
                collector.backward(view);
            } catch (EngineException e) {
                throw new IllegalArgumentException("backward: PyTorch cannot differentiate the "
                        + "loss (does it depend on a tensor marked with requireGradient, computed "
                        + "while this tape was recording?): " + e.getMessage(), e);
            }
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                collector.close();
            }
        }
    }
}
