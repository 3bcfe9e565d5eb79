package dev.loftq.djl.wrap;

import dev.loftq.djl.block.QuantizedLoraLinear;

/**
 * One wrapped layer, as {@link LoraModel#layers()} reports it.
 *
 * @param path the module path, e.g. {@code encoder.layer.0.attention.self.query}
 * @param out output features
 * @param in input features
 * @param format the quantized format, e.g. {@code bnb-nf4}
 * @param bits bits per code
 * @param bitsPerParameter storage bits per weight, scales included
 * @param rank LoRA rank r
 * @param alpha lora_alpha
 * @param rsLora whether s = alpha / √r (else alpha / r)
 * @param scaling s
 * @param initialError ‖W − deq(Q) − s·B·A‖ / ‖W‖ at the start
 * @param block the layer in the tree
 */
public record WrappedLayer(String path, int out, int in, String format, int bits,
        double bitsPerParameter, int rank, float alpha, boolean rsLora, float scaling, double initialError,
        QuantizedLoraLinear block) {

    /** One line: path, shape, bits, rank and error. */
    @Override
    public String toString() {
        return String.format(java.util.Locale.ROOT, "%s [%d, %d] %s %d-bit (%.3f b/w) r=%d alpha=%s "
                + "initial error %.5f", path, out, in, format, bits, bitsPerParameter, rank,
                alpha, initialError);
    }
}
