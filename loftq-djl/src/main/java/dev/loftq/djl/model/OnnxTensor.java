package dev.loftq.djl.model;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * One ONNX {@code TensorProto} as read by {@link OnnxReader}: its name, element type, dims and
 * data. Only what loading weights needs; immutable apart from the arrays it hands out (which are
 * the caller's copies).
 *
 * <p>Data is kept in the form the file holds it: either {@code raw_data} (little-endian bytes,
 * how exporters store weights) or one of the typed repeated fields ({@code float_data},
 * {@code int64_data}), normalised here to little-endian bytes too.
 */
public final class OnnxTensor {
    /** ONNX {@code TensorProto.DataType.FLOAT}. */
    public static final int FLOAT = 1;
    /** ONNX {@code TensorProto.DataType.INT32}. */
    public static final int INT32 = 6;
    /** ONNX {@code TensorProto.DataType.INT64}. */
    public static final int INT64 = 7;

    private final String name;
    private final int dataType;
    private final long[] dims;
    private final byte[] data;

    OnnxTensor(String name, int dataType, long[] dims, byte[] data) {
        this.name = name;
        this.dataType = dataType;
        this.dims = dims;
        this.data = data;
    }

    /** The initializer's name as the graph refers to it (may be anonymous, e.g. "onnx::MatMul_1"). */
    public String name() {
        return name;
    }

    /** ONNX element type code: {@link #FLOAT}, {@link #INT64}, ... */
    public int dataType() {
        return dataType;
    }

    /** The dims (a copy); empty for a scalar. */
    public long[] dims() {
        return dims.clone();
    }

    /** Number of dimensions. */
    public int rank() {
        return dims.length;
    }

    /** Dim {@code i}. */
    public long dim(int i) {
        return dims[i];
    }

    /** Product of the dims (1 for a scalar). */
    public long elementCount() {
        long n = 1;
        for (long d : dims) {
            n *= d;
        }
        return n;
    }

    /**
     * The values as float32, row-major over {@link #dims()}; a fresh array.
     *
     * @throws IllegalStateException if the tensor is not FLOAT
     */
    public float[] floats() {
        if (dataType != FLOAT) {
            throw new IllegalStateException(
                    "tensor " + name + " has ONNX data type " + dataType + ", not FLOAT (1)");
        }
        float[] out = new float[data.length / Float.BYTES];
        ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }

    /**
     * The values as int64, row-major; a fresh array.
     *
     * @throws IllegalStateException if the tensor is not INT64
     */
    public long[] longs() {
        if (dataType != INT64) {
            throw new IllegalStateException(
                    "tensor " + name + " has ONNX data type " + dataType + ", not INT64 (7)");
        }
        long[] out = new long[data.length / Long.BYTES];
        ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(out);
        return out;
    }

    /** The same tensor under another name (shares the data). */
    OnnxTensor withName(String newName) {
        return new OnnxTensor(newName, dataType, dims, data);
    }

    /** Size of the stored data in bytes. */
    int byteSize() {
        return data.length;
    }

    @Override
    public String toString() {
        return "OnnxTensor[" + name + ", type " + dataType + ", dims " + Arrays.toString(dims) + "]";
    }
}
