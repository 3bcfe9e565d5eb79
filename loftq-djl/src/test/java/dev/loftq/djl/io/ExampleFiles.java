package dev.loftq.djl.io;

import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Path;

/**
 * The reference examples of FORMATS.md §3–§4, copied from ../shared/vectors into test resources:
 * a bitsandbytes NF4 (double-quant) checkpoint, a peft adapter of the same LoftQ run, and the two
 * original weights (regenerated with gen_vectors.py's {@code lowrank_plus_noise(71, 64, 64)} and
 * {@code (72, 64, 200, heavy=True)}, see vectors/README.md).
 */
final class ExampleFiles {
    private ExampleFiles() {}

    static Path resource(String name) {
        URL url = ExampleFiles.class.getResource("/vectors/" + name);
        if (url == null) {
            throw new IllegalStateException("test resource vectors/" + name + " is missing");
        }
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static Path bnbCheckpoint() {
        return resource("example_bnb_checkpoint");
    }

    static Path peftAdapter() {
        return resource("example_peft_adapter");
    }

    static Path originalWeights() {
        return resource("example_original_weights.safetensors");
    }
}
