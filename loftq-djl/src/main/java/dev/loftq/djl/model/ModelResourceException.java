package dev.loftq.djl.model;

import java.io.IOException;

/**
 * A model resource (ONNX file, tokenizer.json) is missing, truncated or not what the loader
 * expected. The message names the resource (and the tensor or node where there is one), what was
 * found and what was expected.
 */
public class ModelResourceException extends IOException {
    private static final long serialVersionUID = 1L;

    /** A format error without a cause. */
    public ModelResourceException(String message) {
        super(message);
    }

    /** A format error caused by a lower-level read error. */
    public ModelResourceException(String message, Throwable cause) {
        super(message, cause);
    }
}
