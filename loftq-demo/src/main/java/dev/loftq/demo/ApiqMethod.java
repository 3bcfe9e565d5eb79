package dev.loftq.demo;

/**
 * The rows of the ApiQ comparison (issue 8), at 2 and 4 bits: the QLoRA start (int-k g64, B = 0),
 * LoftQ published and LoftQ default (NF-k, T = 5), ApiQ-lw and ApiQ-bw (int-k g64), and our NF-k
 * variant of ApiQ (learned clipping of NF-k's block absmax, blocks of 64; reported separately). The
 * constant's name is the row's id on the command line ({@code q2}, {@code l2p}, …,
 * case-insensitive).
 */
public enum ApiqMethod {
    /** QLoRA start on ApiQ's int2 g64 quantizer. */
    Q2(Kind.QLORA, 2),
    /** LoftQ published, NF2. */
    L2P(Kind.LOFTQ_PUBLISHED, 2),
    /** LoftQ with this library's defaults, NF2. */
    L2D(Kind.LOFTQ_DEFAULT, 2),
    /** ApiQ layer by layer, int2 g64. */
    LW2(Kind.APIQ_LW, 2),
    /** ApiQ block by block, int2 g64. */
    BW2(Kind.APIQ_BW, 2),
    /** QLoRA start on int4 g64. */
    Q4(Kind.QLORA, 4),
    /** LoftQ published, NF4 (the official LoftQ code's NF4 codebook). */
    L4P(Kind.LOFTQ_PUBLISHED, 4),
    /** LoftQ with this library's defaults, NF4. */
    L4D(Kind.LOFTQ_DEFAULT, 4),
    /** ApiQ layer by layer, int4 g64. */
    LW4(Kind.APIQ_LW, 4),
    /** ApiQ block by block, int4 g64. */
    BW4(Kind.APIQ_BW, 4),
    /** ApiQ layer by layer, NF2 with learned block absmax clipping. */
    LWN2(Kind.APIQ_LW, 2, true),
    /** ApiQ block by block, NF2 with learned block absmax clipping. */
    BWN2(Kind.APIQ_BW, 2, true),
    /** ApiQ layer by layer, NF4 with learned block absmax clipping. */
    LWN4(Kind.APIQ_LW, 4, true),
    /** ApiQ block by block, NF4 with learned block absmax clipping. */
    BWN4(Kind.APIQ_BW, 4, true);

    /** The method behind a row. */
    enum Kind { QLORA, LOFTQ_PUBLISHED, LOFTQ_DEFAULT, APIQ_LW, APIQ_BW }

    private final Kind kind;
    private final int bits;
    private final boolean normalFloat;

    ApiqMethod(Kind kind, int bits) {
        this(kind, bits, false);
    }

    ApiqMethod(Kind kind, int bits, boolean normalFloat) {
        this.kind = kind;
        this.bits = bits;
        this.normalFloat = normalFloat;
    }

    Kind kind() {
        return kind;
    }

    /** Bits per weight of the backbone. */
    public int bits() {
        return bits;
    }

    /** Whether an ApiQ row learns NF-k's block absmax clipping instead of int-k's. */
    public boolean normalFloat() {
        return normalFloat;
    }

    /** Whether the row runs ApiQ (-lw or -bw) rather than wrapping the model with LoRA. */
    public boolean apiq() {
        return kind == Kind.APIQ_LW || kind == Kind.APIQ_BW;
    }

    /** The LoRA wrapper's initialization of a non-ApiQ row. */
    Initialization initialization() {
        return switch (kind) {
            case QLORA -> Initialization.QLORA;
            case LOFTQ_PUBLISHED -> Initialization.LOFTQ_PUBLISHED;
            case LOFTQ_DEFAULT -> Initialization.LOFTQ_DEFAULT;
            case APIQ_LW, APIQ_BW -> throw new IllegalStateException(this + " runs ApiQ, not the LoRA wrapper");
        };
    }
}
