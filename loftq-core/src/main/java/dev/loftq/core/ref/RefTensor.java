package dev.loftq.core.ref;

import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.Tensor;
import java.util.Arrays;

/**
 * A reference-backend tensor: a shape, a dtype and a row-major array of exactly
 * {@code numel} elements ({@code float[]} for FLOAT32, {@code byte[]} for UINT8 and BOOL, BOOL
 * holding 0 or 1). The array is never modified after construction, so tensors may share one
 * (reshape does). Freeing drops the array reference; shape and dtype stay readable for messages.
 */
final class RefTensor implements Tensor {
    private final int[] shape;
    private final DType dtype;
    private final int numel;
    private final Backend backend;
    private float[] floats;
    private byte[] bytes;
    private RefScope owner;

    private RefTensor(RefScope owner, int[] shape, DType dtype, float[] floats, byte[] bytes) {
        this.owner = owner;
        this.backend = owner.backend();
        this.shape = shape;
        this.dtype = dtype;
        this.floats = floats;
        this.bytes = bytes;
        this.numel = floats != null ? floats.length : bytes.length;
    }

    /** A FLOAT32 tensor over {@code data} (not copied; the caller hands it over). */
    static RefTensor ofFloats(RefScope owner, int[] shape, float[] data) {
        return new RefTensor(owner, shape, DType.FLOAT32, data, null);
    }

    /** A UINT8 or BOOL tensor over {@code data} (not copied; the caller hands it over). */
    static RefTensor ofBytes(RefScope owner, DType dtype, int[] shape, byte[] data) {
        return new RefTensor(owner, shape, dtype, null, data);
    }

    @Override
    public int[] shape() {
        return shape.clone();
    }

    /** The shape array itself; callers must not modify it. */
    int[] shapeView() {
        return shape;
    }

    @Override
    public int rank() {
        return shape.length;
    }

    @Override
    public long numel() {
        return numel;
    }

    /** {@link #numel()} as an int (it always fits). */
    int size() {
        return numel;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public Backend backend() {
        return backend;
    }

    @Override
    public boolean isAlive() {
        return owner != null;
    }

    /** The FLOAT32 storage; must not be modified. Callers check the dtype and liveness first. */
    float[] floats() {
        return floats;
    }

    /** The UINT8/BOOL storage; must not be modified. Callers check the dtype and liveness first. */
    byte[] bytes() {
        return bytes;
    }

    /** The scope that owns this tensor; null once freed. */
    RefScope owner() {
        return owner;
    }

    void moveTo(RefScope scope) {
        owner = scope;
    }

    /** Drops the storage and marks this tensor dead. */
    void free() {
        owner = null;
        floats = null;
        bytes = null;
    }

    /** "FLOAT32 [2, 3]", for messages. */
    String describe() {
        return dtype + " " + Arrays.toString(shape);
    }

    @Override
    public String toString() {
        return "RefTensor(" + describe() + (isAlive() ? ")" : ", freed)");
    }
}
