package dev.loftq.core.io;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * One tensor of a safetensors file: dtype, shape and the little-endian bytes, row-major. Immutable:
 * the bytes are a read-only view (of a file read by {@link Safetensors}, or a private copy for the
 * {@code of…} factories), and every accessor returns a fresh array. Thread-safe.
 */
public final class TensorData {
    private final SafetensorsDType dtype;
    private final int[] shape;
    private final ByteBuffer bytes;

    private TensorData(SafetensorsDType dtype, int[] shape, ByteBuffer bytes) {
        this.dtype = dtype;
        this.shape = shape;
        this.bytes = bytes.asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    /**
     * Wraps {@code bytes} (position to limit, not copied, must not change afterwards) after checking
     * that they hold exactly {@code numel(shape) · dtype.byteSize()} bytes.
     */
    static TensorData view(SafetensorsDType dtype, int[] shape, ByteBuffer bytes) {
        long need = byteLength(dtype, shape);
        if (need != bytes.remaining()) {
            throw new IllegalArgumentException("tensor data: shape " + Arrays.toString(shape)
                    + " of " + dtype + " needs " + need + " bytes, got " + bytes.remaining());
        }
        return new TensorData(dtype, shape.clone(), bytes.slice());
    }

    /**
     * Wraps {@code littleEndianBytes} (position to limit) without copying, e.g. a memory-mapped
     * region of a file; the caller must not change the bytes afterwards.
     *
     * @throws IllegalArgumentException unless they hold exactly {@code numel(shape) · dtype size}
     *     bytes
     */
    public static TensorData wrap(SafetensorsDType dtype, ByteBuffer littleEndianBytes,
            int... shape) {
        return view(dtype, shape, littleEndianBytes);
    }

    /** Bytes of a tensor of this dtype and shape; rejects negative dimensions and sizes over 2 GiB. */
    static long byteLength(SafetensorsDType dtype, int[] shape) {
        long n = dtype.byteSize();
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("shape must have dimensions >= 0, got "
                        + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, (long) d);
            if (n > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " of " + dtype
                        + " exceeds " + (Integer.MAX_VALUE - 8) + " bytes");
            }
        }
        return n;
    }

    /** A tensor of {@code dtype} holding a copy of {@code littleEndianBytes}. */
    public static TensorData ofRaw(SafetensorsDType dtype, byte[] littleEndianBytes, int... shape) {
        return view(dtype, shape, ByteBuffer.wrap(littleEndianBytes.clone()));
    }

    /** An F32 tensor holding a copy of {@code data} (row-major). */
    public static TensorData ofFloats(float[] data, int... shape) {
        ByteBuffer b = allocate(SafetensorsDType.F32, shape, data.length);
        b.asFloatBuffer().put(data);
        return view(SafetensorsDType.F32, shape, b);
    }

    /** An F64 tensor holding a copy of {@code data}. */
    public static TensorData ofDoubles(double[] data, int... shape) {
        ByteBuffer b = allocate(SafetensorsDType.F64, shape, data.length);
        b.asDoubleBuffer().put(data);
        return view(SafetensorsDType.F64, shape, b);
    }

    /** A U8 tensor holding a copy of {@code data}; bytes are unsigned. */
    public static TensorData ofBytes(byte[] data, int... shape) {
        ByteBuffer b = allocate(SafetensorsDType.U8, shape, data.length);
        b.put(data).flip();
        return view(SafetensorsDType.U8, shape, b);
    }

    /** An I32 tensor holding a copy of {@code data}. */
    public static TensorData ofInts(int[] data, int... shape) {
        ByteBuffer b = allocate(SafetensorsDType.I32, shape, data.length);
        b.asIntBuffer().put(data);
        return view(SafetensorsDType.I32, shape, b);
    }

    /** An I64 tensor holding a copy of {@code data}. */
    public static TensorData ofLongs(long[] data, int... shape) {
        ByteBuffer b = allocate(SafetensorsDType.I64, shape, data.length);
        b.asLongBuffer().put(data);
        return view(SafetensorsDType.I64, shape, b);
    }

    private static ByteBuffer allocate(SafetensorsDType dtype, int[] shape, int length) {
        long need = byteLength(dtype, shape);
        if (need != (long) length * dtype.byteSize()) {
            throw new IllegalArgumentException("data: shape " + Arrays.toString(shape) + " has "
                    + need / dtype.byteSize() + " elements, got " + length);
        }
        return ByteBuffer.allocate((int) need).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** The element type. */
    public SafetensorsDType dtype() {
        return dtype;
    }

    /** The shape (a copy). */
    public int[] shape() {
        return shape.clone();
    }

    /** Number of elements (1 for rank 0). */
    public int numel() {
        return bytes.remaining() / dtype.byteSize();
    }

    /** Size of the data in bytes. */
    public int byteSize() {
        return bytes.remaining();
    }

    /** A copy of the raw little-endian bytes. */
    public byte[] rawBytes() {
        byte[] out = new byte[bytes.remaining()];
        bytes.duplicate().get(out);
        return out;
    }

    /**
     * The values as float32: F32 as stored, F16 and BF16 converted exactly.
     *
     * @throws IllegalStateException for other dtypes (F64 would round: use {@link #doubles()})
     */
    public float[] floats() {
        float[] out = new float[numel()];
        if (!(dtype == SafetensorsDType.F32 || dtype == SafetensorsDType.F16
                || dtype == SafetensorsDType.BF16)) {
            throw wrongType("floats", "F32, F16 or BF16");
        }
        FloatConversions.decode(dtype, bytes.duplicate(), out, 0, out.length);
        return out;
    }

    /** The values as float64; any floating-point dtype (exact). */
    public double[] doubles() {
        if (dtype == SafetensorsDType.F64) {
            double[] out = new double[numel()];
            bytes.duplicate().order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer().get(out);
            return out;
        }
        if (!dtype.isFloatingPoint()) {
            throw wrongType("doubles", "F64, F32, F16 or BF16");
        }
        float[] f = floats();
        double[] out = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            out[i] = f[i];
        }
        return out;
    }

    /** The bytes of a U8 tensor (read them as unsigned). */
    public byte[] bytes() {
        if (dtype != SafetensorsDType.U8) {
            throw wrongType("bytes", "U8");
        }
        return rawBytes();
    }

    /** The values of an I32 tensor. */
    public int[] ints() {
        if (dtype != SafetensorsDType.I32) {
            throw wrongType("ints", "I32");
        }
        int[] out = new int[numel()];
        bytes.duplicate().order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(out);
        return out;
    }

    /** The values of an I64 or I32 tensor. */
    public long[] longs() {
        long[] out = new long[numel()];
        ByteBuffer b = bytes.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case I64 -> b.asLongBuffer().get(out);
            case I32 -> {
                for (int i = 0; i < out.length; i++) {
                    out[i] = b.getInt(4 * i);
                }
            }
            default -> throw wrongType("longs", "I64 or I32");
        }
        return out;
    }

    /** The read-only little-endian bytes, positioned at 0 (a fresh view; for writers). */
    ByteBuffer buffer() {
        return bytes.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    }

    private IllegalStateException wrongType(String accessor, String allowed) {
        return new IllegalStateException(accessor + "() needs dtype " + allowed + ", tensor has "
                + dtype);
    }

    @Override
    public String toString() {
        return "TensorData[" + dtype + " " + Arrays.toString(shape) + "]";
    }
}
