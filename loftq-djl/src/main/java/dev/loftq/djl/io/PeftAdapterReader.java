package dev.loftq.djl.io;

import dev.loftq.core.io.Safetensors;
import dev.loftq.core.io.SafetensorsFile;
import dev.loftq.core.io.TensorData;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Reads a peft LoRA adapter directory ({@code adapter_model.safetensors} +
 * {@code adapter_config.json}, FORMATS.md §4). Every tensor must be a
 * {@code base_model.model.<module>.lora_A.weight} or {@code ….lora_B.weight}, each module must have
 * both, and their ranks must agree with the config. Stateless and thread-safe.
 */
public final class PeftAdapterReader {
    private PeftAdapterReader() {}

    /**
     * Reads the adapter in {@code dir}.
     *
     * @throws NoSuchFileException naming the missing file
     * @throws IOException a {@code SafetensorsFormatException} for a malformed weights file, a
     *     {@link CheckpointFormatException} naming the file and key for unexpected or unpaired keys,
     *     inconsistent shapes or a bad config
     */
    public static PeftAdapter read(Path dir) throws IOException {
        Path configPath = dir.resolve(PeftAdapterWriter.CONFIG);
        Path weightsPath = dir.resolve(PeftAdapterWriter.WEIGHTS);
        for (Path p : new Path[] {configPath, weightsPath}) {
            if (!Files.isRegularFile(p)) {
                throw new NoSuchFileException(p.toString(), null,
                        "a peft adapter directory needs " + p.getFileName());
            }
        }
        PeftAdapterConfig config = PeftAdapterConfig.parse(configPath.toString(),
                Files.readString(configPath, StandardCharsets.UTF_8));
        SafetensorsFile f = Safetensors.read(weightsPath);
        Map<String, TensorData[]> pairs = new TreeMap<>();
        for (Map.Entry<String, TensorData> e : f.tensors().entrySet()) {
            String key = e.getKey();
            int which = key.endsWith(".lora_A.weight") ? 0 : key.endsWith(".lora_B.weight") ? 1 : -1;
            if (which < 0 || !key.startsWith(PeftAdapterWriter.PREFIX)) {
                throw new CheckpointFormatException(f.source() + ": tensor '" + key + "' is not "
                        + "base_model.model.<module>.lora_A.weight or .lora_B.weight");
            }
            String module = key.substring(PeftAdapterWriter.PREFIX.length(),
                    key.length() - ".lora_A.weight".length());
            pairs.computeIfAbsent(module, m -> new TensorData[2])[which] = e.getValue();
        }
        if (pairs.isEmpty()) {
            throw new CheckpointFormatException(f.source() + ": holds no LoRA tensors");
        }
        Map<String, LoraWeights> modules = new LinkedHashMap<>();
        for (Map.Entry<String, TensorData[]> e : pairs.entrySet()) {
            String m = e.getKey();
            TensorData[] ab = e.getValue();
            if (ab[0] == null || ab[1] == null) {
                throw new CheckpointFormatException(f.source() + ": module '" + m + "' has "
                        + (ab[0] == null ? "lora_B but no lora_A" : "lora_A but no lora_B"));
            }
            LoraWeights w;
            try {
                w = new LoraWeights(ab[0], ab[1]);
            } catch (IllegalArgumentException ex) {
                throw new CheckpointFormatException(f.source() + ": module '" + m + "': "
                        + ex.getMessage(), ex);
            }
            if (w.rank() != config.rankFor(m)) {
                throw new CheckpointFormatException(f.source() + ": module '" + m + "' has rank "
                        + w.rank() + " but " + configPath + " gives it r = " + config.rankFor(m));
            }
            modules.put(m, w);
        }
        return new PeftAdapter(config, modules);
    }
}
