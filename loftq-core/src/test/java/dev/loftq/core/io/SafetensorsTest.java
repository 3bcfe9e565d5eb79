package dev.loftq.core.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {

    @Test
    void everyDtypeRoundTrips() throws IOException {
        Map<String, TensorData> tensors = new LinkedHashMap<>();
        tensors.put("f32", TensorData.ofFloats(new float[] {1.5f, -0f, Float.MIN_VALUE, 3e38f}, 2, 2));
        tensors.put("f64", TensorData.ofDoubles(new double[] {Math.PI}, 1));
        tensors.put("u8", TensorData.ofBytes(new byte[] {0, (byte) 255, 7}, 3));
        tensors.put("i32", TensorData.ofInts(new int[] {-1, Integer.MAX_VALUE}, 2));
        tensors.put("i64", TensorData.ofLongs(new long[] {Long.MIN_VALUE}, 1, 1));
        tensors.put("scalar", TensorData.ofFloats(new float[] {42f}));
        tensors.put("empty", TensorData.ofFloats(new float[0], 0, 5));
        SafetensorsFile f = Safetensors.parse("mem", Safetensors.toBytes(tensors, Map.of("format", "pt")));

        assertEquals(Map.of("format", "pt"), f.metadata());
        assertEquals(tensors.keySet(), Set.copyOf(f.names()));
        assertArrayEquals(new int[] {2, 2}, f.tensor("f32").shape());
        assertArrayEquals(new float[] {1.5f, -0f, Float.MIN_VALUE, 3e38f}, f.tensor("f32").floats());
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(f.tensor("f32").floats()[1]));
        assertArrayEquals(new double[] {Math.PI}, f.tensor("f64").doubles());
        assertArrayEquals(new byte[] {0, (byte) 255, 7}, f.tensor("u8").bytes());
        assertArrayEquals(new int[] {-1, Integer.MAX_VALUE}, f.tensor("i32").ints());
        assertArrayEquals(new long[] {-1, Integer.MAX_VALUE}, f.tensor("i32").longs());
        assertArrayEquals(new long[] {Long.MIN_VALUE}, f.tensor("i64").longs());
        assertArrayEquals(new int[0], f.tensor("scalar").shape());
        assertArrayEquals(new float[] {42f}, f.tensor("scalar").floats());
        assertEquals(0, f.tensor("empty").numel());
    }

    @Test
    void halfPrecisionReadsAsExactFloat32() throws IOException {
        short[] f16 = {0x3C00, (short) 0xC000, 0x0001, 0x03FF, 0x7BFF, 0x7C00, (short) 0xFC00, (short) 0x8000};
        float[] f16Expected = {1f, -2f, 0x1p-24f, 1023 * 0x1p-24f, 65504f, Float.POSITIVE_INFINITY,
            Float.NEGATIVE_INFINITY, -0f};
        short[] bf16 = {0x3F80, (short) 0xBF80, 0x0001, 0x7F7F};
        float[] bf16Expected = {1f, -1f, Float.intBitsToFloat(0x00010000), Float.intBitsToFloat(0x7F7F0000)};
        Map<String, TensorData> tensors = Map.of(
                "h", TensorData.ofRaw(SafetensorsDType.F16, le(f16), f16.length),
                "b", TensorData.ofRaw(SafetensorsDType.BF16, le(bf16), bf16.length));
        SafetensorsFile f = Safetensors.parse("mem", Safetensors.toBytes(tensors, Map.of()));

        assertBitsEqual(f16Expected, f.tensor("h").floats());
        assertBitsEqual(bf16Expected, f.tensor("b").floats());
        assertTrue(Float.isNaN(FloatConversions.halfToFloat((short) 0x7E00)));
        assertEquals(1.0, f.tensor("h").doubles()[0]);
    }

    @Test
    void rewritesAFileOfTheReferenceGeneratorByteForByte() throws IOException {
        byte[] original;
        try (InputStream in = getClass().getResourceAsStream("/safetensors/bnb_nf4_1x1.safetensors")) {
            original = in.readAllBytes();
        }
        SafetensorsFile f = Safetensors.parse("bnb_nf4_1x1", original);

        assertEquals(List.of("absmax", "dequantized", "input", "quant_map", "codes", "packed"),
                List.copyOf(f.names()));
        assertArrayEquals(new float[] {-0.37f}, f.tensor("input").floats());
        assertArrayEquals(original, Safetensors.toBytes(f.tensors(), f.metadata()));
    }

    @Test
    void writeIsAtomicAndDeterministic(@TempDir Path dir) throws IOException {
        Path path = dir.resolve("t.safetensors");
        Map<String, TensorData> a = new LinkedHashMap<>();
        a.put("z", TensorData.ofBytes(new byte[] {1}, 1));
        a.put("a", TensorData.ofFloats(new float[] {2f}, 1));
        Map<String, TensorData> b = new LinkedHashMap<>();
        b.put("a", a.get("a"));
        b.put("z", a.get("z"));
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("y", "2");
        meta.put("x", "1");

        Safetensors.write(path, a, meta);
        byte[] first = Files.readAllBytes(path);
        Safetensors.write(path, b, Map.of("x", "1", "y", "2"));

        assertArrayEquals(first, Files.readAllBytes(path));
        long headerLength = ByteBuffer.wrap(first).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, headerLength % 8);
        assertTrue(new String(first, 8, (int) headerLength, StandardCharsets.UTF_8)
                .startsWith("{\"__metadata__\":{\"x\":\"1\",\"y\":\"2\"},\"a\":"));
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(path), files.toList());
        }
        assertArrayEquals(new float[] {2f}, Safetensors.read(path).tensor("a").floats());
    }

    @Test
    void rejectsFilesShorterThanTheLengthField() {
        assertMessage(new byte[5], "mem: 5 bytes, too short for the 8-byte header length");
    }

    @Test
    void rejectsAHeaderLengthBeyondTheFile() {
        byte[] f = file("{}", 0);
        ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1000);
        assertMessage(f, "header length 1000 must be at most 8 (the file has 16 bytes");
        ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN).putLong(0, -1L);
        assertMessage(f, "header length 18446744073709551615 must be at most");
    }

    @Test
    void rejectsMalformedHeaders() {
        assertMessage(file("[1]", 0), "the header must be a JSON object, got a JSON array");
        assertMessage(file("{\"a\":", 0), "mem: malformed JSON header");
        assertMessage(file("{} {}", 0), "mem: malformed JSON header: invalid JSON at line 1 column 5");
        assertMessage(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                "header has tensor 'a' twice");
        assertMessage(file("{\"__metadata__\":{\"k\":1}}", 0), "'__metadata__' value of 'k' must be a string, got a number");
        assertMessage(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0),
                "tensor 'a' must have dtype, shape and data_offsets");
        assertMessage(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4),
                "tensor 'a' has unknown key 'x'");
        assertMessage(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4),
                "tensor 'a' shape must hold integers in [0, 2147483647], got -1");
        assertMessage(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4),
                "tensor 'a': data_offsets must be [begin, end] with begin <= end, got [4, 0]");
        byte[] badUtf8 = file("{\"\u00e9\":1}", 0);
        badUtf8[10] = (byte) 0xFF;
        assertMessage(badUtf8, "header is not valid UTF-8");
    }

    @Test
    void rejectsUnknownDtypes() {
        assertMessage(file("{\"w\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2),
                "mem: tensor 'w': dtype must be one of [F64, F32, F16, BF16, I64, I32, U8], got 'I16'");
    }

    @Test
    void rejectsASizeThatDoesNotMatchTheShape() {
        assertMessage(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20),
                "mem: tensor 'w': shape [2, 3] of F32 needs 24 bytes, data_offsets [0, 20] span 20");
    }

    @Test
    void rejectsOffsetsOutsideTheData() {
        assertMessage(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4),
                "tensor 'w': data_offsets [0, 8] end beyond the data section (4 bytes)");
    }

    @Test
    void rejectsOverlapsGapsAndTrailingBytes() {
        assertMessage(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                "tensor 'b': data_offsets [4, 8] must begin at 8 (the end of tensor 'a' [0, 8])");
        assertMessage(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                "tensor 'a': data_offsets [4, 8] must begin at 0 (the start of the data section)");
        assertMessage(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6),
                "the data section has 6 bytes but the tensors cover 4");
    }

    @Test
    void readNamesTheFile(@TempDir Path dir) throws IOException {
        Path p = dir.resolve("bad.safetensors");
        Files.write(p, file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4));
        SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class,
                () -> Safetensors.read(p));
        assertTrue(e.getMessage().startsWith(p + ": tensor 'w'"), e.getMessage());
    }

    @Test
    void missingTensorListsTheOthers() throws IOException {
        SafetensorsFile f = Safetensors.parse("mem",
                Safetensors.toBytes(Map.of("a", TensorData.ofFloats(new float[] {1}, 1)), Map.of()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> f.tensor("b"));
        assertEquals("mem has no tensor 'b' (tensors: [a])", e.getMessage());
        IllegalStateException wrong = assertThrows(IllegalStateException.class, () -> f.tensor("a").bytes());
        assertEquals("bytes() needs dtype U8, tensor has F32", wrong.getMessage());
    }

    @Test
    void factoriesCheckLengthAgainstShape() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TensorData.ofFloats(new float[3], 2, 2));
        assertEquals("data: shape [2, 2] has 4 elements, got 3", e.getMessage());
    }

    private static void assertMessage(byte[] file, String expectedPart) {
        SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class,
                () -> Safetensors.parse("mem", file));
        assertTrue(e.getMessage().contains(expectedPart),
                () -> "message '" + e.getMessage() + "' lacks '" + expectedPart + "'");
        assertTrue(e.getMessage().startsWith("mem: "), e.getMessage());
    }

    /** A file with the given header (padded to 8) followed by {@code dataBytes} zero bytes. */
    private static byte[] file(String header, int dataBytes) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        int padded = (h.length + 7) & ~7;
        ByteBuffer b = ByteBuffer.allocate(8 + padded + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(padded).put(h);
        while (b.position() < 8 + padded) {
            b.put((byte) ' ');
        }
        return b.array();
    }

    private static byte[] le(short[] values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (short v : values) {
            b.putShort(v);
        }
        return b.array();
    }

    private static void assertBitsEqual(float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]),
                    "element " + i + ": expected " + expected[i] + ", got " + actual[i]);
        }
    }
}
