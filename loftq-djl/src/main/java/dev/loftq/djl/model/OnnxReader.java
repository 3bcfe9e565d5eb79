package dev.loftq.djl.model;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.WireFormat;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small reader for ONNX model files ({@code onnx.proto3}: {@code ModelProto → GraphProto →
 * NodeProto / TensorProto}) over protobuf-java's {@link CodedInputStream}, without generated
 * classes. It reads only the node list, the initializers and the graph's input and output names;
 * every other field is skipped.
 *
 * <p>Supported initializer storage: {@code raw_data} (any element type, kept as bytes) and the
 * typed fields {@code float_data} and {@code int64_data}. External data ({@code data_location =
 * EXTERNAL}) is rejected with an {@link ModelResourceException}.
 *
 * <p>Every failure is an {@link ModelResourceException} naming the source (resource name or path),
 * what was found and what was expected; a stream that ends inside a message is reported as
 * truncated. Stateless and thread-safe.
 */
public final class OnnxReader {
    // ModelProto
    private static final int MODEL_GRAPH = 7;
    // GraphProto
    private static final int GRAPH_NODE = 1;
    private static final int GRAPH_INITIALIZER = 5;
    private static final int GRAPH_INPUT = 11;
    private static final int GRAPH_OUTPUT = 12;
    // NodeProto
    private static final int NODE_INPUT = 1;
    private static final int NODE_OUTPUT = 2;
    private static final int NODE_NAME = 3;
    private static final int NODE_OP_TYPE = 4;
    private static final int NODE_ATTRIBUTE = 5;
    // AttributeProto
    private static final int ATTR_NAME = 1;
    private static final int ATTR_F = 2;
    private static final int ATTR_I = 3;
    private static final int ATTR_TYPE = 20;
    private static final int ATTR_TYPE_FLOAT = 1;
    private static final int ATTR_TYPE_INT = 2;
    // TensorProto
    private static final int TENSOR_DIMS = 1;
    private static final int TENSOR_DATA_TYPE = 2;
    private static final int TENSOR_FLOAT_DATA = 4;
    private static final int TENSOR_INT64_DATA = 7;
    private static final int TENSOR_NAME = 8;
    private static final int TENSOR_RAW_DATA = 9;
    private static final int TENSOR_DATA_LOCATION = 14;
    // ValueInfoProto
    private static final int VALUE_INFO_NAME = 1;

    private OnnxReader() {}

    /**
     * Reads a model from a named resource (file, classpath resource or stream).
     *
     * @throws ModelResourceException if the resource is missing, truncated or not an ONNX model
     */
    public static OnnxGraph read(ModelResource resource) throws IOException {
        try (InputStream in = resource.open()) {
            return read(in, resource.name());
        }
    }

    /**
     * Reads a model file.
     *
     * @param path the .onnx file; not modified
     * @throws ModelResourceException if the file is missing, truncated or not an ONNX model
     */
    public static OnnxGraph read(Path path) throws IOException {
        try (InputStream in = Files.newInputStream(path)) {
            return read(in, path.toString());
        } catch (NoSuchFileException e) {
            throw new ModelResourceException(
                    "ONNX model " + path + " does not exist (expected an ONNX ModelProto file)", e);
        }
    }

    /**
     * Reads a model from a stream; the stream is read to the end of the model but not closed.
     *
     * @param in the model bytes
     * @param source a name for the stream (resource name or path), used in error messages
     * @throws ModelResourceException if the bytes are truncated or not an ONNX model
     */
    public static OnnxGraph read(InputStream in, String source) throws IOException {
        CodedInputStream cis = CodedInputStream.newInstance(new BufferedInputStream(in, 1 << 16));
        cis.setSizeLimit(Integer.MAX_VALUE);
        GraphBuilder graph = null;
        try {
            int tag;
            while ((tag = cis.readTag()) != 0) {
                if (tagIs(tag, MODEL_GRAPH, WireFormat.WIRETYPE_LENGTH_DELIMITED)) {
                    graph = new GraphBuilder(source);
                    GraphBuilder g = graph;
                    readMessage(cis, source, "ModelProto.graph", () -> readGraph(cis, g));
                } else {
                    cis.skipField(tag);
                }
            }
        } catch (ModelResourceException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            throw new ModelResourceException(
                    "ONNX model " + source + " is truncated or corrupt (expected an ONNX ModelProto): "
                            + e.getMessage(),
                    e);
        }
        if (graph == null) {
            throw new ModelResourceException(
                    "ONNX model " + source + " has no graph (expected ModelProto field 7, GraphProto)");
        }
        return graph.build();
    }

    private interface Body {
        void read() throws IOException;
    }

    /** Reads one length-delimited sub-message and checks that exactly its length was consumed. */
    private static void readMessage(CodedInputStream cis, String source, String what, Body body)
            throws IOException {
        int length = cis.readRawVarint32();
        if (length < 0) {
            throw new ModelResourceException(
                    "ONNX model " + source + ": " + what + " has negative length " + length);
        }
        int start = cis.getTotalBytesRead();
        int oldLimit = cis.pushLimit(length);
        try {
            body.read();
        } catch (ModelResourceException e) {
            // a message cut short fails its own checks first; report the cause, not the symptom
            checkComplete(cis, source, what, start, length, e);
            throw e;
        }
        cis.popLimit(oldLimit);
        checkComplete(cis, source, what, start, length, null);
    }

    private static void checkComplete(
            CodedInputStream cis, String source, String what, int start, int length, Exception cause)
            throws ModelResourceException {
        int read = cis.getTotalBytesRead() - start;
        if (read != length) {
            throw new ModelResourceException(
                    "ONNX model " + source + " is truncated: " + what + " declares " + length
                            + " bytes but the stream ended after " + read,
                    cause);
        }
    }

    private static boolean tagIs(int tag, int field, int wireType) {
        return tag == ((field << 3) | wireType);
    }

    private static void readGraph(CodedInputStream cis, GraphBuilder g) throws IOException {
        int tag;
        while ((tag = cis.readTag()) != 0) {
            int field = WireFormat.getTagFieldNumber(tag);
            int wire = WireFormat.getTagWireType(tag);
            if (wire != WireFormat.WIRETYPE_LENGTH_DELIMITED) {
                cis.skipField(tag);
                continue;
            }
            switch (field) {
                case GRAPH_NODE -> readMessage(cis, g.source, "GraphProto.node", () -> g.nodes.add(readNode(cis)));
                case GRAPH_INITIALIZER -> readMessage(
                        cis, g.source, "GraphProto.initializer", () -> g.addInitializer(readTensor(cis, g.source)));
                case GRAPH_INPUT -> readMessage(cis, g.source, "GraphProto.input", () -> g.inputs.add(readValueInfoName(cis)));
                case GRAPH_OUTPUT -> readMessage(cis, g.source, "GraphProto.output", () -> g.outputs.add(readValueInfoName(cis)));
                default -> cis.skipField(tag);
            }
        }
    }

    private static String readValueInfoName(CodedInputStream cis) throws IOException {
        String name = "";
        int tag;
        while ((tag = cis.readTag()) != 0) {
            if (tagIs(tag, VALUE_INFO_NAME, WireFormat.WIRETYPE_LENGTH_DELIMITED)) {
                name = cis.readString();
            } else {
                cis.skipField(tag);
            }
        }
        return name;
    }

    private static OnnxNode readNode(CodedInputStream cis) throws IOException {
        String name = "";
        String opType = "";
        List<String> inputs = new ArrayList<>();
        List<String> outputs = new ArrayList<>();
        Map<String, Float> floats = new HashMap<>();
        Map<String, Long> ints = new HashMap<>();
        int tag;
        while ((tag = cis.readTag()) != 0) {
            int field = WireFormat.getTagFieldNumber(tag);
            if (WireFormat.getTagWireType(tag) != WireFormat.WIRETYPE_LENGTH_DELIMITED) {
                cis.skipField(tag);
                continue;
            }
            switch (field) {
                case NODE_INPUT -> inputs.add(cis.readString());
                case NODE_OUTPUT -> outputs.add(cis.readString());
                case NODE_NAME -> name = cis.readString();
                case NODE_OP_TYPE -> opType = cis.readString();
                case NODE_ATTRIBUTE -> {
                    int length = cis.readRawVarint32();
                    int old = cis.pushLimit(length);
                    readAttribute(cis, floats, ints);
                    cis.popLimit(old);
                }
                default -> cis.skipField(tag);
            }
        }
        return new OnnxNode(name, opType, inputs, outputs, floats, ints);
    }

    private static void readAttribute(CodedInputStream cis, Map<String, Float> floats, Map<String, Long> ints)
            throws IOException {
        String name = null;
        Float f = null;
        Long i = null;
        int type = 0;
        int tag;
        while ((tag = cis.readTag()) != 0) {
            if (tagIs(tag, ATTR_NAME, WireFormat.WIRETYPE_LENGTH_DELIMITED)) {
                name = cis.readString();
            } else if (tagIs(tag, ATTR_F, WireFormat.WIRETYPE_FIXED32)) {
                f = cis.readFloat();
            } else if (tagIs(tag, ATTR_I, WireFormat.WIRETYPE_VARINT)) {
                i = cis.readInt64();
            } else if (tagIs(tag, ATTR_TYPE, WireFormat.WIRETYPE_VARINT)) {
                type = cis.readInt32();
            } else {
                cis.skipField(tag);
            }
        }
        if (name == null) {
            return;
        }
        if (type == ATTR_TYPE_FLOAT && f != null) {
            floats.put(name, f);
        } else if (type == ATTR_TYPE_INT && i != null) {
            ints.put(name, i);
        }
    }

    private static OnnxTensor readTensor(CodedInputStream cis, String source) throws IOException {
        String name = "";
        int dataType = 0;
        List<Long> dims = new ArrayList<>();
        byte[] raw = null;
        List<Float> floatData = new ArrayList<>();
        List<Long> longData = new ArrayList<>();
        boolean external = false;
        int tag;
        while ((tag = cis.readTag()) != 0) {
            int field = WireFormat.getTagFieldNumber(tag);
            int wire = WireFormat.getTagWireType(tag);
            switch (field) {
                case TENSOR_DIMS -> readLongs(cis, wire, dims);
                case TENSOR_DATA_TYPE -> dataType = cis.readInt32();
                case TENSOR_NAME -> name = cis.readString();
                case TENSOR_RAW_DATA -> raw = cis.readByteArray();
                case TENSOR_FLOAT_DATA -> readFloats(cis, wire, floatData);
                case TENSOR_INT64_DATA -> readLongs(cis, wire, longData);
                case TENSOR_DATA_LOCATION -> external = cis.readInt32() == 1;
                default -> cis.skipField(tag);
            }
        }
        if (external) {
            throw new ModelResourceException(
                    "ONNX model " + source + ": initializer " + name
                            + " uses external data, which is not supported (expected data inside the model file)");
        }
        long[] d = new long[dims.size()];
        long count = 1;
        for (int k = 0; k < d.length; k++) {
            d[k] = dims.get(k);
            if (d[k] < 0) {
                throw new ModelResourceException(
                        "ONNX model " + source + ": initializer " + name + " has negative dim " + d[k]);
            }
            count *= d[k];
        }
        byte[] data;
        if (raw != null) {
            data = raw;
        } else if (!floatData.isEmpty()) {
            ByteBuffer b = ByteBuffer.allocate(floatData.size() * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
            for (float v : floatData) {
                b.putFloat(v);
            }
            data = b.array();
        } else if (!longData.isEmpty()) {
            ByteBuffer b = ByteBuffer.allocate(longData.size() * Long.BYTES).order(ByteOrder.LITTLE_ENDIAN);
            for (long v : longData) {
                b.putLong(v);
            }
            data = b.array();
        } else {
            data = new byte[0];
        }
        int elementSize = elementSize(dataType);
        if (elementSize > 0 && (data.length != count * elementSize)) {
            throw new ModelResourceException(
                    "ONNX model " + source + ": initializer " + name + " of type " + dataType + " and dims "
                            + dims + " should hold " + count * elementSize + " bytes, holds " + data.length);
        }
        return new OnnxTensor(name, dataType, d, data);
    }

    /** Bytes per element for the fixed-size ONNX types, 0 for the others (strings, unknown). */
    static int elementSize(int dataType) {
        return switch (dataType) {
            case 1, 6, 12 -> 4; // FLOAT, INT32, UINT32
            case 2, 3, 9 -> 1; // UINT8, INT8, BOOL
            case 4, 5, 10, 16 -> 2; // UINT16, INT16, FLOAT16, BFLOAT16
            case 7, 11, 13 -> 8; // INT64, DOUBLE, UINT64
            default -> 0;
        };
    }

    private static void readLongs(CodedInputStream cis, int wire, List<Long> out) throws IOException {
        if (wire == WireFormat.WIRETYPE_LENGTH_DELIMITED) {
            int old = cis.pushLimit(cis.readRawVarint32());
            while (!cis.isAtEnd()) {
                out.add(cis.readInt64());
            }
            cis.popLimit(old);
        } else {
            out.add(cis.readInt64());
        }
    }

    private static void readFloats(CodedInputStream cis, int wire, List<Float> out) throws IOException {
        if (wire == WireFormat.WIRETYPE_LENGTH_DELIMITED) {
            int old = cis.pushLimit(cis.readRawVarint32());
            while (!cis.isAtEnd()) {
                out.add(cis.readFloat());
            }
            cis.popLimit(old);
        } else {
            out.add(cis.readFloat());
        }
    }

    private static final class GraphBuilder {
        final String source;
        final List<OnnxNode> nodes = new ArrayList<>();
        final Map<String, OnnxTensor> initializers = new LinkedHashMap<>();
        final List<String> inputs = new ArrayList<>();
        final List<String> outputs = new ArrayList<>();

        GraphBuilder(String source) {
            this.source = source;
        }

        void addInitializer(OnnxTensor t) throws ModelResourceException {
            if (initializers.put(t.name(), t) != null) {
                throw new ModelResourceException(
                        "ONNX model " + source + ": initializer " + t.name() + " appears twice (expected unique names)");
            }
        }

        OnnxGraph build() {
            List<String> realInputs = new ArrayList<>();
            for (String in : inputs) {
                if (!initializers.containsKey(in)) {
                    realInputs.add(in);
                }
            }
            return new OnnxGraph(source, nodes, initializers, realInputs, outputs);
        }
    }
}
