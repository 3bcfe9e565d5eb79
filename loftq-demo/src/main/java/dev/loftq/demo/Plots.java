package dev.loftq.demo;

import java.io.IOException;
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

/** The demo's two PNG plots, drawn with XChart (headless AWT). */
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
}
