package dev.loftq.demo;

import dev.loftq.djl.apiq.TargetReport;
import java.io.IOException;
import java.util.Locale;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.markers.SeriesMarkers;

/** The demos' PNG plots, drawn with XChart (headless AWT). */
final class Plots {
    private Plots() {}

    /** Bars per configuration: cosine to fp32, Spearman and mean relative weight error. */
    static void configurations(List<VariantResult> rows, Path png) throws IOException {
        List<String> labels = new ArrayList<>();
        List<Double> cosine = new ArrayList<>();
        List<Double> spearman = new ArrayList<>();
        List<Double> error = new ArrayList<>();
        for (VariantResult r : rows) {
            labels.add(r.variant().label());
            cosine.add(r.cosine());
            spearman.add(r.spearman());
            error.add(r.weightError());
        }
        CategoryChart chart = new CategoryChartBuilder().width(1400).height(700)
                .title("all-MiniLM-L6-v2, all 36 Linears quantized + LoRA: agreement with fp32")
                .xAxisTitle("configuration").yAxisTitle("value").build();
        chart.getStyler().setXAxisLabelRotation(35);
        chart.getStyler().setYAxisMin(0.0);
        chart.getStyler().setYAxisMax(1.0);
        chart.addSeries("mean cosine of embeddings to fp32 (higher is better)", labels, cosine);
        chart.addSeries("Spearman of pairwise similarities (higher is better)", labels, spearman);
        chart.addSeries("mean relative weight error (lower is better)", labels, error);
        BitmapEncoder.saveBitmap(chart, png.toString(), BitmapEncoder.BitmapFormat.PNG);
    }

    /** The distillation loss per step and its running mean over {@code window} steps. */
    static void lossCurve(float[] losses, int window, String title, Path png) throws IOException {
        double[] x = new double[losses.length];
        double[] y = new double[losses.length];
        double[] mean = new double[losses.length];
        double sum = 0;
        for (int i = 0; i < losses.length; i++) {
            x[i] = i + 1;
            y[i] = losses[i];
            sum += losses[i];
            if (i >= window) {
                sum -= losses[i - window];
            }
            mean[i] = sum / Math.min(i + 1, window);
        }
        XYChart chart = new XYChartBuilder().width(1000).height(600).title(title)
                .xAxisTitle("step").yAxisTitle("1 - cosine to fp32 (mini-batch)").build();
        XYSeries raw = chart.addSeries("per step", x, y);
        raw.setMarker(SeriesMarkers.NONE);
        XYSeries smooth = chart.addSeries("running mean over " + window + " steps", x, mean);
        smooth.setMarker(SeriesMarkers.NONE);
        BitmapEncoder.saveBitmap(chart, png.toString(), BitmapEncoder.BitmapFormat.PNG);
    }

    /**
     * ApiQ's training loss (mean squared error of each step's batch) per target, log scale, one line
     * per target labelled with its calibration error before and after.
     */
    static void targetLosses(List<TargetReport> reports, String title, Path png) throws IOException {
        XYChart chart = new XYChartBuilder().width(1000).height(600).title(title)
                .xAxisTitle("step").yAxisTitle("training loss (MSE, log scale)").build();
        chart.getStyler().setYAxisLogarithmic(true);
        for (TargetReport r : reports) {
            double[] loss = r.trainLoss();
            double[] x = new double[loss.length];
            for (int i = 0; i < x.length; i++) {
                x[i] = i + 1;
            }
            String name = String.format(Locale.ROOT, "%s: error %.3f -> %.3f", r.path().replace("encoder.", ""),
                    r.startError(), r.calibrationError());
            chart.addSeries(name, x, loss).setMarker(SeriesMarkers.NONE);
        }
        BitmapEncoder.saveBitmap(chart, png.toString(), BitmapEncoder.BitmapFormat.PNG);
    }
}
