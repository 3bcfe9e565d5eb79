/**
 * File formats: a strict reader and a deterministic, atomic writer of safetensors files
 * ({@link dev.loftq.core.io.Safetensors}), with tensors as little-endian byte views
 * ({@link dev.loftq.core.io.TensorData}) converted to Java arrays on request.
 */
package dev.loftq.core.io;
