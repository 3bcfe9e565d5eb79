package dev.loftq.djl.io;

import dev.loftq.core.io.FloatConversions;
import dev.loftq.core.io.SafetensorsDType;
import dev.loftq.core.io.SafetensorsFormatException;
import dev.loftq.core.io.SafetensorsHeader;
import dev.loftq.core.io.SafetensorsHeader.TensorInfo;
import dev.loftq.core.io.TensorData;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A safetensors file opened lazily: only the header is read and validated at
 * {@link #open} ({@link SafetensorsHeader}: length bounded, JSON well-formed, dtypes known,
 * shape × dtype size = byte length, tensors tiling the data section without overlap), and each
 * tensor is read on request, one at a time, through positional reads of bounded chunks — so files
 * of any size (beyond 2 GiB) are read with memory proportional to one tensor, and nothing is
 * mapped (resident memory stays what the caller holds).
 *
 * <p>Thread-safe: reads are positional and may run concurrently. {@link #close()} releases the
 * file; reads after it throw {@link java.nio.channels.ClosedChannelException}.
 */
public final class LazySafetensorsFile implements Closeable {
    /** Bytes read per chunk when converting to float32. */
    static final int CHUNK_BYTES = 8 << 20;

    private final Path path;
    private final SafetensorsHeader header;
    private final FileChannel channel;

    private LazySafetensorsFile(Path path, SafetensorsHeader header, FileChannel channel) {
        this.path = path;
        this.header = header;
        this.channel = channel;
    }

    /**
     * Opens {@code path} and validates its header.
     *
     * @throws SafetensorsFormatException naming the file and tensor for a malformed header
     * @throws java.nio.file.NoSuchFileException if the file does not exist
     */
    public static LazySafetensorsFile open(Path path) throws IOException {
        SafetensorsHeader header = SafetensorsHeader.read(path);
        FileChannel ch = FileChannel.open(path, StandardOpenOption.READ);
        if (ch.size() != header.fileSize()) {
            ch.close();
            throw new SafetensorsFormatException(path + ": changed size while being opened");
        }
        return new LazySafetensorsFile(path, header, ch);
    }

    /** The file. */
    public Path path() {
        return path;
    }

    /** The validated header: metadata and tensors with dtypes, shapes and offsets. */
    public SafetensorsHeader header() {
        return header;
    }

    /**
     * The description of tensor {@code name}.
     *
     * @throws IllegalArgumentException naming the file if there is no such tensor
     */
    public TensorInfo info(String name) {
        TensorInfo t = header.tensors().get(name);
        if (t == null) {
            throw new IllegalArgumentException(path + " has no tensor '" + name + "'");
        }
        return t;
    }

    /**
     * The values of an F32, F16 or BF16 tensor as float32 (exact), row-major.
     *
     * @throws IllegalArgumentException if the tensor is absent, of another dtype, or has more than
     *     2^31 - 1 elements
     * @throws IOException if the file cannot be read or ends early
     */
    public float[] floats(String name) throws IOException {
        TensorInfo t = info(name);
        if (t.dtype() != SafetensorsDType.F32 && t.dtype() != SafetensorsDType.F16
                && t.dtype() != SafetensorsDType.BF16) {
            throw new IllegalArgumentException(path + ": tensor '" + name + "' is " + t.dtype()
                    + "; only F32, F16 and BF16 convert to float32");
        }
        int size = t.dtype().byteSize();
        float[] out = new float[Math.toIntExact(t.numel())];
        ByteBuffer chunk = ByteBuffer.allocate((int) Math.min(CHUNK_BYTES, Math.max(size,
                t.byteLength()))).order(ByteOrder.LITTLE_ENDIAN);
        long position = header.dataStart() + t.begin();
        int done = 0;
        while (done < out.length) {
            int n = Math.min(out.length - done, chunk.capacity() / size);
            chunk.clear().limit(n * size);
            readFully(chunk, position, name);
            chunk.flip();
            FloatConversions.decode(t.dtype(), chunk, out, done, n);
            done += n;
            position += (long) n * size;
        }
        return out;
    }

    /**
     * A heap copy of tensor {@code name} (any dtype).
     *
     * @throws IllegalArgumentException if absent
     */
    public TensorData read(String name) throws IOException {
        TensorInfo t = info(name);
        ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(t.byteLength()));
        readFully(b, header.dataStart() + t.begin(), name);
        return TensorData.wrap(t.dtype(), b.flip(), t.shape());
    }

    /**
     * Copies the raw bytes of tensor {@code name} to {@code out} at {@code position}, in bounded
     * chunks.
     */
    public void copyTo(String name, SafetensorsStreamWriter out) throws IOException {
        TensorInfo t = info(name);
        long position = header.dataStart() + t.begin();
        long remaining = t.byteLength();
        long at = 0;
        ByteBuffer chunk = ByteBuffer.allocate((int) Math.min(CHUNK_BYTES, Math.max(1, remaining)));
        while (remaining > 0) {
            int n = (int) Math.min(remaining, chunk.capacity());
            chunk.clear().limit(n);
            readFully(chunk, position, name);
            chunk.flip();
            out.writeBytes(name, at, chunk);
            position += n;
            at += n;
            remaining -= n;
        }
    }

    private void readFully(ByteBuffer b, long position, String name) throws IOException {
        long p = position;
        while (b.hasRemaining()) {
            int n = channel.read(b, p);
            if (n < 0) {
                throw new SafetensorsFormatException(path + ": tensor '" + name + "': the file "
                        + "ended at byte " + p + " (it was truncated after being opened)");
            }
            p += n;
        }
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }

    @Override
    public String toString() {
        return "LazySafetensorsFile[" + path + ", " + header.tensors().size() + " tensors]";
    }
}
