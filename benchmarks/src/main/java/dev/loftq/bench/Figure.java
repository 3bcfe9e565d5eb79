package dev.loftq.bench;

/**
 * One measured figure as it is recorded in {@code benchmarks/results/*.json}: a value with its
 * unit, and for ratios the baseline it was divided by, measured in the same run.
 *
 * @param name what was measured, e.g. {@code "matmul 1024x1024x1024 djl-backend"}
 * @param value the measurement
 * @param unit e.g. {@code "ms/op"}, {@code "GB/s"}, {@code "ratio"}
 * @param error half-width of the 99.9 % confidence interval JMH reports, or NaN
 * @param baselineName for a ratio, the figure it is relative to; otherwise null
 * @param baselineValue for a ratio, the baseline's value; otherwise NaN
 */
public record Figure(String name, double value, String unit, double error, String baselineName,
        double baselineValue) {

    /** A plain measurement. */
    public static Figure of(String name, double value, String unit, double error) {
        return new Figure(name, value, unit, error, null, Double.NaN);
    }

    /** {@code value / baseline.value}, recorded with the baseline's name and value. */
    public static Figure ratio(String name, Figure value, Figure baseline) {
        return new Figure(name, value.value() / baseline.value(), "ratio", Double.NaN,
                baseline.name(), baseline.value());
    }
}
