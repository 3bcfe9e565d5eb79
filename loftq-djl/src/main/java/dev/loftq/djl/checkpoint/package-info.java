/**
 * Whole checkpoints: {@link dev.loftq.djl.checkpoint.CheckpointQuantizer} runs LoftQ over every
 * target layer of a (sharded) safetensors checkpoint in parallel under a memory budget, with a
 * mixed precision ({@link dev.loftq.quant.loftq.LoftqPolicy}), a per-layer
 * {@link dev.loftq.djl.checkpoint.LayerCallback} that may roll a layer back, progress events
 * ({@link dev.loftq.djl.checkpoint.ProgressListener}) and resumable work, and writes a
 * transformers + bitsandbytes checkpoint, a peft adapter ({@code loftq_init/}) and a JSON report.
 */
package dev.loftq.djl.checkpoint;
