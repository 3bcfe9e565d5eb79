package dev.loftq.djl.model;

import java.util.List;
import java.util.Map;

/**
 * One ONNX {@code NodeProto}: an operator application. Only the fields weight mapping needs:
 * name, op type, input and output value names, and the scalar attributes (float and int) by name.
 *
 * @param name the node's name (exporters usually name it after the module, e.g.
 *     "/encoder/layer.0/attention/self/query/MatMul"); may be empty
 * @param opType the operator, e.g. "MatMul", "Add"
 * @param inputs names of the input values, in order (empty string for an omitted optional input)
 * @param outputs names of the output values, in order
 * @param floatAttributes the node's FLOAT attributes ({@code AttributeProto.f}) by name
 * @param intAttributes the node's INT attributes ({@code AttributeProto.i}) by name
 */
public record OnnxNode(
        String name,
        String opType,
        List<String> inputs,
        List<String> outputs,
        Map<String, Float> floatAttributes,
        Map<String, Long> intAttributes) {
    /** Defensive copies. */
    public OnnxNode {
        inputs = List.copyOf(inputs);
        outputs = List.copyOf(outputs);
        floatAttributes = Map.copyOf(floatAttributes);
        intAttributes = Map.copyOf(intAttributes);
    }
}
