package dev.loftq.core.io;

import com.google.gson.Strictness;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import com.google.gson.stream.JsonWriter;
import java.io.IOException;
import java.io.StringReader;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

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

    private static final String METADATA = "__metadata__";

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
        long available = file.length - 8L;
        if (headerLength < 0 || headerLength > MAX_HEADER_BYTES || headerLength > available) {
            throw new SafetensorsFormatException(source + ": header length "
                    + Long.toUnsignedString(headerLength) + " must be at most "
                    + Math.min(MAX_HEADER_BYTES, available) + " (the file has " + file.length
                    + " bytes; the limit is " + MAX_HEADER_BYTES + ")");
        }
        String json = decodeUtf8(source, all.slice(8, (int) headerLength));
        Header header = new HeaderParser(source, json).parse();
        int dataStart = 8 + (int) headerLength;
        ByteBuffer data = all.slice(dataStart, file.length - dataStart);
        checkLayout(source, header.entries, data.remaining());
        Map<String, TensorData> tensors = new LinkedHashMap<>();
        for (Entry e : header.entries) {
            tensors.put(e.name, TensorData.view(e.dtype, e.shape,
                    data.slice((int) e.begin, (int) (e.end - e.begin))));
        }
        return new SafetensorsFile(source, header.metadata, tensors);
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
        List<Map.Entry<String, TensorData>> order = new ArrayList<>(tensors.entrySet());
        for (Map.Entry<String, TensorData> e : order) {
            if (e.getKey() == null || e.getKey().equals(METADATA) || e.getValue() == null) {
                throw new IllegalArgumentException("tensors: names must be non-null and not '"
                        + METADATA + "', values non-null; got '" + e.getKey() + "'");
            }
        }
        order.sort(Comparator.<Map.Entry<String, TensorData>>comparingInt(
                e -> -e.getValue().dtype().byteSize()).thenComparing(Map.Entry::getKey));
        StringWriter sw = new StringWriter();
        long offset = 0;
        try (JsonWriter w = new JsonWriter(sw)) {
            w.beginObject();
            if (!metadata.isEmpty()) {
                w.name(METADATA).beginObject();
                for (Map.Entry<String, String> m : new TreeMap<>(metadata).entrySet()) {
                    if (m.getValue() == null) {
                        throw new IllegalArgumentException("metadata: value of '" + m.getKey()
                                + "' must not be null");
                    }
                    w.name(m.getKey()).value(m.getValue());
                }
                w.endObject();
            }
            for (Map.Entry<String, TensorData> e : order) {
                TensorData t = e.getValue();
                w.name(e.getKey()).beginObject().name("dtype").value(t.dtype().name());
                w.name("shape").beginArray();
                for (int d : t.shape()) {
                    w.value(d);
                }
                w.endArray().name("data_offsets").beginArray().value(offset)
                        .value(offset + t.byteSize()).endArray().endObject();
                offset += t.byteSize();
            }
            w.endObject();
        } catch (IOException e) {
            throw new UncheckedIOException("writing to a StringWriter", e);
        }
        byte[] header = sw.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (header.length + 7) & ~7;
        long total = 8L + padded + offset;
        if (total > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("tensors: " + total
                    + " bytes in all; at most " + (Integer.MAX_VALUE - 8) + " are supported");
        }
        ByteBuffer out = ByteBuffer.allocate((int) total).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(padded).put(header);
        for (int i = header.length; i < padded; i++) {
            out.put((byte) ' ');
        }
        for (Map.Entry<String, TensorData> e : order) {
            out.put(e.getValue().buffer());
        }
        return out.array();
    }

    private static String decodeUtf8(String source, ByteBuffer bytes)
            throws SafetensorsFormatException {
        try {
            CharBuffer chars = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(bytes);
            return chars.toString();
        } catch (CharacterCodingException e) {
            throw new SafetensorsFormatException(source + ": header is not valid UTF-8", e);
        }
    }

    /** Checks sizes and that the tensors tile [0, dataLength) exactly. */
    private static void checkLayout(String source, List<Entry> entries, long dataLength)
            throws SafetensorsFormatException {
        for (Entry e : entries) {
            long need;
            try {
                need = TensorData.byteLength(e.dtype, e.shape);
            } catch (IllegalArgumentException | ArithmeticException ex) {
                throw new SafetensorsFormatException(source + ": tensor '" + e.name + "': "
                        + ex.getMessage(), ex);
            }
            if (e.end - e.begin != need) {
                throw new SafetensorsFormatException(source + ": tensor '" + e.name + "': shape "
                        + Arrays.toString(e.shape) + " of " + e.dtype + " needs " + need
                        + " bytes, data_offsets " + e.offsets() + " span " + (e.end - e.begin));
            }
            if (e.end > dataLength) {
                throw new SafetensorsFormatException(source + ": tensor '" + e.name
                        + "': data_offsets " + e.offsets() + " end beyond the data section ("
                        + dataLength + " bytes)");
            }
        }
        List<Entry> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparingLong((Entry e) -> e.begin).thenComparingLong(e -> e.end));
        long expected = 0;
        Entry previous = null;
        for (Entry e : sorted) {
            if (e.begin != expected) {
                String where = previous == null ? "the start of the data section"
                        : "the end of tensor '" + previous.name + "' " + previous.offsets();
                throw new SafetensorsFormatException(source + ": tensor '" + e.name
                        + "': data_offsets " + e.offsets() + " must begin at " + expected + " ("
                        + where + "); tensors must not overlap or leave gaps");
            }
            expected = e.end;
            previous = e;
        }
        if (expected != dataLength) {
            throw new SafetensorsFormatException(source + ": the data section has " + dataLength
                    + " bytes but the tensors cover " + expected);
        }
    }

    private record Entry(String name, SafetensorsDType dtype, int[] shape, long begin, long end) {
        String offsets() {
            return "[" + begin + ", " + end + "]";
        }
    }

    private record Header(Map<String, String> metadata, List<Entry> entries) {}

    /** A strict streaming parser of the JSON header. */
    private static final class HeaderParser {
        private final String source;
        private final JsonReader reader;

        HeaderParser(String source, String json) {
            this.source = source;
            this.reader = new JsonReader(new StringReader(json));
            this.reader.setStrictness(Strictness.STRICT);
        }

        Header parse() throws SafetensorsFormatException {
            try {
                Map<String, String> metadata = new LinkedHashMap<>();
                Map<String, Entry> entries = new LinkedHashMap<>();
                expect(JsonToken.BEGIN_OBJECT, "the header");
                reader.beginObject();
                boolean sawMetadata = false;
                while (reader.hasNext()) {
                    String name = reader.nextName();
                    if (name.equals(METADATA)) {
                        if (sawMetadata) {
                            throw fail("header has '" + METADATA + "' twice");
                        }
                        sawMetadata = true;
                        metadata = metadata();
                    } else if (entries.put(name, entry(name)) != null) {
                        throw fail("header has tensor '" + name + "' twice");
                    }
                }
                reader.endObject();
                if (reader.peek() != JsonToken.END_DOCUMENT) { // a strict reader throws first
                    throw fail("header has content after its JSON object");
                }
                return new Header(metadata, new ArrayList<>(entries.values()));
            } catch (SafetensorsFormatException e) {
                throw e;
            } catch (IOException | IllegalStateException e) {
                String detail = String.valueOf(e.getMessage()).lines().findFirst().orElse("")
                        .replace("Use JsonReader.setStrictness(Strictness.LENIENT) to accept "
                                + "malformed JSON", "invalid JSON");
                throw new SafetensorsFormatException(source + ": malformed JSON header: " + detail,
                        e);
            }
        }

        private Map<String, String> metadata() throws IOException {
            expect(JsonToken.BEGIN_OBJECT, "'" + METADATA + "'");
            Map<String, String> out = new LinkedHashMap<>();
            reader.beginObject();
            while (reader.hasNext()) {
                String key = reader.nextName();
                expect(JsonToken.STRING, "'" + METADATA + "' value of '" + key + "'");
                if (out.put(key, reader.nextString()) != null) {
                    throw fail("'" + METADATA + "' has key '" + key + "' twice");
                }
            }
            reader.endObject();
            return out;
        }

        private Entry entry(String name) throws IOException {
            String what = "tensor '" + name + "'";
            expect(JsonToken.BEGIN_OBJECT, what);
            reader.beginObject();
            SafetensorsDType dtype = null;
            long[] shape = null;
            long[] offsets = null;
            while (reader.hasNext()) {
                String key = reader.nextName();
                switch (key) {
                    case "dtype" -> {
                        expect(JsonToken.STRING, what + " dtype");
                        String d = reader.nextString();
                        try {
                            dtype = SafetensorsDType.fromName(d);
                        } catch (IllegalArgumentException e) {
                            throw fail(what + ": " + e.getMessage());
                        }
                    }
                    case "shape" -> shape = integers(what + " shape", Integer.MAX_VALUE);
                    case "data_offsets" -> offsets = integers(what + " data_offsets", Long.MAX_VALUE);
                    default -> throw fail(what + " has unknown key '" + key
                            + "' (allowed: dtype, shape, data_offsets)");
                }
            }
            reader.endObject();
            if (dtype == null || shape == null || offsets == null) {
                throw fail(what + " must have dtype, shape and data_offsets");
            }
            if (offsets.length != 2 || offsets[0] > offsets[1]) {
                throw fail(what + ": data_offsets must be [begin, end] with begin <= end, got "
                        + Arrays.toString(offsets));
            }
            int[] dims = new int[shape.length];
            for (int i = 0; i < dims.length; i++) {
                dims[i] = (int) shape[i];
            }
            return new Entry(name, dtype, dims, offsets[0], offsets[1]);
        }

        /** An array of integers in [0, max]. */
        private long[] integers(String what, long max) throws IOException {
            expect(JsonToken.BEGIN_ARRAY, what);
            reader.beginArray();
            List<Long> values = new ArrayList<>();
            while (reader.hasNext()) {
                expect(JsonToken.NUMBER, what + " entries");
                String literal = reader.nextString();
                long v;
                try {
                    v = Long.parseLong(literal);
                } catch (NumberFormatException e) {
                    throw fail(what + " must hold integers in [0, " + max + "], got " + literal);
                }
                if (v < 0 || v > max) {
                    throw fail(what + " must hold integers in [0, " + max + "], got " + literal);
                }
                values.add(v);
            }
            reader.endArray();
            long[] out = new long[values.size()];
            for (int i = 0; i < out.length; i++) {
                out[i] = values.get(i);
            }
            return out;
        }

        private void expect(JsonToken token, String what) throws IOException {
            JsonToken actual = reader.peek();
            if (actual != token) {
                throw fail(what + " must be " + describe(token) + ", got " + describe(actual));
            }
        }

        private static String describe(JsonToken t) {
            return switch (t) {
                case BEGIN_OBJECT -> "a JSON object";
                case BEGIN_ARRAY -> "a JSON array";
                case STRING -> "a string";
                case NUMBER -> "a number";
                default -> t.name().toLowerCase(java.util.Locale.ROOT).replace('_', ' ');
            };
        }

        private SafetensorsFormatException fail(String message) {
            return new SafetensorsFormatException(source + ": " + message);
        }
    }
}
