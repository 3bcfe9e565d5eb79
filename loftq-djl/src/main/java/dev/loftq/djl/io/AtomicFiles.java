package dev.loftq.djl.io;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * Writes a file so that it is either complete or absent: the content goes to a hidden temporary
 * file in the same directory, is forced to disk, and is then moved over the target atomically. On
 * any failure (including an exception thrown by the content writer, e.g. a full disk) the
 * temporary file is deleted and the target is left as it was.
 */
public final class AtomicFiles {
    /** Writes content to a stream. */
    @FunctionalInterface
    public interface Content {
        /** Writes everything to {@code out} (buffered by the caller; do not close it). */
        void writeTo(OutputStream out) throws IOException;
    }

    /** Opens a stream over a channel; replaceable in tests to simulate failing disks. */
    @FunctionalInterface
    public interface StreamFactory {
        /** A stream writing to {@code channel}. */
        OutputStream open(FileChannel channel) throws IOException;
    }

    /** The factory used by default: a plain channel stream. */
    public static final StreamFactory PLAIN = Channels::newOutputStream;

    private AtomicFiles() {}

    /**
     * Gives a finished temporary file (created 0600) the usual {@code rw-r--r--}, or a staging
     * directory {@code rwxr-xr-x}, so outputs are readable like any file written normally. No-op
     * on file systems without POSIX permissions.
     */
    public static void makeReadable(Path p) throws IOException {
        if (Files.getFileStore(p).supportsFileAttributeView("posix")) {
            Files.setPosixFilePermissions(p, java.nio.file.attribute.PosixFilePermissions.fromString(
                    Files.isDirectory(p) ? "rwxr-xr-x" : "rw-r--r--"));
        }
    }

    /** Writes {@code bytes} to {@code target} atomically. */
    public static void write(Path target, byte[] bytes) throws IOException {
        write(target, out -> out.write(bytes), PLAIN);
    }

    /** Writes {@code text} as UTF-8 to {@code target} atomically. */
    public static void writeString(Path target, String text) throws IOException {
        write(target, text.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * Writes what {@code content} produces to {@code target} atomically.
     *
     * @param streams opens the stream the content is written to (normally {@link #PLAIN})
     * @throws IOException naming {@code target} if its directory is missing or not writable, or the
     *     write fails; nothing is left behind
     */
    public static void write(Path target, Content content, StreamFactory streams)
            throws IOException {
        Path abs = target.toAbsolutePath();
        Path dir = abs.getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new java.nio.file.NoSuchFileException(abs.toString(), null,
                    "cannot write: the directory " + dir + " does not exist");
        }
        Path tmp;
        try {
            tmp = Files.createTempFile(dir, "." + abs.getFileName(), ".tmp");
        } catch (AccessDeniedException e) {
            throw new AccessDeniedException(abs.toString(), null,
                    "cannot write: the directory " + dir + " is not writable");
        }
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                // Not closed: closing the stream would close the channel before force().
                OutputStream out = new java.io.BufferedOutputStream(streams.open(ch), 1 << 20);
                content.writeTo(out);
                out.flush();
                ch.force(true);
            }
            makeReadable(tmp);
            Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE,
                    StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | RuntimeException | Error e) {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            if (e instanceof IOException io
                    && !String.valueOf(io.getMessage()).contains(abs.toString())) {
                throw new IOException("writing " + abs + " failed: " + io, io);
            }
            throw e;
        }
    }
}
