package dev.loftq.djl.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parts of an ONNX {@code GraphProto} that weight loading needs: the nodes in file order
 * (ONNX requires topological order), the initializers by name, and the graph's input and output
 * names. Immutable.
 */
public final class OnnxGraph {
    private final String source;
    private final List<OnnxNode> nodes;
    private final Map<String, OnnxTensor> initializers;
    private final List<String> inputs;
    private final List<String> outputs;

    OnnxGraph(
            String source,
            List<OnnxNode> nodes,
            Map<String, OnnxTensor> initializers,
            List<String> inputs,
            List<String> outputs) {
        this.source = source;
        this.nodes = List.copyOf(nodes);
        this.initializers = Collections.unmodifiableMap(new LinkedHashMap<>(initializers));
        this.inputs = List.copyOf(inputs);
        this.outputs = List.copyOf(outputs);
    }

    /** Where the graph was read from (resource name or path), for error messages. */
    public String source() {
        return source;
    }

    /** The nodes in file (topological) order. */
    public List<OnnxNode> nodes() {
        return nodes;
    }

    /** Initializers by name, in file order. */
    public Map<String, OnnxTensor> initializers() {
        return initializers;
    }

    /** Names of the graph inputs (initializers excluded), in order. */
    public List<String> inputs() {
        return inputs;
    }

    /** Names of the graph outputs, in order. */
    public List<String> outputs() {
        return outputs;
    }

    /** The nodes that read value {@code valueName}, in graph order. */
    public List<OnnxNode> consumers(String valueName) {
        List<OnnxNode> out = new ArrayList<>();
        for (OnnxNode n : nodes) {
            if (n.inputs().contains(valueName)) {
                out.add(n);
            }
        }
        return out;
    }
}
