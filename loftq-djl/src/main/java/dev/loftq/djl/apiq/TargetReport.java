package dev.loftq.djl.apiq;

/**
 * How one ApiQ target (a Linear for ApiQ-lw, an encoder layer for ApiQ-bw) went. Errors are
 * relative output errors {@code Σ‖Y_q − Y_fp‖² / Σ‖Y_fp‖²} on the calibration (training) and
 * held-out sentences, at the start (B = 0, clipping at its initial value) and for the result.
 *
 * @param path the target's module path
 * @param startError calibration error at the start
 * @param calibrationError calibration error of the result
 * @param heldOutStartError held-out error at the start (NaN without a held-out part)
 * @param heldOutError held-out error of the result (NaN without a held-out part)
 * @param trainLoss the training batch loss (mean squared error) of each step
 * @param evalLoss the selection loss at each evaluation
 * @param evalSteps the step of each evaluation
 * @param bestStep the step whose parameters were kept
 * @param seconds wall time of the target (capture and optimisation), 0 if resumed
 * @param resumed whether the target was read from the resume directory instead of trained
 */
public record TargetReport(String path, double startError, double calibrationError,
        double heldOutStartError, double heldOutError, double[] trainLoss, double[] evalLoss,
        int[] evalSteps, int bestStep, double seconds, boolean resumed) {

    @Override
    public String toString() {
        return String.format(java.util.Locale.ROOT,
                "%s: error %.4f -> %.4f, held-out %.4f -> %.4f, best step %d of %d, %.1f s%s", path,
                startError, calibrationError, heldOutStartError, heldOutError, bestStep,
                trainLoss.length, seconds, resumed ? " (resumed)" : "");
    }
}
