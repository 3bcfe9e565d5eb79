/**
 * The tensor SPI on Deep Java Library's PyTorch engine: {@link dev.loftq.djl.backend.DjlBackend}
 * (CPU by default, CUDA when a GPU and its natives are present), with zero-copy interop between SPI
 * tensors and DJL {@code NDArray}s.
 */
package dev.loftq.djl.backend;
