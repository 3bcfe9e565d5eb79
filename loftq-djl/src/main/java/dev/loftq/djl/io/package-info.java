/**
 * Files Python loads unchanged: bitsandbytes 4-bit checkpoints as transformers writes them
 * ({@link dev.loftq.djl.io.BnbCheckpointWriter}, {@link dev.loftq.djl.io.BnbCheckpointReader}),
 * peft LoRA adapter directories ({@link dev.loftq.djl.io.PeftAdapterWriter},
 * {@link dev.loftq.djl.io.PeftAdapterReader}), JSON printed exactly as CPython's {@code json.dumps}
 * ({@link dev.loftq.djl.io.PythonJson}), and atomic file writes
 * ({@link dev.loftq.djl.io.AtomicFiles}). Bad files raise {@code IOException} subclasses naming
 * the file, the tensor or key, and expected vs actual.
 */
package dev.loftq.djl.io;
