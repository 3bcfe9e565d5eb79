package dev.loftq.demo;

import dev.loftq.core.Checks;

/**
 * One row of the demo's table: backbone format, LoRA rank and initialization (alpha = rank, so
 * s = 1, as the LoftQ paper's preset).
 *
 * @param format NF4 or NF2
 * @param rank LoRA rank r, in [1, 384]
 * @param initialization QLoRA or a LoftQ flavour
 */
public record Variant(Format format, int rank, Initialization initialization) {
    /** Validates. */
    public Variant {
        Checks.notNull("format", format);
        Checks.inRange("rank", rank, 1, 384);
        Checks.notNull("initialization", initialization);
    }

    /** E.g. {@code NF2 r16 LoftQ default}. */
    public String label() {
        return format + " r" + rank + " " + initialization.label();
    }
}
