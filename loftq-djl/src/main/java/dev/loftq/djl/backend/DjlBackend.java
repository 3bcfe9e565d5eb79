package dev.loftq.djl.backend;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import dev.loftq.core.Checks;
import dev.loftq.core.tensor.Autograd;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The tensor SPI on DJL's PyTorch engine: tensors are {@link NDArray}s on one {@link Device},
 * scopes are {@link NDManager}s.
 *
 * <p><b>Lifetimes.</b> The backend owns a base manager on its device. {@link #newScope()} opens a
 * sub-manager of it, {@link TensorScope#newChild()} a sub-manager of the scope's manager, and
 * {@link TensorScope#keep} is {@link NDArray#attach}. DJL puts the result of an operation in the
 * manager of its (first) input; every operation here moves its result into the scope it was called
 * on and makes its temporaries in a sub-manager that it closes before returning, so nothing lands
 * in the scope of an input. {@link #close()} frees every array of every scope.
 *
 * <p><b>Kernels.</b> Elementwise operations, reductions and matmul are single PyTorch operations,
 * except where PyTorch's float32 kernel is not the contract's: {@code sqrt} and {@code sigmoid} are
 * evaluated in float64 and rounded once (PyTorch's float32 sqrt is not correctly rounded on CPU,
 * its float32 sigmoid underflows to 0 below -88), and {@code maximum}, {@code minimum} and
 * {@code clamp} fix the sign of zero where PyTorch differs from {@link Math#max}/{@link Math#min}.
 * Of the coarse codebook kernels, {@code blockAbsMax}, {@code gather} and {@code decode} (and
 * {@code sumOfSquares}) run where {@link KernelPlacement} says: on the host through
 * {@link dev.loftq.core.tensor.HostKernels} (the CPU default), or as PyTorch operations that give
 * the same bits (the GPU default). {@code encode}, {@code pack} and {@code unpack} (bucketing and
 * bit operations, which DJL lacks) always copy to the host and run {@code HostKernels} there.
 *
 * <p><b>Transfers.</b> Host arrays are copied into a reused, native-order direct buffer (a small
 * pool per backend, 32 MB chunks), from which PyTorch makes its own copy on the device; a fresh
 * direct buffer per upload would cost far more than the copy. Downloads read the memory of a
 * contiguous CPU tensor in place. Both go in chunks, so tensors over 2 GB cross too.
 *
 * <p><b>Devices.</b> This module depends on the CPU natives ({@code pytorch-native-cpu}); for CUDA,
 * replace them with the matching {@code ai.djl.pytorch:pytorch-native-cuXXX} classifier (or let DJL
 * download natives by not setting {@code ai.djl.offline}) and use {@link #best()} or
 * {@link #on(Device)}.
 *
 * <p>Thread-safety: the backend is thread-safe; each scope is used by one thread at a time. Tensors
 * must come from this backend instance: two {@code DjlBackend}s never mix tensors, even on the same
 * device.
 */
public final class DjlBackend implements Backend, AutoCloseable {
    /** The value of {@link #name()}. */
    public static final String NAME = "djl-pytorch";

    /** DJL's name of the PyTorch engine. */
    static final String ENGINE = "PyTorch";

    private static final Logger LOG = LoggerFactory.getLogger(DjlBackend.class);

    /** Default size of one host-device transfer chunk (and of the pooled staging buffers). */
    static final int TRANSFER_CHUNK_BYTES = 32 << 20;

    private final Device device;
    private final KernelPlacement placement;
    private final int transferChunkBytes;
    private final NDManager base;
    private final StagingBuffers staging;
    private final DjlAutograd autograd;
    private final AtomicBoolean closed = new AtomicBoolean();

    private DjlBackend(Device device, KernelPlacement placement, int transferChunkBytes) {
        this.device = device;
        this.placement = placement;
        this.transferChunkBytes = transferChunkBytes;
        this.base = Engine.getEngine(ENGINE).newBaseManager(device);
        this.base.setName("loftq-" + device);
        this.staging = new StagingBuffers();
        this.autograd = new DjlAutograd(this);
        LOG.debug("DJL backend on {} (PyTorch {}), coarse kernels on the {}", device,
                Engine.getEngine(ENGINE).getVersion(), placement);
    }

    /** A backend on the CPU. */
    public static DjlBackend cpu() {
        return on(Device.cpu());
    }

    /**
     * A backend on {@code device}, with the coarse kernels where they are fastest there
     * ({@link KernelPlacement#HOST} on the CPU, {@link KernelPlacement#DEVICE} on a GPU).
     *
     * @throws IllegalArgumentException if the device is a GPU that the PyTorch engine cannot see
     */
    public static DjlBackend on(Device device) {
        Checks.notNull("device", device);
        return on(device, KernelPlacement.defaultFor(device));
    }

    /**
     * A backend on {@code device} with the coarse kernels placed as {@code placement} says (for
     * benchmarks and tests; results are the same either way).
     *
     * @throws IllegalArgumentException if the device is a GPU that the PyTorch engine cannot see
     */
    public static DjlBackend on(Device device, KernelPlacement placement) {
        Checks.notNull("device", device);
        Checks.notNull("placement", placement);
        if (device.isGpu()) {
            int gpus = Engine.getEngine(ENGINE).getGpuCount();
            if (device.getDeviceId() >= gpus) {
                throw new IllegalArgumentException("device " + device + " is not available: the "
                        + "PyTorch engine sees " + gpus + " GPU(s); CUDA needs a "
                        + "pytorch-native-cuXXX artifact");
            }
        }
        return new DjlBackend(device, placement, TRANSFER_CHUNK_BYTES);
    }

    /**
     * A CPU backend with a small transfer chunk, so tests exercise chunked copies on small data.
     */
    static DjlBackend withChunkBytes(KernelPlacement placement, int transferChunkBytes) {
        return new DjlBackend(Device.cpu(), placement, transferChunkBytes);
    }

    /** A backend on the first GPU if the PyTorch engine sees one, else on the CPU. */
    public static DjlBackend best() {
        return on(Engine.getEngine(ENGINE).getGpuCount() > 0 ? Device.gpu(0) : Device.cpu());
    }


    /**
     * The threads each PyTorch CPU operation may use (torch's intra-op parallelism), for the whole
     * process: by default the number of cores, which is right for one caller; callers that run
     * several operations at once on separate threads divide the cores instead of multiplying
     * threads.
     */
    public static int cpuOperationThreads() {
        return ai.djl.pytorch.jni.JniUtils.getNumThreads();
    }

    /** Sets {@link #cpuOperationThreads()}, >= 1, for the whole process. */
    public static void cpuOperationThreads(int threads) {
        ai.djl.pytorch.jni.JniUtils.setNumThreads(dev.loftq.core.Checks.inRange("threads", threads,
                1, 4096));
    }
    @Override
    public String name() {
        return NAME;
    }

    /** DJL's name of the device: {@code "cpu()"} or {@code "gpu(0)"}. */
    @Override
    public String device() {
        return device.toString();
    }

    /** Where the coarse kernels run. */
    public KernelPlacement placement() {
        return placement;
    }

    /** The DJL device of every tensor of this backend. */
    public Device djlDevice() {
        return device;
    }

    /** A root scope: a sub-manager of this backend's base manager. */
    @Override
    public TensorScope newScope() {
        if (closed.get()) {
            throw new IllegalStateException("newScope: backend " + this + " is closed");
        }
        return new DjlScope(this, base.newSubManager());
    }

    /** PyTorch autograd through DJL's {@code GradientCollector}; see {@link DjlAutograd}. */
    @Override
    public Optional<Autograd> autograd() {
        return Optional.of(autograd);
    }

    /**
     * Number of live NDArrays in all scopes of this backend (diagnostics and leak tests; walks
     * every scope, so not for hot paths).
     */
    public int liveArrayCount() {
        return closed.get() ? 0 : base.getManagedArrays().size();
    }

    /** Closes every scope of this backend and frees their arrays. Idempotent. */
    @Override
    public void close() {
        if (!closed.getAndSet(true)) {
            base.close();
            staging.clear();
        }
    }

    /** False after {@link #close()}. */
    public boolean isOpen() {
        return !closed.get();
    }

    @Override
    public String toString() {
        return NAME + "(" + device + ", coarse kernels on the " + placement + ")";
    }

    // ---- zero-copy interop ----------------------------------------------------------------------

    /**
     * A tensor over {@code array}'s storage, owned by {@code scope}: no data is copied. The tensor
     * holds its own handle, so closing {@code scope} frees only that handle, and {@code array}
     * stays owned by its manager. The tensor sees the array's memory: do not modify {@code array}
     * in place while the tensor is in use (SPI tensors are immutable). Arrays that DJL made on the
     * CPU directly from a Java buffer (for example {@code NDManager.create(float[])}) borrow that
     * buffer's memory, so keep {@code array} open as long as the tensor is used.
     *
     * @param scope a scope of a {@code DjlBackend}; must be open
     * @param array a FLOAT32, UINT8 or BOOLEAN PyTorch array on the backend's device; not modified
     * @throws IllegalArgumentException for another backend's scope, another engine's array, another
     *     device or an unsupported data type
     * @throws IllegalStateException if the scope is closed or the array released
     */
    public static Tensor wrap(TensorScope scope, NDArray array) {
        return DjlScope.of("wrap", scope).wrap(array);
    }

    /**
     * The NDArray behind a tensor of this backend (no copy). It stays owned by the tensor's scope:
     * do not close it, attach it elsewhere or modify it in place.
     *
     * @throws IllegalArgumentException for a tensor of another backend
     * @throws IllegalStateException if the tensor's scope has closed
     */
    public static NDArray ndArray(Tensor tensor) {
        return DjlTensor.of("ndArray", "tensor", tensor).nd();
    }

    /**
     * The NDManager behind a scope of this backend, for DJL code that should allocate in the scope:
     * arrays created with it (and results of operations on them) are freed when the scope closes.
     *
     * @throws IllegalArgumentException for another backend's scope
     * @throws IllegalStateException if the scope is closed
     */
    public static NDManager manager(TensorScope scope) {
        return DjlScope.of("manager", scope).manager();
    }

    // ---- package-private ------------------------------------------------------------------------

    StagingBuffers staging() {
        return staging;
    }

    DjlAutograd autogradImpl() {
        return autograd;
    }

    /** Bytes per host-device transfer chunk. */
    int transferChunkBytes() {
        return transferChunkBytes;
    }

    boolean hostKernels() {
        return placement == KernelPlacement.HOST;
    }

    /**
     * True on the CPU: arrays live in host memory, so {@code from_blob} aliases a host buffer and an
     * array's storage can be read and written through a direct view.
     */
    boolean aliasesHostMemory() {
        return Device.Type.CPU.equals(device.getDeviceType());
    }
}
