package dev.loftq.djl.io;

import java.io.IOException;

/**
 * A checkpoint or adapter directory whose content violates its format (bitsandbytes quant-state
 * keys, a peft {@code adapter_config.json}, a sharded index, …) although each file may be
 * well-formed. The message names the file, the tensor or key at fault, what was expected and what
 * was found. (Malformed safetensors bytes raise
 * {@link dev.loftq.core.io.SafetensorsFormatException} instead.)
 */
public class CheckpointFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    /** @param message names the file, the tensor or key, and expected vs actual */
    public CheckpointFormatException(String message) {
        super(message);
    }

    /** @param message names the file, the tensor or key, and expected vs actual */
    public CheckpointFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
