/**
 * DJL blocks for quantized weights with LoRA adapters.
 *
 * <p>{@link dev.loftq.djl.block.QuantizedLoraLinear} is a DJL {@code Linear} (so it fits every
 * place a Linear fits) whose forward is {@code y = x·deq(Q)ᵀ + s·(dropout(x)·Aᵀ)·Bᵀ + b}: Q is a
 * packed weight from any {@link dev.loftq.quant.quantizer.Quantizer}, frozen together with the
 * bias (neither is a DJL parameter), and A [r, in], B [out, r] are its only parameters. The weight
 * is dequantized in each forward by default, or once and cached
 * ({@code optCacheDequantized(true)}), trading 4 bytes per weight for speed; {@code merge} makes
 * a plain fp32 Linear for export.
 *
 * <p>Usually built by {@link dev.loftq.djl.wrap.LoraWrapper} rather than by hand.
 */
package dev.loftq.djl.block;
