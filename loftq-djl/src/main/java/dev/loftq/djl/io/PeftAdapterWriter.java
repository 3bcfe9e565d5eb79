package dev.loftq.djl.io;

import dev.loftq.core.io.TensorData;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;

/**
 * Writes a peft adapter directory as {@code PeftModel.save_pretrained} does (FORMATS.md §4):
 * {@code adapter_model.safetensors} with {@code base_model.model.<module>.lora_A.weight}
 * {@code [r, in]} and {@code ….lora_B.weight} {@code [out, r]} and metadata
 * {@code {"format": "pt"}}, and {@code adapter_config.json}. peft loads it with
 * {@code PeftModel.from_pretrained(base, dir)}.
 *
 * <p>No partial output: a new directory is assembled under a temporary name beside it and moved
 * into place; into an existing directory each file is written atomically, the config last.
 * Equal adapters give byte-identical files. Stateless and thread-safe.
 */
public final class PeftAdapterWriter {
    /** The weights file name. */
    public static final String WEIGHTS = "adapter_model.safetensors";
    /** The config file name. */
    public static final String CONFIG = "adapter_config.json";
    /** The prefix peft puts before base-model module paths. */
    public static final String PREFIX = "base_model.model.";

    private PeftAdapterWriter() {}

    /** The safetensors tensors of {@code adapter}: keys {@code base_model.model.<m>.lora_A.weight}, …. */
    public static Map<String, TensorData> tensors(PeftAdapter adapter) {
        Map<String, TensorData> out = new LinkedHashMap<>();
        for (Map.Entry<String, LoraWeights> e : adapter.modules().entrySet()) {
            out.put(PREFIX + e.getKey() + ".lora_A.weight", e.getValue().loraA());
            out.put(PREFIX + e.getKey() + ".lora_B.weight", e.getValue().loraB());
        }
        return out;
    }

    /**
     * Writes {@code adapter} into {@code dir} (created with its parents if absent).
     *
     * @throws IOException naming the path if it cannot be written; nothing partial is left
     */
    public static void write(Path dir, PeftAdapter adapter) throws IOException {
        Path target = dir.toAbsolutePath();
        if (Files.isDirectory(target)) {
            writeFiles(target, adapter);
            return;
        }
        Path parent = target.getParent();
        Files.createDirectories(parent);
        Path staging = Files.createTempDirectory(parent, "." + target.getFileName() + ".");
        try {
            writeFiles(staging, adapter);
            AtomicFiles.makeReadable(staging);
            Files.move(staging, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | RuntimeException e) {
            deleteTree(staging, e);
            throw e;
        }
    }

    private static void writeFiles(Path dir, PeftAdapter adapter) throws IOException {
        SafetensorsStreamWriter.writeAll(dir.resolve(WEIGHTS), tensors(adapter),
                BnbCheckpointWriter.METADATA);
        AtomicFiles.writeString(dir.resolve(CONFIG), adapter.config().toJson());
    }

    static void deleteTree(Path root, Exception failure) {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : (Iterable<Path>) s.sorted(Comparator.reverseOrder())::iterator) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            failure.addSuppressed(e);
        }
    }
}
