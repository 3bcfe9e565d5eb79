package dev.loftq.demo;

import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.Quantizer;

/** The two backbone formats of the demo, as the LoftQ paper's MiniLM errors were measured. */
public enum Format {
    /** 4-bit NormalFloat, bitsandbytes' NF4 (block 64). */
    NF4(CodebookQuantizer.bitsandbytesNf4()),
    /** 2-bit NormalFloat of the official LoftQ code (block 64). */
    NF2(CodebookQuantizer.loftqNormalFloat(2));

    private final Quantizer quantizer;

    Format(Quantizer quantizer) {
        this.quantizer = quantizer;
    }

    /** The quantizer of the frozen backbone. */
    public Quantizer quantizer() {
        return quantizer;
    }
}
