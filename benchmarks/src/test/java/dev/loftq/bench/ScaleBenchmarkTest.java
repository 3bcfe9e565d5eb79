package dev.loftq.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.io.SafetensorsDType;
import dev.loftq.djl.checkpoint.ProgressListener;
import dev.loftq.djl.io.SafetensorsCheckpoint;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The generator and the runner, on one layer of a narrowed LLaMA shape (CI-sized). */
class ScaleBenchmarkTest {
    @TempDir
    Path tmp;

    @Test
    void generatorWritesAShardedLlamaShapedBf16Checkpoint() throws Exception {
        SyntheticLlamaCheckpoint.Shape shape = new SyntheticLlamaCheckpoint.Shape(2, 128, 344, 500,
                4);
        Path dir = tmp.resolve("m");
        long total = SyntheticLlamaCheckpoint.write(dir, shape, 400_000, 1);
        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(dir)) {
            assertTrue(c.isSharded());
            assertTrue(c.shards().size() >= 3, "shards: " + c.shards().keySet());
            assertEquals(2 * 9 + 3, c.names().size());
            assertEquals(total, c.totalBytes());
            assertEquals(SafetensorsDType.BF16, c.info("model.layers.1.mlp.down_proj.weight")
                    .dtype());
            float[] w = c.floats("model.layers.0.mlp.up_proj.weight");
            double sum2 = 0;
            double sum4 = 0;
            for (float x : w) {
                sum2 += x * (double) x;
                sum4 += Math.pow(x, 4);
            }
            double kurtosis = sum4 * w.length / (sum2 * sum2);
            assertTrue(kurtosis > 6, "heavy tails: kurtosis " + kurtosis); // Gaussian: 3
        }
        // Same shape and seed: same bytes.
        Path again = tmp.resolve("again");
        SyntheticLlamaCheckpoint.write(again, shape, 400_000, 1);
        for (String f : new String[] {"model-00001-of-00003.safetensors", "config.json",
                "model.safetensors.index.json"}) {
            assertEquals(-1L, Files.mismatch(dir.resolve(f), again.resolve(f)), f);
        }
    }

    @Test
    void runnerQuantizesOneLayerAndMeasures() throws Exception {
        SyntheticLlamaCheckpoint.Shape shape = new SyntheticLlamaCheckpoint.Shape(1, 128, 344, 500,
                4);
        ScaleBenchmark.Measurement m = ScaleBenchmark.run(tmp, shape, 2, 64 << 20,
                ProgressListener.NONE);
        assertEquals(7, m.tensors());
        assertTrue(m.seconds() > 0);
        assertTrue(m.peakRssBytes() > 0);
        assertTrue(m.meanError() < m.meanQloraError(), m.toString());
        assertTrue(Files.isRegularFile(tmp.resolve("out/loftq_report.json")));
    }
}
