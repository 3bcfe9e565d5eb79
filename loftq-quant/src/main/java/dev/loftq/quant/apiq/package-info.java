/**
 * ApiQ (Liao &amp; Monz, 2024): activation-preserving initialisation of quantized weights and LoRA
 * factors with learnable weight clipping, over the tensor SPI and its autograd. {@link
 * dev.loftq.quant.apiq.Apiq#optimize} fits one target (a Linear, {@link
 * dev.loftq.quant.apiq.LinearTarget}, or a block supplied by a model binding) to calibration
 * samples; the model-level drivers (capture, error propagation, wrapping) live in loftq-djl.
 */
package dev.loftq.quant.apiq;
