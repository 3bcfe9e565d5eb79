/**
 * Quantization codebooks and their scalar encoders: the NormalFloat tables of QLoRA and LoftQ
 * (NF2, NF3, NF4), bitsandbytes' FP4 and dynamic 8-bit map, LoftQ's uniform tables, and the exact
 * {@link dev.loftq.core.tensor.BucketTable} that reproduces each implementation's choice of code
 * (bitsandbytes' kernel thresholds, torch's first-index argmin). Values are hard-coded bit for bit
 * and checked against the reference vectors of {@code FORMATS.md}.
 */
package dev.loftq.quant.codebook;
