package dev.loftq.core.io;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * A validated safetensors file: its {@code __metadata__} and its tensors in header order. Made by
 * {@link Safetensors#read} or {@link Safetensors#parse}; immutable and thread-safe.
 */
public final class SafetensorsFile {
    private final String source;
    private final Map<String, String> metadata;
    private final Map<String, TensorData> tensors;

    SafetensorsFile(String source, Map<String, String> metadata, Map<String, TensorData> tensors) {
        this.source = source;
        this.metadata = Collections.unmodifiableMap(new LinkedHashMap<>(metadata));
        this.tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
    }

    /** Where the bytes came from (a path or a resource name), as used in messages. */
    public String source() {
        return source;
    }

    /** The {@code __metadata__} string map (empty if absent), unmodifiable. */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** Tensor names in header order, unmodifiable. */
    public Set<String> names() {
        return tensors.keySet();
    }

    /** Whether a tensor of that name exists. */
    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    /**
     * The tensor {@code name}.
     *
     * @throws IllegalArgumentException naming the file and listing its tensors if absent
     */
    public TensorData tensor(String name) {
        TensorData t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException(source + " has no tensor '" + name + "' (tensors: "
                    + tensors.keySet() + ")");
        }
        return t;
    }

    /** All tensors in header order, unmodifiable. */
    public Map<String, TensorData> tensors() {
        return tensors;
    }

    @Override
    public String toString() {
        return "SafetensorsFile[" + source + ", " + tensors.size() + " tensors]";
    }
}
