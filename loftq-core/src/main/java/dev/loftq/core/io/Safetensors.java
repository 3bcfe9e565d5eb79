package dev.loftq.core.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A strict reader and a deterministic writer of the
 * <a href="https://github.com/huggingface/safetensors">safetensors</a> format: an unsigned 64-bit
 * little-endian header length {@code N}, {@code N} bytes of UTF-8 JSON, then the tensor data.
 * The JSON maps each tensor name to {@code {"dtype", "shape", "data_offsets": [begin, end]}}
 * (offsets relative to the data section) and may hold a {@code "__metadata__"} map of strings.
 *
 * <p>Reading validates, as the reference implementation does, and throws
 * {@link SafetensorsFormatException} naming the file, the tensor, expected and actual: the file
 * holds the 8-byte length; {@code N <= 100,000,000} and the header lies inside the file; the header
 * is a JSON object without duplicate names; every dtype is one of {@link SafetensorsDType}; shapes
 * are non-negative integers; {@code end - begin == numel(shape) · dtype size}; and the tensors tile
 * the data section exactly (from 0, no overlap, no gap, up to the end of the file).
 *
 * <p>Writing lays tensors out like the reference implementation (by dtype size, largest first,
 * then by name), writes compact JSON with {@code __metadata__} first (its keys sorted) padded with
 * spaces to a multiple of 8 bytes, and moves a completed temporary file into place atomically, so
 * equal inputs give equal bytes and a failed write leaves no partial file.
 *
 * <p>Files are read whole into memory (up to 2 GiB); {@link #parse} works on any byte array.
 */
public final class Safetensors {
    /** Largest header accepted, as in the reference implementation. */
    public static final int MAX_HEADER_BYTES = 100_000_000;

    static final String METADATA = "__metadata__";

    private Safetensors() {}

    /**
     * Reads and validates a file.
     *
     * @throws SafetensorsFormatException if the file violates the format
     * @throws IOException if it cannot be read
     */
    public static SafetensorsFile read(Path path) throws IOException {
        long size = Files.size(path);
        if (size > Integer.MAX_VALUE - 8) {
            throw new SafetensorsFormatException(path + ": " + size
                    + " bytes; files over 2 GiB are not supported");
        }
        return parse(path.toString(), Files.readAllBytes(path));
    }

    /**
     * Validates and wraps the bytes of a file (not copied: do not modify them afterwards).
     *
     * @param source the name used in messages, e.g. a path or a resource name
     * @throws SafetensorsFormatException if the bytes violate the format
     */
    public static SafetensorsFile parse(String source, byte[] file) throws SafetensorsFormatException {
        ByteBuffer all = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
        if (file.length < 8) {
            throw new SafetensorsFormatException(source + ": " + file.length
                    + " bytes, too short for the 8-byte header length");
        }
        long headerLength = all.getLong(0);
        SafetensorsHeader.checkHeaderLength(source, headerLength, file.length);
        SafetensorsHeader header = SafetensorsHeader.parse(source,
                all.slice(8, (int) headerLength), file.length);
        int dataStart = (int) header.dataStart();
        ByteBuffer data = all.slice(dataStart, file.length - dataStart);
        Map<String, TensorData> tensors = new LinkedHashMap<>();
        for (SafetensorsHeader.TensorInfo e : header.tensors().values()) {
            tensors.put(e.name(), TensorData.view(e.dtype(), e.shape(),
                    data.slice((int) e.begin(), (int) (e.end() - e.begin()))));
        }
        return new SafetensorsFile(source, header.metadata(), tensors);
    }

    /**
     * Writes {@code tensors} and {@code metadata} to {@code path} atomically: the bytes of
     * {@link #toBytes} go to a temporary file in the same directory, which is then moved over
     * {@code path}. Nothing is left behind on failure.
     *
     * @param tensors not modified; names must not be {@code "__metadata__"}
     * @param metadata not modified; may be empty
     */
    public static void write(Path path, Map<String, TensorData> tensors, Map<String, String> metadata)
            throws IOException {
        byte[] bytes = toBytes(tensors, metadata);
        Path target = path.toAbsolutePath();
        Path tmp = Files.createTempFile(target.getParent(), "." + target.getFileName(), ".tmp");
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer b = ByteBuffer.wrap(bytes);
                while (b.hasRemaining()) {
                    ch.write(b);
                }
                ch.force(true);
            }
            if (Files.getFileStore(tmp).supportsFileAttributeView("posix")) {
                // createTempFile made it rw-------; give it the usual permissions of a written file
                Files.setPosixFilePermissions(tmp,
                        java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
            }
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE,
                    StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
    }

    /**
     * The bytes of a safetensors file holding {@code tensors} and {@code metadata}; deterministic
     * (see the class comment for the layout).
     *
     * @throws IllegalArgumentException for a reserved or null name, null metadata entries, or more
     *     than 2 GiB in all
     */
    public static byte[] toBytes(Map<String, TensorData> tensors, Map<String, String> metadata) {
        Map<String, SafetensorsHeader.TensorSpec> specs = new LinkedHashMap<>();
        for (Map.Entry<String, TensorData> e : tensors.entrySet()) {
            if (e.getValue() == null) {
                throw new IllegalArgumentException("tensors: names must be non-null and not '"
                        + METADATA + "', values non-null; got '" + e.getKey() + "'");
            }
            specs.put(e.getKey(), new SafetensorsHeader.TensorSpec(e.getValue().dtype(),
                    e.getValue().shape()));
        }
        SafetensorsHeader.Layout layout = SafetensorsHeader.layout(specs, metadata);
        long total = layout.fileSize();
        if (total > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("tensors: " + total
                    + " bytes in all; at most " + (Integer.MAX_VALUE - 8) + " are supported");
        }
        ByteBuffer out = ByteBuffer.allocate((int) total).order(ByteOrder.LITTLE_ENDIAN);
        out.put(layout.prefix());
        for (SafetensorsHeader.TensorInfo e : layout.tensors()) {
            out.put(tensors.get(e.name()).buffer());
        }
        return out.array();
    }
}
