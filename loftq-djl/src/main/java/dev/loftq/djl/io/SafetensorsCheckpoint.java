package dev.loftq.djl.io;

import dev.loftq.core.io.SafetensorsHeader.TensorInfo;
import dev.loftq.core.io.TensorData;
import java.io.Closeable;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A Hugging Face checkpoint directory read lazily: a single {@code model.safetensors}, or shards
 * listed by {@code model.safetensors.index.json} ({@code {"metadata": {...}, "weight_map":
 * {tensor: shard file}}}). Opening validates every shard's header and the index against them: each
 * shard named by the index exists and is a plain file name in the directory, each tensor the index
 * names is in its shard, and each tensor of a shard is listed by the index for that shard. Tensors
 * are then read one at a time ({@link #floats}, {@link #read}, {@link #copyTo}).
 *
 * <p>Thread-safe for reads. Close it to release the files.
 */
public final class SafetensorsCheckpoint implements Closeable {
    /** The single-file name. */
    public static final String SINGLE = "model.safetensors";
    /** The shard index name. */
    public static final String INDEX = "model.safetensors.index.json";

    private final Path directory;
    private final boolean sharded;
    private final Map<String, LazySafetensorsFile> shards; // file name → file, sorted
    private final Map<String, String> shardOf; // tensor → file name, sorted by tensor
    private final Map<String, Object> indexMetadata;

    private SafetensorsCheckpoint(Path directory, boolean sharded,
            Map<String, LazySafetensorsFile> shards, Map<String, String> shardOf,
            Map<String, Object> indexMetadata) {
        this.directory = directory;
        this.sharded = sharded;
        this.shards = Collections.unmodifiableMap(shards);
        this.shardOf = Collections.unmodifiableMap(shardOf);
        this.indexMetadata = indexMetadata;
    }

    /**
     * Opens the checkpoint in {@code directory} (or the single file {@code directory} itself, if it
     * is a {@code .safetensors} file).
     *
     * @throws NoSuchFileException naming the path if there is neither an index nor
     *     {@code model.safetensors}, or a shard is missing
     * @throws IOException a {@code SafetensorsFormatException} for a malformed shard, a
     *     {@link CheckpointFormatException} for an inconsistent index
     */
    public static SafetensorsCheckpoint open(Path directory) throws IOException {
        if (Files.isRegularFile(directory)) {
            return single(directory.toAbsolutePath().getParent(), directory.getFileName()
                    .toString());
        }
        if (!Files.isDirectory(directory)) {
            throw new NoSuchFileException(directory.toString(), null,
                    "no such checkpoint directory or .safetensors file");
        }
        Path index = directory.resolve(INDEX);
        if (Files.isRegularFile(index)) {
            return sharded(directory, index);
        }
        if (Files.isRegularFile(directory.resolve(SINGLE))) {
            return single(directory, SINGLE);
        }
        throw new NoSuchFileException(directory.toString(), null, "holds neither " + INDEX
                + " nor " + SINGLE);
    }

    private static SafetensorsCheckpoint single(Path dir, String name) throws IOException {
        LazySafetensorsFile f = LazySafetensorsFile.open(dir.resolve(name));
        Map<String, LazySafetensorsFile> shards = new TreeMap<>();
        shards.put(name, f);
        Map<String, String> shardOf = new TreeMap<>();
        for (String t : f.header().tensors().keySet()) {
            shardOf.put(t, name);
        }
        return new SafetensorsCheckpoint(dir, false, shards, shardOf, Map.of());
    }

    private static SafetensorsCheckpoint sharded(Path dir, Path index) throws IOException {
        String source = index.toString();
        Object parsed = PythonJson.parse(source, Files.readString(index, StandardCharsets.UTF_8));
        if (!(parsed instanceof Map<?, ?> root) || !(root.get("weight_map") instanceof Map<?, ?>)) {
            throw new CheckpointFormatException(source + ": must be a JSON object with a "
                    + "\"weight_map\" object");
        }
        Map<?, ?> weightMap = (Map<?, ?>) root.get("weight_map");
        if (weightMap.isEmpty()) {
            throw new CheckpointFormatException(source + ": \"weight_map\" is empty");
        }
        Map<String, String> shardOf = new TreeMap<>();
        for (Map.Entry<?, ?> e : weightMap.entrySet()) {
            String tensor = (String) e.getKey();
            if (!(e.getValue() instanceof String file) || file.isEmpty() || file.contains("/")
                    || file.contains("\\") || file.equals(".") || file.equals("..")) {
                throw new CheckpointFormatException(source + ": tensor '" + tensor
                        + "' must map to a shard file name in the same directory, got "
                        + PythonJson.dumps(e.getValue()));
            }
            shardOf.put(tensor, file);
        }
        Map<String, LazySafetensorsFile> shards = new TreeMap<>();
        try {
            for (String file : new java.util.TreeSet<>(shardOf.values())) {
                Path p = dir.resolve(file);
                if (!Files.isRegularFile(p)) {
                    String example = shardOf.entrySet().stream()
                            .filter(x -> x.getValue().equals(file)).findFirst().get().getKey();
                    throw new NoSuchFileException(p.toString(), null, "shard named by " + source
                            + " (for tensor '" + example + "', …) is missing");
                }
                shards.put(file, LazySafetensorsFile.open(p));
            }
            for (Map.Entry<String, String> e : shardOf.entrySet()) {
                LazySafetensorsFile f = shards.get(e.getValue());
                if (!f.header().tensors().containsKey(e.getKey())) {
                    throw new CheckpointFormatException(source + ": tensor '" + e.getKey()
                            + "' is mapped to " + e.getValue() + ", which has no such tensor");
                }
            }
            for (Map.Entry<String, LazySafetensorsFile> s : shards.entrySet()) {
                for (String t : s.getValue().header().tensors().keySet()) {
                    if (!s.getKey().equals(shardOf.get(t))) {
                        throw new CheckpointFormatException(s.getValue().path() + ": holds tensor '"
                                + t + "', which " + source + " maps to "
                                + (shardOf.containsKey(t) ? shardOf.get(t) : "no shard"));
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            for (LazySafetensorsFile f : shards.values()) {
                try {
                    f.close();
                } catch (IOException s) {
                    e.addSuppressed(s);
                }
            }
            throw e;
        }
        Map<String, Object> meta = new LinkedHashMap<>();
        if (root.get("metadata") instanceof Map<?, ?> m) {
            m.forEach((k, v) -> meta.put((String) k, v));
        }
        return new SafetensorsCheckpoint(dir, true, shards, shardOf,
                Collections.unmodifiableMap(meta));
    }

    /** The directory. */
    public Path directory() {
        return directory;
    }

    /** Whether an index lists shards. */
    public boolean isSharded() {
        return sharded;
    }

    /** The index's {@code metadata} object (empty for a single file). */
    public Map<String, Object> indexMetadata() {
        return indexMetadata;
    }

    /** Shard file names, sorted, each with its open file. */
    public Map<String, LazySafetensorsFile> shards() {
        return shards;
    }

    /** All tensor names, sorted. */
    public List<String> names() {
        return new ArrayList<>(shardOf.keySet());
    }

    /** Tensor → shard file name, sorted by tensor. */
    public Map<String, String> shardOf() {
        return shardOf;
    }

    /** Whether tensor {@code name} exists. */
    public boolean contains(String name) {
        return shardOf.containsKey(name);
    }

    /** The shard holding {@code name}. @throws IllegalArgumentException if absent */
    public LazySafetensorsFile fileOf(String name) {
        String f = shardOf.get(name);
        if (f == null) {
            throw new IllegalArgumentException(directory + " has no tensor '" + name + "'");
        }
        return shards.get(f);
    }

    /** dtype, shape and offsets of {@code name}. */
    public TensorInfo info(String name) {
        return fileOf(name).info(name);
    }

    /** {@link LazySafetensorsFile#floats} of the shard holding {@code name}. */
    public float[] floats(String name) throws IOException {
        return fileOf(name).floats(name);
    }

    /** {@link LazySafetensorsFile#read} of the shard holding {@code name}. */
    public TensorData read(String name) throws IOException {
        return fileOf(name).read(name);
    }

    /** Total bytes of tensor data. */
    public long totalBytes() {
        long n = 0;
        for (LazySafetensorsFile f : shards.values()) {
            for (TensorInfo t : f.header().tensors().values()) {
                n += t.byteLength();
            }
        }
        return n;
    }

    @Override
    public void close() throws IOException {
        IOException first = null;
        for (LazySafetensorsFile f : shards.values()) {
            try {
                f.close();
            } catch (IOException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
