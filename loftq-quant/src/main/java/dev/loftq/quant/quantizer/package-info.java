/**
 * Weight quantizers written once over the tensor SPI, so they run on every backend:
 * {@link dev.loftq.quant.quantizer.Quantizer} (the small interface any implementation can
 * satisfy), {@link dev.loftq.quant.quantizer.QuantizedTensor} (packed codes, scales, zero points,
 * nested scales, shape and format, with storage accounting),
 * {@link dev.loftq.quant.quantizer.CodebookQuantizer} (bitsandbytes NF4/FP4 with double
 * quantization, LoftQ's native NF-k and uniform quantizers, bit-exact with both),
 * {@link dev.loftq.quant.quantizer.IntAffineQuantizer} (GPTQ/ApiQ-style integer quantization with
 * groups and clipping) and {@link dev.loftq.quant.quantizer.Int8RowwiseQuantizer}.
 *
 * <p>Every quantizer flattens its input row-major: codebook quantizers cut the flat tensor into
 * blocks (1-D and N-D tensors alike, as bitsandbytes does); integer quantizers view it as
 * {@code [rows, in]} with {@code in} the last axis.
 */
package dev.loftq.quant.quantizer;
