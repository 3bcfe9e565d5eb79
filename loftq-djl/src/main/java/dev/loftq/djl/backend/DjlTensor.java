package dev.loftq.djl.backend;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.Tensor;
import java.lang.ref.SoftReference;
import java.util.Arrays;

/**
 * A tensor of {@link DjlBackend}: one NDArray handle, owned by the scope whose manager holds it.
 * The handle is never modified in place; it is released when its scope closes.
 */
final class DjlTensor implements Tensor {
    private final DjlBackend backend;
    private final NDArray nd;
    private final DType dtype;
    private final int[] shape;
    private DjlScope owner;
    /**
     * The values on the host, once a host kernel needed or made them (see DjlScope#hostFloats);
     * read-only. Tensors are never modified in place (gradients are handed out as copies), so the
     * copy stays valid while the tensor lives. Reshapes share it: same elements, same order.
     */
    private HostCopy hostCopy = new HostCopy();

    /**
     * A tensor's elements in row-major order on the host: FLOAT32 or UINT8/BOOL. Softly held: a
     * cache must not double the memory of the tensors a program keeps (a model's weights after
     * LoftQ), so the JVM drops it under memory pressure and the next host kernel downloads again.
     */
    static final class HostCopy {
        private SoftReference<float[]> floats;
        private SoftReference<byte[]> bytes;
    }

    DjlTensor(DjlScope owner, NDArray nd) {
        this.owner = owner;
        this.backend = owner.backend();
        this.nd = nd;
        this.dtype = dtypeOf(nd.getDataType());
        if (dtype == null) {
            throw new IllegalStateException("internal: unsupported data type " + nd.getDataType());
        }
        this.shape = toInts(nd.getShape());
    }

    /**
     * Checks that {@code t} is a live tensor of a DJL backend and returns it.
     *
     * @param op the operation, for messages
     * @param name the argument name, for messages
     */
    static DjlTensor of(String op, String name, Tensor t) {
        if (t == null) {
            throw new IllegalArgumentException(op + ": " + name + " must not be null");
        }
        if (!(t instanceof DjlTensor d)) {
            throw new IllegalArgumentException(op + ": " + name + " is a tensor of backend '"
                    + t.backend().name() + "' (" + t.backend().device() + "); expected a "
                    + DjlBackend.NAME + " tensor");
        }
        if (!d.isAlive()) {
            throw new IllegalStateException(op + ": " + name + " is no longer alive (its scope was "
                    + "closed)");
        }
        return d;
    }

    NDArray nd() {
        return nd;
    }

    float[] hostCopy() {
        return hostCopy.floats == null ? null : hostCopy.floats.get();
    }

    void hostCopy(float[] values) {
        hostCopy.floats = new SoftReference<>(values);
    }

    byte[] hostBytes() {
        return hostCopy.bytes == null ? null : hostCopy.bytes.get();
    }

    void hostBytes(byte[] values) {
        hostCopy.bytes = new SoftReference<>(values);
    }

    /** Shares {@code src}'s host copy, present and future: this tensor is a reshape of it. */
    void shareHostCopy(DjlTensor src) {
        hostCopy = src.hostCopy;
    }

    DjlScope owner() {
        return owner;
    }

    void moveTo(DjlScope scope) {
        nd.attach(scope.manager());
        owner = scope;
    }

    @Override
    public int[] shape() {
        return shape.clone();
    }

    @Override
    public int rank() {
        return shape.length;
    }

    @Override
    public long numel() {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public Backend backend() {
        return backend;
    }

    DjlBackend djlBackend() {
        return backend;
    }

    @Override
    public boolean isAlive() {
        return !nd.isReleased();
    }

    @Override
    public String toString() {
        return "DjlTensor" + Arrays.toString(shape) + " " + dtype + (isAlive() ? "" : " (closed)");
    }

    // ---- type and shape mapping -----------------------------------------------------------------

    /** The SPI type of a DJL data type, or null if the SPI has none. */
    static DType dtypeOf(DataType t) {
        switch (t) {
            case FLOAT32:
                return DType.FLOAT32;
            case UINT8:
                return DType.UINT8;
            case BOOLEAN:
                return DType.BOOL;
            default:
                return null;
        }
    }

    /** The DJL data type of an SPI type. */
    static DataType dataType(DType t) {
        switch (t) {
            case FLOAT32:
                return DataType.FLOAT32;
            case UINT8:
                return DataType.UINT8;
            case BOOL:
                return DataType.BOOLEAN;
            default:
                throw new IllegalArgumentException("unknown dtype " + t);
        }
    }

    static Shape shape(int... dims) {
        long[] l = new long[dims.length];
        for (int i = 0; i < dims.length; i++) {
            l[i] = dims[i];
        }
        return new Shape(l);
    }

    static int[] toInts(Shape s) {
        long[] l = s.getShape();
        int[] out = new int[l.length];
        for (int i = 0; i < l.length; i++) {
            out[i] = Math.toIntExact(l[i]);
        }
        return out;
    }
}
