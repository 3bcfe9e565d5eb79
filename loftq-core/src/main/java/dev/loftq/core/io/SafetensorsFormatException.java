package dev.loftq.core.io;

import java.io.IOException;

/**
 * A safetensors file that violates the format. The message names the file, the tensor (when one
 * is at fault), what was expected and what was found.
 */
public class SafetensorsFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    /** @param message names the file, the tensor, and expected vs actual */
    public SafetensorsFormatException(String message) {
        super(message);
    }

    /** @param message names the file, the tensor, and expected vs actual; cause: the parser's */
    public SafetensorsFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
