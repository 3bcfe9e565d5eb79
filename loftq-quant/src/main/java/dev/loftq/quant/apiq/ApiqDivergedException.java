package dev.loftq.quant.apiq;

/**
 * A target's loss became NaN or infinite: the message names the target and the step; the best
 * parameters seen before it are kept in {@link #best()}.
 */
public final class ApiqDivergedException extends IllegalStateException {
    private static final long serialVersionUID = 1L;
    private final transient ApiqResult best;

    ApiqDivergedException(String message, ApiqResult best) {
        super(message);
        this.best = best;
    }

    /** The result with the best parameters seen before the loss diverged. */
    public ApiqResult best() {
        return best;
    }
}
