package dev.loftq.djl.checkpoint;

import java.nio.file.Path;
import java.util.List;

/**
 * What a {@link CheckpointQuantizer} run did.
 *
 * @param output the output directory
 * @param layers per target layer, sorted by module path
 * @param resumed layers an earlier run had finished
 * @param bytesIn tensor bytes of the input checkpoint
 * @param bytesOut bytes of the output shards
 * @param seconds wall time of this run
 * @param wasResumed whether this run continued an unfinished one
 */
public record QuantizationResult(Path output, List<LayerReport> layers, int resumed,
        long bytesIn, long bytesOut, double seconds, boolean wasResumed) {
    /** Copies the list. */
    public QuantizationResult {
        layers = List.copyOf(layers);
    }

    /** Mean stored error over layers. */
    public double meanError() {
        return layers.stream().mapToDouble(LayerReport::error).average().orElse(0);
    }

    /** Mean QLoRA error over layers. */
    public double meanQloraError() {
        return layers.stream().mapToDouble(LayerReport::qloraError).average().orElse(0);
    }
}
