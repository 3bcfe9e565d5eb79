package dev.loftq.djl.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.CodedOutputStream;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The ONNX protobuf reader on hand-built models, on the real model, and on bad bytes. */
class OnnxReaderTest {
    private static final int WIRE_VARINT = 0;
    private static final int WIRE_LEN = 2;
    private static final int WIRE_FIXED32 = 5;

    /** A protobuf message writer over CodedOutputStream, for building test models. */
    private static final class Msg {
        final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        final CodedOutputStream out = CodedOutputStream.newInstance(bytes);

        Msg str(int field, String s) throws IOException {
            out.writeString(field, s);
            return this;
        }

        Msg varint(int field, long v) throws IOException {
            out.writeInt64(field, v);
            return this;
        }

        Msg f32(int field, float v) throws IOException {
            out.writeFloat(field, v);
            return this;
        }

        Msg bytes(int field, byte[] b) throws IOException {
            out.writeByteArray(field, b);
            return this;
        }

        Msg msg(int field, Msg m) throws IOException {
            return bytes(field, m.toBytes());
        }

        Msg packedLongs(int field, long... v) throws IOException {
            Msg p = new Msg();
            for (long x : v) {
                p.out.writeInt64NoTag(x);
            }
            return bytes(field, p.toBytes());
        }

        Msg packedFloats(int field, float... v) throws IOException {
            Msg p = new Msg();
            for (float x : v) {
                p.out.writeFloatNoTag(x);
            }
            return bytes(field, p.toBytes());
        }

        byte[] toBytes() throws IOException {
            out.flush();
            return bytes.toByteArray();
        }
    }

    private static byte[] le(float... v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) {
            b.putFloat(x);
        }
        return b.array();
    }

    private static Msg graph() throws IOException {
        Msg w = new Msg().packedLongs(1, 2, 3).varint(2, OnnxTensor.FLOAT).str(8, "w")
                .bytes(9, le(1, 2, 3, 4, 5, 6));
        Msg f = new Msg().varint(1, 3).varint(2, OnnxTensor.FLOAT).str(8, "f").packedFloats(4, 0.5f, -1f, 2f);
        Msg i = new Msg().varint(1, 2).varint(2, OnnxTensor.INT64).str(8, "i").packedLongs(7, 5, -7);
        Msg alpha = new Msg().str(1, "alpha").f32(2, 0.25f).varint(20, 1);
        Msg axis = new Msg().str(1, "axis").varint(3, 3).varint(20, 2);
        Msg node = new Msg().str(1, "x").str(1, "w").str(2, "y").str(3, "/m/MatMul").str(4, "MatMul")
                .msg(5, alpha).msg(5, axis).str(6, "doc");
        return new Msg().msg(1, node).str(2, "g").msg(5, w).msg(5, f).msg(5, i)
                .msg(11, new Msg().str(1, "x")).msg(11, new Msg().str(1, "w")).msg(12, new Msg().str(1, "y"));
    }

    private static byte[] model(Msg graph) throws IOException {
        return new Msg().varint(1, 8).str(2, "test").msg(7, graph)
                .msg(8, new Msg().str(1, "").varint(2, 17)).toBytes();
    }

    private static OnnxGraph read(byte[] bytes, String name) throws IOException {
        return OnnxReader.read(new ByteArrayInputStream(bytes), name);
    }

    @Test
    void readsNodesInitializersAndIo() throws Exception {
        OnnxGraph g = read(model(graph()), "tiny.onnx");
        assertEquals("tiny.onnx", g.source());
        assertEquals(List.of("x"), g.inputs(), "initializers listed as inputs are dropped");
        assertEquals(List.of("y"), g.outputs());
        OnnxNode n = g.nodes().get(0);
        assertEquals(new OnnxNode("/m/MatMul", "MatMul", List.of("x", "w"), List.of("y"), Map.of("alpha", 0.25f), Map.of("axis", 3L)), n);
        OnnxTensor w = g.initializers().get("w");
        assertArrayEquals(new long[] {2, 3}, w.dims());
        assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, w.floats());
        assertArrayEquals(new float[] {0.5f, -1f, 2f}, g.initializers().get("f").floats());
        assertArrayEquals(new long[] {5, -7}, g.initializers().get("i").longs());
        assertEquals(List.of("w", "f", "i"), List.copyOf(g.initializers().keySet()));
        assertThrows(IllegalStateException.class, () -> g.initializers().get("i").floats());
    }

    @Test
    void everyCutInsideTheGraphIsReportedAsTruncated() throws Exception {
        byte[] full = model(graph());
        byte[] graphBytes = graph().toBytes();
        // ir_version (2 bytes), producer "test" (6), graph tag (1) and length varint
        int graphStart = 2 + 6 + 1 + CodedOutputStream.computeUInt32SizeNoTag(graphBytes.length);
        assertEquals(full.length, graphStart + graphBytes.length + 6, "layout assumed by this test");
        for (int cut = graphStart; cut < graphStart + graphBytes.length; cut++) {
            byte[] prefix = Arrays.copyOf(full, cut);
            ModelResourceException e = assertThrows(ModelResourceException.class, () -> read(prefix, "cut.onnx"), "cut at " + cut);
            assertTrue(e.getMessage().contains("cut.onnx") && e.getMessage().contains("truncated"), e.getMessage());
        }
    }

    @Test
    void tensorWhoseDataDisagreesWithItsDimsIsRejected() throws Exception {
        Msg bad = new Msg().packedLongs(1, 2, 3).varint(2, OnnxTensor.FLOAT).str(8, "layer.w").bytes(9, le(1, 2, 3, 4, 5));
        ModelResourceException e = assertThrows(ModelResourceException.class,
                () -> read(model(new Msg().msg(5, bad)), "bad.onnx"));
        assertTrue(e.getMessage().contains("bad.onnx") && e.getMessage().contains("layer.w")
                && e.getMessage().contains("should hold 24 bytes, holds 20"), e.getMessage());
    }

    @Test
    void externalDataIsRejected() throws Exception {
        Msg ext = new Msg().varint(1, 2).varint(2, OnnxTensor.FLOAT).str(8, "big").varint(14, 1);
        ModelResourceException e = assertThrows(ModelResourceException.class, () -> read(model(new Msg().msg(5, ext)), "ext.onnx"));
        assertTrue(e.getMessage().contains("big") && e.getMessage().contains("external data"), e.getMessage());
    }

    @Test
    void bytesWithoutAGraphAreRejected() {
        ModelResourceException e = assertThrows(ModelResourceException.class, () -> read(new byte[0], "empty.onnx"));
        assertTrue(e.getMessage().contains("empty.onnx") && e.getMessage().contains("no graph"), e.getMessage());
    }

    @Test
    void randomBytesAreRejected() {
        Random rnd = new Random(7);
        for (int trial = 0; trial < 20; trial++) {
            byte[] junk = new byte[1 + rnd.nextInt(4096)];
            rnd.nextBytes(junk);
            ModelResourceException e = assertThrows(ModelResourceException.class, () -> read(junk, "junk.onnx"), "trial " + trial);
            assertTrue(e.getMessage().contains("junk.onnx"), e.getMessage());
        }
    }

    @Test
    void truncatedRealModelIsReported() throws Exception {
        byte[] head;
        try (InputStream in = MiniLmFixtures.onnx().open()) {
            head = in.readNBytes(1 << 20);
        }
        ModelResourceException e = assertThrows(ModelResourceException.class,
                () -> OnnxReader.read(ModelResource.of("all-minilm-l6-v2.onnx (first MiB)", () -> new ByteArrayInputStream(head))));
        assertTrue(e.getMessage().contains("all-minilm-l6-v2.onnx (first MiB)") && e.getMessage().contains("truncated"), e.getMessage());
    }

    @Test
    void missingResourcesAreNamed(@TempDir Path dir) {
        Path missing = dir.resolve("nowhere.onnx");
        ModelResourceException e = assertThrows(ModelResourceException.class, () -> OnnxReader.read(missing));
        assertTrue(e.getMessage().contains(missing.toString()) && e.getMessage().contains("does not exist"), e.getMessage());
        e = assertThrows(ModelResourceException.class, () -> OnnxReader.read(ModelResource.of(missing)));
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
        e = assertThrows(ModelResourceException.class, () -> OnnxReader.read(ModelResource.classpath("models/absent.onnx")));
        assertTrue(e.getMessage().contains("models/absent.onnx") && e.getMessage().contains("classpath"), e.getMessage());
    }

    @Test
    void realModelHasTheExpectedIo() {
        OnnxGraph g = MiniLmFixtures.graph();
        assertEquals(List.of("input_ids", "attention_mask", "token_type_ids"), g.inputs());
        assertEquals(List.of("last_hidden_state"), g.outputs());
    }
}
