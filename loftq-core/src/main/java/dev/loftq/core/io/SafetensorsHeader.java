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
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The validated header of a safetensors file, read without its data: metadata, and for every
 * tensor its dtype, shape and byte range. {@link #read(Path)} reads only the 8-byte length and the
 * JSON, so files of any size (beyond 2 GiB) are described; each tensor is at most 2 GiB. The
 * validation is the one {@link Safetensors#read} applies (see there), against the file's size.
 *
 * <p>{@link #layout} computes the deterministic header a writer puts before given tensors.
 * Immutable and thread-safe.
 */
public final class SafetensorsHeader {
    private static final String METADATA = Safetensors.METADATA;

    /**
     * One tensor of a header.
     *
     * @param name the key
     * @param dtype element type
     * @param shape dimensions (do not modify)
     * @param begin first byte, relative to the data section
     * @param end one past the last byte, relative to the data section
     */
    public record TensorInfo(String name, SafetensorsDType dtype, int[] shape, long begin,
            long end) {
        /** Bytes of the tensor. */
        public long byteLength() {
            return end - begin;
        }

        /** Number of elements. */
        public long numel() {
            return byteLength() / dtype.byteSize();
        }

        /** The shape (a copy). */
        @Override
        public int[] shape() {
            return shape.clone();
        }

        String offsets() {
            return "[" + begin + ", " + end + "]";
        }
    }

    /** The dtype and shape of a tensor to be written. */
    public record TensorSpec(SafetensorsDType dtype, int[] shape) {
        /** Validates: non-null, dimensions >= 0, at most 2 GiB. */
        public TensorSpec {
            if (dtype == null || shape == null) {
                throw new IllegalArgumentException("dtype and shape must not be null");
            }
            shape = shape.clone();
            TensorData.byteLength(dtype, shape);
        }

        /** Bytes of the tensor. */
        public long byteLength() {
            return TensorData.byteLength(dtype, shape);
        }
    }

    /**
     * A file layout: the bytes before the data (8-byte length and padded JSON) and the tensors in
     * file order with their offsets.
     *
     * @param prefix the first {@code dataStart} bytes of the file
     * @param tensors in file order
     * @param dataLength bytes of the data section
     */
    public record Layout(byte[] prefix, List<TensorInfo> tensors, long dataLength) {
        /** Total file size. */
        public long fileSize() {
            return prefix.length + dataLength;
        }
    }

    private final String source;
    private final Map<String, String> metadata;
    private final Map<String, TensorInfo> tensors;
    private final long headerLength;
    private final long fileSize;

    private SafetensorsHeader(String source, Map<String, String> metadata, List<TensorInfo> list,
            long headerLength, long fileSize) {
        this.source = source;
        this.metadata = Collections.unmodifiableMap(new LinkedHashMap<>(metadata));
        Map<String, TensorInfo> m = new LinkedHashMap<>();
        for (TensorInfo t : list) {
            m.put(t.name(), t);
        }
        this.tensors = Collections.unmodifiableMap(m);
        this.headerLength = headerLength;
        this.fileSize = fileSize;
    }

    /**
     * Reads and validates the header of {@code path} (only the first {@code 8 + N} bytes are read).
     *
     * @throws SafetensorsFormatException naming the file (and tensor) if the header is invalid or
     *     does not fit the file's size
     * @throws IOException if the file cannot be read
     */
    public static SafetensorsHeader read(Path path) throws IOException {
        String source = path.toString();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) {
                throw new SafetensorsFormatException(source + ": " + size
                        + " bytes, too short for the 8-byte header length");
            }
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, len, 0, source);
            long headerLength = len.getLong(0);
            checkHeaderLength(source, headerLength, size);
            ByteBuffer json = ByteBuffer.allocate((int) headerLength);
            readFully(ch, json, 8, source);
            return parse(source, json.flip(), size);
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer b, long position, String source)
            throws IOException {
        long p = position;
        while (b.hasRemaining()) {
            int n = ch.read(b, p);
            if (n < 0) {
                throw new SafetensorsFormatException(source + ": file ended at byte " + p
                        + " while reading the header");
            }
            p += n;
        }
    }

    /** Checks {@code 0 <= N <= min(MAX_HEADER_BYTES, fileSize - 8)}. */
    static void checkHeaderLength(String source, long headerLength, long fileSize)
            throws SafetensorsFormatException {
        long available = fileSize - 8L;
        if (headerLength < 0 || headerLength > Safetensors.MAX_HEADER_BYTES
                || headerLength > available) {
            throw new SafetensorsFormatException(source + ": header length "
                    + Long.toUnsignedString(headerLength) + " must be at most "
                    + Math.min(Safetensors.MAX_HEADER_BYTES, available) + " (the file has "
                    + fileSize + " bytes; the limit is " + Safetensors.MAX_HEADER_BYTES + ")");
        }
    }

    /** Parses the JSON bytes and validates the tensors against a file of {@code fileSize} bytes. */
    static SafetensorsHeader parse(String source, ByteBuffer json, long fileSize)
            throws SafetensorsFormatException {
        long headerLength = json.remaining();
        String text = decodeUtf8(source, json);
        Header header = new HeaderParser(source, text).parse();
        checkLayout(source, header.entries, fileSize - 8 - headerLength);
        return new SafetensorsHeader(source, header.metadata, header.entries, headerLength,
                fileSize);
    }

    /**
     * The layout a writer gives {@code tensors}: ordered by dtype size (largest first), then name;
     * compact JSON with {@code __metadata__} first (keys sorted), space-padded to a multiple of 8.
     *
     * @throws IllegalArgumentException for a null or reserved name or null metadata values
     */
    public static Layout layout(Map<String, TensorSpec> tensors, Map<String, String> metadata) {
        List<Map.Entry<String, TensorSpec>> order = new ArrayList<>(tensors.entrySet());
        for (Map.Entry<String, TensorSpec> e : order) {
            if (e.getKey() == null || e.getKey().equals(Safetensors.METADATA)
                    || e.getValue() == null) {
                throw new IllegalArgumentException("tensors: names must be non-null and not '"
                        + Safetensors.METADATA + "', values non-null; got '" + e.getKey() + "'");
            }
        }
        order.sort(Comparator.<Map.Entry<String, TensorSpec>>comparingInt(
                e -> -e.getValue().dtype().byteSize()).thenComparing(Map.Entry::getKey));
        StringWriter sw = new StringWriter();
        List<TensorInfo> infos = new ArrayList<>();
        long offset = 0;
        try (JsonWriter w = new JsonWriter(sw)) {
            w.beginObject();
            if (!metadata.isEmpty()) {
                w.name(Safetensors.METADATA).beginObject();
                for (Map.Entry<String, String> m : new TreeMap<>(metadata).entrySet()) {
                    if (m.getValue() == null) {
                        throw new IllegalArgumentException("metadata: value of '" + m.getKey()
                                + "' must not be null");
                    }
                    w.name(m.getKey()).value(m.getValue());
                }
                w.endObject();
            }
            for (Map.Entry<String, TensorSpec> e : order) {
                TensorSpec t = e.getValue();
                long size = t.byteLength();
                w.name(e.getKey()).beginObject().name("dtype").value(t.dtype().name());
                w.name("shape").beginArray();
                for (int d : t.shape()) {
                    w.value(d);
                }
                w.endArray().name("data_offsets").beginArray().value(offset)
                        .value(offset + size).endArray().endObject();
                infos.add(new TensorInfo(e.getKey(), t.dtype(), t.shape(), offset, offset + size));
                offset += size;
            }
            w.endObject();
        } catch (IOException e) {
            throw new UncheckedIOException("writing to a StringWriter", e);
        }
        byte[] header = sw.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (header.length + 7) & ~7;
        ByteBuffer prefix = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        prefix.putLong(padded).put(header);
        while (prefix.hasRemaining()) {
            prefix.put((byte) ' ');
        }
        return new Layout(prefix.array(), Collections.unmodifiableList(infos), offset);
    }

    /** Where the bytes came from, as used in messages. */
    public String source() {
        return source;
    }

    /** The {@code __metadata__} map (empty if absent), unmodifiable. */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** Tensors in header order, unmodifiable. */
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    /** Offset of the data section in the file: {@code 8 + N}. */
    public long dataStart() {
        return 8 + headerLength;
    }

    /** Size of the file the header was validated against. */
    public long fileSize() {
        return fileSize;
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
    static void checkLayout(String source, List<TensorInfo> entries, long dataLength)
            throws SafetensorsFormatException {
        for (TensorInfo e : entries) {
            long need;
            try {
                need = TensorData.byteLength(e.dtype(), e.shape());
            } catch (IllegalArgumentException | ArithmeticException ex) {
                throw new SafetensorsFormatException(source + ": tensor '" + e.name() + "': "
                        + ex.getMessage(), ex);
            }
            if (e.end() - e.begin() != need) {
                throw new SafetensorsFormatException(source + ": tensor '" + e.name() + "': shape "
                        + Arrays.toString(e.shape()) + " of " + e.dtype() + " needs " + need
                        + " bytes, data_offsets " + e.offsets() + " span " + (e.end() - e.begin()));
            }
            if (e.end() > dataLength) {
                throw new SafetensorsFormatException(source + ": tensor '" + e.name()
                        + "': data_offsets " + e.offsets() + " end beyond the data section ("
                        + dataLength + " bytes)");
            }
        }
        List<TensorInfo> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparingLong((TensorInfo e) -> e.begin()).thenComparingLong(e -> e.end()));
        long expected = 0;
        TensorInfo previous = null;
        for (TensorInfo e : sorted) {
            if (e.begin() != expected) {
                String where = previous == null ? "the start of the data section"
                        : "the end of tensor '" + previous.name() + "' " + previous.offsets();
                throw new SafetensorsFormatException(source + ": tensor '" + e.name()
                        + "': data_offsets " + e.offsets() + " must begin at " + expected + " ("
                        + where + "); tensors must not overlap or leave gaps");
            }
            expected = e.end();
            previous = e;
        }
        if (expected != dataLength) {
            throw new SafetensorsFormatException(source + ": the data section has " + dataLength
                    + " bytes but the tensors cover " + expected);
        }
    }

    private record Header(Map<String, String> metadata, List<TensorInfo> entries) {}

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
                Map<String, TensorInfo> entries = new LinkedHashMap<>();
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

        private TensorInfo entry(String name) throws IOException {
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
            return new TensorInfo(name, dtype, dims, offsets[0], offsets[1]);
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
