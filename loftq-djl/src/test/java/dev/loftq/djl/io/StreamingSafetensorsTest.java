package dev.loftq.djl.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.io.FloatConversions;
import dev.loftq.core.io.Safetensors;
import dev.loftq.core.io.SafetensorsDType;
import dev.loftq.core.io.SafetensorsHeader;
import dev.loftq.core.io.SafetensorsHeader.TensorSpec;
import dev.loftq.core.io.TensorData;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The lazy reader, the sharded checkpoint and the streaming writer. */
class StreamingSafetensorsTest {
    @TempDir
    Path tmp;

    static Map<String, TensorData> sample() {
        Random r = new Random(7);
        float[] f = new float[300];
        for (int i = 0; i < f.length; i++) {
            f[i] = (float) r.nextGaussian();
        }
        byte[] bf = new byte[600];
        byte[] h = new byte[600];
        ByteBuffer b1 = ByteBuffer.wrap(bf).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer b2 = ByteBuffer.wrap(h).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : f) {
            b1.putShort(FloatConversions.floatToBfloat16(x));
            b2.putShort(FloatConversions.floatToHalf(x));
        }
        Map<String, TensorData> t = new LinkedHashMap<>();
        t.put("w.f32", TensorData.ofFloats(f, 20, 15));
        t.put("w.bf16", TensorData.ofRaw(SafetensorsDType.BF16, bf, 30, 10));
        t.put("w.f16", TensorData.ofRaw(SafetensorsDType.F16, h, 300));
        t.put("ids", TensorData.ofLongs(new long[] {1, 2, 3}, 3));
        t.put("mask", TensorData.ofBytes(new byte[] {1, 0}, 2));
        return t;
    }

    @Test
    void streamedFilesAreByteIdenticalToTheInMemoryWriterWhateverTheOrder() throws Exception {
        Map<String, TensorData> t = sample();
        Map<String, TensorSpec> specs = new LinkedHashMap<>();
        t.forEach((k, v) -> specs.put(k, new TensorSpec(v.dtype(), v.shape())));
        Path out = tmp.resolve("s.safetensors");
        List<String> names = new ArrayList<>(t.keySet());
        java.util.Collections.reverse(names);
        try (SafetensorsStreamWriter w = SafetensorsStreamWriter.create(out, specs,
                Map.of("format", "pt"))) {
            Thread other = new Thread(() -> {
                try {
                    w.write("w.f32", t.get("w.f32"));
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            other.start();
            for (String n : names) {
                if (!n.equals("w.f32")) {
                    w.write(n, t.get(n));
                }
            }
            other.join();
            assertFalse(Files.exists(out), "nothing at the target before commit");
            w.commit();
        }
        assertArrayEquals(Safetensors.toBytes(t, Map.of("format", "pt")), Files.readAllBytes(out));
        assertEquals(1, countFiles(tmp));
    }

    @Test
    void lazyReadsConvertF16AndBf16ExactlyAndCopyRawBytes() throws Exception {
        Map<String, TensorData> t = sample();
        Path in = tmp.resolve("in.safetensors");
        Safetensors.write(in, t, Map.of());
        try (LazySafetensorsFile f = LazySafetensorsFile.open(in)) {
            for (String n : List.of("w.f32", "w.bf16", "w.f16")) {
                assertArrayEquals(t.get(n).floats(), f.floats(n), n);
            }
            assertArrayEquals(t.get("ids").rawBytes(), f.read("ids").rawBytes());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> f.floats("ids"));
            assertTrue(e.getMessage().contains("tensor 'ids' is I64"), e.getMessage());
            // Copy every tensor through, then the float path re-encodes BF16 bit-exactly.
            Map<String, TensorSpec> specs = new LinkedHashMap<>();
            f.header().tensors().forEach((k, v) -> specs.put(k, new TensorSpec(v.dtype(),
                    v.shape())));
            Path out = tmp.resolve("out.safetensors");
            try (SafetensorsStreamWriter w = SafetensorsStreamWriter.create(out, specs, Map.of())) {
                for (String n : specs.keySet()) {
                    if (n.equals("w.bf16") || n.equals("w.f16")) {
                        w.writeFloats(n, f.floats(n));
                    } else {
                        f.copyTo(n, w);
                    }
                }
                w.commit();
            }
            assertArrayEquals(Files.readAllBytes(in), Files.readAllBytes(out));
        }
    }

    @Test
    void narrowingRoundsToNearestEven() {
        assertEquals((short) 0x3F80, FloatConversions.floatToBfloat16(1.0f));
        // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
        assertEquals((short) 0x3F80, FloatConversions.floatToBfloat16(1f + 0x1p-8f));
        assertEquals((short) 0x3F82, FloatConversions.floatToBfloat16(1f + 3 * 0x1p-8f));
        assertEquals((short) 0x3C00, FloatConversions.floatToHalf(1.0f));
        assertEquals((short) 0x7C00, FloatConversions.floatToHalf(65520f)); // rounds to inf
        assertEquals((short) 0x7BFF, FloatConversions.floatToHalf(65519f));
        assertEquals((short) 0x0001, FloatConversions.floatToHalf(0x1p-24f));
        assertEquals((short) 0x0000, FloatConversions.floatToHalf(0x1p-25f)); // tie to even 0
        assertEquals((short) 0x0002, FloatConversions.floatToHalf(0x1.8p-24f)); // tie to even 2
        for (int h = 0; h < 0x7C00; h++) { // every finite half round-trips
            assertEquals((short) h, FloatConversions.floatToHalf(
                    FloatConversions.halfToFloat((short) h)));
        }
    }

    @Test
    void filesBeyondTwoGibibytesAreReadByOffset() throws Exception {
        // A sparse file: tensor "a" of 2^31 - 16 bytes, then "b" past the 2 GiB mark.
        Map<String, TensorSpec> specs = new LinkedHashMap<>();
        specs.put("a", new TensorSpec(SafetensorsDType.F32, new int[] {(1 << 29) - 4}));
        specs.put("b", new TensorSpec(SafetensorsDType.F32, new int[] {4}));
        SafetensorsHeader.Layout layout = SafetensorsHeader.layout(specs, Map.of());
        Path big = tmp.resolve("big.safetensors");
        try (FileChannel ch = FileChannel.open(big, StandardOpenOption.CREATE_NEW,
                StandardOpenOption.WRITE, StandardOpenOption.SPARSE)) {
            ch.write(ByteBuffer.wrap(layout.prefix()), 0);
            ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
            b.putFloat(1.5f).putFloat(-2f).putFloat(3.25f).putFloat(1e-3f).flip();
            ch.write(b, layout.fileSize() - 16);
        }
        assertTrue(Files.size(big) > (1L << 31));
        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(big)) {
            assertArrayEquals(new float[] {1.5f, -2f, 3.25f, 1e-3f}, c.floats("b"));
            assertEquals((1L << 31) - 16, c.info("a").byteLength());
        }
    }

    @Test
    void shardedCheckpointsAreReadThroughTheirIndex() throws Exception {
        Map<String, TensorData> t = sample();
        Path dir = Files.createDirectories(tmp.resolve("m"));
        writeSharded(dir, t);
        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(dir)) {
            assertTrue(c.isSharded());
            assertEquals(List.of("ids", "mask", "w.bf16", "w.f16", "w.f32"), c.names());
            assertEquals("model-00002-of-00002.safetensors", c.shardOf().get("w.f32"));
            assertArrayEquals(t.get("w.bf16").floats(), c.floats("w.bf16"));
            assertEquals(Map.of("total_size", new PythonJson.Literal("3046")), c.indexMetadata());
        }
    }

    /** Shard 1: ids, mask, w.bf16; shard 2: w.f16, w.f32. */
    static void writeSharded(Path dir, Map<String, TensorData> t) throws IOException {
        Map<String, TensorData> s1 = new LinkedHashMap<>();
        Map<String, TensorData> s2 = new LinkedHashMap<>();
        Map<String, Object> weightMap = new LinkedHashMap<>();
        for (Map.Entry<String, TensorData> e : t.entrySet()) {
            boolean second = e.getKey().startsWith("w.f");
            (second ? s2 : s1).put(e.getKey(), e.getValue());
            weightMap.put(e.getKey(), "model-0000" + (second ? 2 : 1) + "-of-00002.safetensors");
        }
        Safetensors.write(dir.resolve("model-00001-of-00002.safetensors"), s1, Map.of());
        Safetensors.write(dir.resolve("model-00002-of-00002.safetensors"), s2, Map.of());
        Map<String, Object> index = new LinkedHashMap<>();
        index.put("metadata", Map.of("total_size", 3046));
        index.put("weight_map", weightMap);
        Files.writeString(dir.resolve(SafetensorsCheckpoint.INDEX),
                PythonJson.dumps(index, 2, true) + "\n");
    }

    static long countFiles(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.count();
        }
    }
}
