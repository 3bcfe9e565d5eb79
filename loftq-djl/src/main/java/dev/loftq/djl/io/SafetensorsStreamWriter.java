package dev.loftq.djl.io;

import dev.loftq.core.io.FloatConversions;
import dev.loftq.core.io.SafetensorsHeader;
import dev.loftq.core.io.SafetensorsHeader.Layout;
import dev.loftq.core.io.SafetensorsHeader.TensorInfo;
import dev.loftq.core.io.SafetensorsHeader.TensorSpec;
import dev.loftq.core.io.TensorData;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Writes a safetensors file tensor by tensor, in any order and from several threads, with memory
 * bounded by what the caller passes in. The tensors' names, dtypes and shapes are fixed up front,
 * which fixes the layout ({@link SafetensorsHeader#layout}: the same bytes as
 * {@link dev.loftq.core.io.Safetensors#write} for the same tensors); the data goes to a hidden
 * temporary file beside the target by positional writes, and {@link #commit()} checks that every
 * byte was written, forces the file to disk and moves it over the target atomically. Closing
 * without a commit (or any failed write) deletes the temporary file: the target is never partial.
 *
 * <p>Thread-safe: different tensors (or disjoint ranges of one) may be written concurrently.
 */
public final class SafetensorsStreamWriter implements Closeable {
    /** Where the bytes go: positional writes and a final force. */
    public interface Sink extends Closeable {
        /** Writes all of {@code src} at {@code position}. */
        void write(ByteBuffer src, long position) throws IOException;

        /** Forces written bytes to the storage device. */
        void force() throws IOException;
    }

    /** Opens the sink of a temporary file; tests substitute failing ones (a full disk). */
    @FunctionalInterface
    public interface SinkFactory {
        /** A sink writing {@code file}, which exists and is empty. */
        Sink open(Path file) throws IOException;
    }

    /** Sinks over a {@link FileChannel}. */
    public static final SinkFactory FILES = file -> {
        FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE);
        return new Sink() {
            @Override
            public void write(ByteBuffer src, long position) throws IOException {
                long p = position;
                while (src.hasRemaining()) {
                    p += ch.write(src, p);
                }
            }

            @Override
            public void force() throws IOException {
                ch.force(true);
            }

            @Override
            public void close() throws IOException {
                ch.close();
            }
        };
    };

    private final Path target;
    private final Path temp;
    private final Sink sink;
    private final Layout layout;
    private final long dataStart;
    private final Map<String, TensorInfo> tensors = new LinkedHashMap<>();
    private final Map<String, Long> written = new HashMap<>();
    private boolean failed;
    private boolean done;

    private SafetensorsStreamWriter(Path target, Path temp, Sink sink, Layout layout) {
        this.target = target;
        this.temp = temp;
        this.sink = sink;
        this.layout = layout;
        this.dataStart = layout.prefix().length;
        for (TensorInfo t : layout.tensors()) {
            tensors.put(t.name(), t);
        }
    }

    /** {@link #create(Path, Map, Map, SinkFactory)} with {@link #FILES}. */
    public static SafetensorsStreamWriter create(Path target, Map<String, TensorSpec> tensors,
            Map<String, String> metadata) throws IOException {
        return create(target, tensors, metadata, FILES);
    }

    /**
     * Starts writing {@code target}: creates the temporary file and writes the header.
     *
     * @param tensors names → dtype and shape; not modified
     * @param metadata the {@code __metadata__}; not modified
     * @throws IOException naming the target if its directory is missing or not writable
     * @throws IllegalArgumentException for a reserved name or bad spec
     */
    public static SafetensorsStreamWriter create(Path target, Map<String, TensorSpec> tensors,
            Map<String, String> metadata, SinkFactory sinks) throws IOException {
        Layout layout = SafetensorsHeader.layout(tensors, metadata);
        Path abs = target.toAbsolutePath();
        Path dir = abs.getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new NoSuchFileException(abs.toString(), null,
                    "cannot write: the directory " + dir + " does not exist");
        }
        Path temp;
        try {
            temp = Files.createTempFile(dir, "." + abs.getFileName(), ".tmp");
        } catch (AccessDeniedException e) {
            throw new AccessDeniedException(abs.toString(), null,
                    "cannot write: the directory " + dir + " is not writable");
        }
        Sink sink = null;
        try {
            sink = sinks.open(temp);
            SafetensorsStreamWriter w = new SafetensorsStreamWriter(abs, temp, sink, layout);
            w.writeRaw(ByteBuffer.wrap(layout.prefix()), 0, "the header");
            return w;
        } catch (IOException | RuntimeException e) {
            if (sink != null) {
                try {
                    sink.close();
                } catch (IOException s) {
                    e.addSuppressed(s);
                }
            }
            Files.deleteIfExists(temp);
            throw e;
        }
    }

    /**
     * Writes {@code tensors} to {@code target} in one go: the same bytes as
     * {@link dev.loftq.core.io.Safetensors#write}, without building the whole file in memory and
     * with the usual {@code rw-r--r--} permissions.
     */
    public static void writeAll(Path target, Map<String, TensorData> tensors,
            Map<String, String> metadata) throws IOException {
        Map<String, TensorSpec> specs = new LinkedHashMap<>();
        tensors.forEach((k, v) -> specs.put(k, new TensorSpec(v.dtype(), v.shape())));
        try (SafetensorsStreamWriter w = create(target, specs, metadata)) {
            for (Map.Entry<String, TensorData> e : tensors.entrySet()) {
                w.write(e.getKey(), e.getValue());
            }
            w.commit();
        }
    }

    /** The target path. */
    public Path target() {
        return target;
    }

    /** The layout being written. */
    public Layout layout() {
        return layout;
    }

    /**
     * Writes tensor {@code name} whole.
     *
     * @throws IllegalArgumentException if the name is unknown or dtype/shape differ from the spec
     */
    public void write(String name, TensorData data) throws IOException {
        TensorInfo t = spec(name);
        if (t.dtype() != data.dtype() || !java.util.Arrays.equals(t.shape(), data.shape())) {
            throw new IllegalArgumentException(target + ": tensor '" + name + "' was declared "
                    + t.dtype() + " " + java.util.Arrays.toString(t.shape()) + ", got "
                    + data.dtype() + " " + java.util.Arrays.toString(data.shape()));
        }
        writeBytes(name, 0, ByteBuffer.wrap(data.rawBytes()));
    }

    /**
     * Writes float32 values of tensor {@code name} (declared F32, F16 or BF16), converting them to
     * its dtype (round to nearest even), in bounded chunks.
     *
     * @param values {@code numel} values, row-major; not modified
     */
    public void writeFloats(String name, float[] values) throws IOException {
        TensorInfo t = spec(name);
        if (values.length != t.numel()) {
            throw new IllegalArgumentException(target + ": tensor '" + name + "' has "
                    + t.numel() + " elements, got " + values.length);
        }
        int size = t.dtype().byteSize();
        int per = Math.max(1, LazySafetensorsFile.CHUNK_BYTES / size);
        ByteBuffer chunk = ByteBuffer.allocate((int) Math.min((long) per * size,
                Math.max(size, t.byteLength()))).order(ByteOrder.LITTLE_ENDIAN);
        long at = 0;
        for (int i = 0; i < values.length; i += per) {
            int n = Math.min(per, values.length - i);
            chunk.clear();
            FloatConversions.encode(t.dtype(), values, i, n, chunk);
            chunk.flip();
            writeBytes(name, at, chunk);
            at += (long) n * size;
        }
    }

    /**
     * Writes bytes of tensor {@code name} starting {@code offset} bytes into it.
     *
     * @throws IllegalArgumentException if the range leaves the tensor
     */
    public void writeBytes(String name, long offset, ByteBuffer bytes) throws IOException {
        TensorInfo t = spec(name);
        int n = bytes.remaining();
        if (offset < 0 || offset + n > t.byteLength()) {
            throw new IllegalArgumentException(target + ": tensor '" + name + "' has "
                    + t.byteLength() + " bytes; cannot write " + n + " at offset " + offset);
        }
        writeRaw(bytes, dataStart + t.begin() + offset, "tensor '" + name + "'");
        synchronized (this) {
            written.merge(name, (long) n, Long::sum);
        }
    }

    private TensorInfo spec(String name) {
        TensorInfo t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException(target + ": tensor '" + name
                    + "' was not declared when the file was created");
        }
        synchronized (this) {
            if (done) {
                throw new IllegalStateException(target + ": already committed or closed");
            }
        }
        return t;
    }

    private void writeRaw(ByteBuffer bytes, long position, String what) throws IOException {
        try {
            sink.write(bytes, position);
        } catch (IOException | RuntimeException e) {
            synchronized (this) {
                failed = true;
            }
            throw new IOException("writing " + what + " of " + target + " failed: " + e, e);
        }
    }

    /**
     * Completes the file: checks every tensor was written in full, forces it to disk and moves it
     * over the target atomically.
     *
     * @throws IllegalStateException naming the first incomplete tensor
     * @throws IOException if a write failed earlier or the move fails (nothing is left behind)
     */
    public synchronized void commit() throws IOException {
        if (done) {
            throw new IllegalStateException(target + ": already committed or closed");
        }
        try {
            if (failed) {
                throw new IOException(target + ": a write failed; the file is incomplete");
            }
            for (TensorInfo t : tensors.values()) {
                long got = written.getOrDefault(t.name(), 0L);
                if (got != t.byteLength()) {
                    throw new IllegalStateException(target + ": tensor '" + t.name() + "' has "
                            + got + " of its " + t.byteLength() + " bytes written");
                }
            }
            sink.force();
            sink.close();
            AtomicFiles.makeReadable(temp);
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE,
                    StandardCopyOption.REPLACE_EXISTING);
            done = true;
        } catch (IOException | RuntimeException e) {
            abort(e);
            throw e;
        }
    }

    /** Deletes the temporary file unless committed. Idempotent. */
    @Override
    public synchronized void close() throws IOException {
        if (!done) {
            IOException failure = new IOException("closing " + target);
            abort(failure);
            if (failure.getSuppressed().length > 0) {
                throw failure;
            }
        }
    }

    private void abort(Exception e) {
        done = true;
        try {
            sink.close();
        } catch (IOException s) {
            e.addSuppressed(s);
        }
        try {
            Files.deleteIfExists(temp);
        } catch (IOException s) {
            e.addSuppressed(s);
        }
    }
}
