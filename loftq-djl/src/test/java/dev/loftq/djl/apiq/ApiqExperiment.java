package dev.loftq.djl.apiq;

import ai.djl.nn.core.Linear;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.model.BertWeights;
import dev.loftq.djl.model.MiniLmModel;
import dev.loftq.djl.model.ModelResource;
import dev.loftq.djl.wrap.LayerSelector;
import dev.loftq.djl.wrap.LoraInitializer;
import dev.loftq.djl.wrap.LoraModel;
import dev.loftq.djl.wrap.LoraWrapper;
import dev.loftq.quant.apiq.ApiqConfig;
import dev.loftq.quant.loftq.Loftq;
import dev.loftq.quant.loftq.LoftqConfig;
import dev.loftq.quant.loftq.LoftqResult;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.Quantizer;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import javax.imageio.ImageIO;

/**
 * The issue's table on all-MiniLM-L6-v2: per-Linear output error (Y_q from the method's own
 * propagated inputs, averaged over the 36 Linears, on the calibration sentences) and mean
 * sentence-embedding cosine to fp32 on held-out sentences, for QLoRA init (no adapters), LoftQ
 * (published and default) and ApiQ-lw / ApiQ-bw, at 2 and 4 bits, r16; plus a PNG of ApiQ-bw's
 * loss per block and its wall time. Rows are appended to {@code out/table.md} as they finish.
 *
 * <p>Run (test classpath, for the MiniLM artifact): {@code java ... dev.loftq.djl.apiq.ApiqExperiment
 * sentences=loftq-demo/src/main/resources/dev/loftq/demo/sentences.txt out=target/apiq
 * calib=128 eval=128 lwSteps=60 bwSteps=100 bwBatch=4 clipLr=5e-3 loraLr=5e-4
 * rows=q2,l2p,l2d,lw2,bw2,q4,l4p,lw4}.
 */
public final class ApiqExperiment {
    private static final long SEED = 42;
    private static float clipLr = 5e-3f;
    private static float loraLr = 5e-4f;
    private static final LayerSelector ENCODER_LINEARS =
            LayerSelector.of((p, b) -> p.startsWith("encoder.") && b instanceof Linear);

    private final DjlBackend backend;
    private final BertWeights weights;
    private final MiniLmModel fp;
    private final List<long[]> calib;
    private final List<long[]> eval;
    private final float[][] fpEval;
    private final Path out;

    private ApiqExperiment(DjlBackend backend, BertWeights weights, MiniLmModel fp, List<long[]> calib,
            List<long[]> eval, Path out) {
        this.backend = backend;
        this.weights = weights;
        this.fp = fp;
        this.calib = calib;
        this.eval = eval;
        this.fpEval = fp.embedTokens(eval);
        this.out = out;
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("ai.djl.offline", "true");
        Map<String, String> a = new HashMap<>();
        for (String s : args) {
            int eq = s.indexOf('=');
            a.put(s.substring(0, eq), s.substring(eq + 1));
        }
        List<String> sentences = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(a.get("sentences")), StandardCharsets.UTF_8)) {
            if (!line.isBlank() && !line.startsWith("#")) {
                sentences.add(line.strip());
            }
        }
        clipLr = Float.parseFloat(a.getOrDefault("clipLr", "5e-3"));
        loraLr = Float.parseFloat(a.getOrDefault("loraLr", "5e-4"));
        int calibCount = Integer.parseInt(a.getOrDefault("calib", "128"));
        int evalCount = Integer.parseInt(a.getOrDefault("eval", "128"));
        Path out = Path.of(a.getOrDefault("out", "target/apiq"));
        Files.createDirectories(out);
        BertWeights w = MiniLmModel.readWeights(ModelResource.classpath(MiniLmModel.ONNX_RESOURCE));
        try (DjlBackend backend = DjlBackend.cpu(); MiniLmModel fp = model(w)) {
            List<long[]> calib = Arrays.asList(fp.tokenize(sentences.subList(0, calibCount)));
            List<long[]> eval = Arrays.asList(fp.tokenize(sentences.subList(192, 192 + evalCount)));
            ApiqExperiment e = new ApiqExperiment(backend, w, fp, calib, eval, out);
            e.log(String.format(Locale.ROOT, "%n%s: %d calibration sentences (pool 1-%d), %d held-out "
                    + "(from 193), r16 alpha16; ApiQ AdamW lr %s / %s, wd 0.1, hold-out 25%%; cores %d; load %s",
                    java.time.Instant.now(), calibCount, calibCount, evalCount, clipLr, loraLr,
                    Runtime.getRuntime().availableProcessors(), load()));
            e.log("| method | bits | mean output error (36 Linears) | held-out cosine | wall s |");
            e.log("|---|---|---|---|---|");
            int lwSteps = Integer.parseInt(a.getOrDefault("lwSteps", "60"));
            int bwSteps = Integer.parseInt(a.getOrDefault("bwSteps", "100"));
            int bwBatch = Integer.parseInt(a.getOrDefault("bwBatch", "4"));
            for (String row : a.getOrDefault("rows", "q2,l2p,l2d,lw2,bw2,q4,l4p,lw4").split(",")) {
                switch (row) {
                    case "q2" -> e.wrapped("QLoRA init (int2 g64, no adapter effect)", 2,
                            apiq(2, 1, 0).quantizer(), LoraInitializer.qlora(SEED));
                    case "l2p" -> e.wrapped("LoftQ published (NF2 T5)", 2,
                            CodebookQuantizer.loftqNormalFloat(2), LoraInitializer.loftq(5, SEED));
                    case "l2d" -> e.wrapped("LoftQ default (NF2 T5, MSE scales)", 2,
                            CodebookQuantizer.loftqNormalFloat(2), loftqDefault());
                    case "q4" -> e.wrapped("QLoRA init (int4 g64, no adapter effect)", 4,
                            apiq(4, 1, 0).quantizer(), LoraInitializer.qlora(SEED));
                    case "l4p" -> e.wrapped("LoftQ published (NF4 T5)", 4,
                            CodebookQuantizer.loftqNormalFloat(4), LoraInitializer.loftq(5, SEED));
                    case "lw2" -> e.apiq("ApiQ-lw (int2 g64, " + lwSteps + " steps)", 2, apiq(2, lwSteps, 0), false);
                    case "lw4" -> e.apiq("ApiQ-lw (int4 g64, " + lwSteps + " steps)", 4, apiq(4, lwSteps, 0), false);
                    case "bw2" -> e.apiq("ApiQ-bw (int2 g64, " + bwSteps + " steps, batch " + bwBatch + ")", 2,
                            apiq(2, bwSteps, bwBatch), true);
                    case "bw4" -> e.apiq("ApiQ-bw (int4 g64, " + bwSteps + " steps, batch " + bwBatch + ")", 4,
                            apiq(4, bwSteps, bwBatch), true);
                    default -> throw new IllegalArgumentException("unknown row " + row);
                }
            }
        }
    }

    private static ApiqConfig apiq(int bits, int steps, int batch) {
        return ApiqConfig.builder(SEED).bits(bits).steps(steps).batchSize(batch).holdOut(0.25)
                .evalEvery(10).patience(4).clipOptimizer(clipLr, 0.1f).loraOptimizer(loraLr, 0.1f)
                .build();
    }

    private static MiniLmModel model(BertWeights w) throws IOException {
        return MiniLmModel.builder().setWeights(w)
                .setTokenizer(ModelResource.classpath(MiniLmModel.TOKENIZER_RESOURCE)).build();
    }

    /** LoftQ with this library's defaults (MSE-optimal scales, keep-best), T = 5. */
    private static LoraInitializer loftqDefault() {
        return (scope, w, path, spec) -> {
            LoftqResult r = Loftq.initialize(scope, w, path + ".weight", LoftqConfig.builder(spec.quantizer())
                    .rank(spec.rank()).loraAlpha(spec.alpha()).seed(SEED ^ path.hashCode()).build());
            return new LoraInitializer.Init(r.quantized(), r.loraA(), r.loraB(), r.error());
        };
    }

    private void wrapped(String name, int bits, Quantizer q, LoraInitializer init) throws IOException {
        long t0 = System.nanoTime();
        try (MiniLmModel m = model(weights);
                LoraModel lora = LoraWrapper.builder(backend).setTargets(ENCODER_LINEARS).setSpec(q, 16, 16)
                        .optInitializer(init).optCacheDequantized(true).build().wrap(m.block())) {
            double wall = (System.nanoTime() - t0) / 1e9;
            row(name, bits, m, wall, lora.layers().size());
        }
    }

    private void apiq(String name, int bits, ApiqConfig config, boolean blockwise) throws IOException {
        long t0 = System.nanoTime();
        List<TargetReport> reports = new ArrayList<>();
        try (MiniLmModel m = model(weights)) {
            BertApiq driver = BertApiq.builder(backend, config)
                    .optListener(r -> {
                        reports.add(r);
                        log("    " + r);
                    }).build();
            try (BertApiq.Result r = blockwise ? driver.blockwise(fp.block(), m.block(), calib)
                    : driver.layerwise(fp.block(), m.block(), calib)) {
                double wall = (System.nanoTime() - t0) / 1e9;
                row(name, bits, m, wall, r.layers().size());
                if (blockwise) {
                    plot(reports, out.resolve("apiq-bw-int" + bits + "-loss.png"), name);
                }
            }
        }
    }

    private void row(String name, int bits, MiniLmModel m, double wall, int layers) {
        Map<String, Double> errors = BertApiq.linearOutputErrors(fp.block(), m.block(), calib, backend);
        double mean = errors.values().stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        float[][] e = m.embedTokens(eval);
        double cos = 0;
        for (int i = 0; i < e.length; i++) {
            double dot = 0;
            for (int j = 0; j < e[i].length; j++) {
                dot += (double) e[i][j] * fpEval[i][j];
            }
            cos += dot;
        }
        cos /= e.length;
        log(String.format(Locale.ROOT, "| %s | %d | %.4f | %.4f | %.0f |", name, bits, mean, cos, wall));
        log("    per Linear: " + errors.values().stream().map(v -> String.format(Locale.ROOT, "%.3f", v)).toList()
                + " (" + layers + " wrapped; load " + load() + ")");
    }

    /** Unit-length embeddings: the dot product is the cosine. */
    private void log(String line) {
        System.out.println(line);
        try {
            Files.writeString(out.resolve("table.md"), line + "\n", StandardCharsets.UTF_8,
                    StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        } catch (IOException ex) {
            throw new java.io.UncheckedIOException(ex);
        }
    }

    private static String load() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).strip();
        } catch (IOException e) {
            return "?";
        }
    }

    /** Training loss per step of each block, log scale, one colour per block. */
    private static void plot(List<TargetReport> reports, Path png, String title) throws IOException {
        int w = 900;
        int h = 560;
        int left = 70;
        int right = 170;
        int top = 40;
        int bottom = 50;
        double lo = Double.POSITIVE_INFINITY;
        double hi = Double.NEGATIVE_INFINITY;
        int steps = 1;
        for (TargetReport r : reports) {
            for (double v : r.trainLoss()) {
                lo = Math.min(lo, Math.log10(v));
                hi = Math.max(hi, Math.log10(v));
            }
            steps = Math.max(steps, r.trainLoss().length);
        }
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, w, h);
        g.setColor(Color.BLACK);
        g.drawRect(left, top, w - left - right, h - top - bottom);
        g.drawString(title + ": training loss (MSE, log10) per step, one line per encoder layer", left, 25);
        g.drawString("step (0 - " + steps + ")", left + (w - left - right) / 2 - 30, h - 15);
        g.drawString(String.format(Locale.ROOT, "%.2g", Math.pow(10, hi)), 5, top + 10);
        g.drawString(String.format(Locale.ROOT, "%.2g", Math.pow(10, lo)), 5, h - bottom);
        Color[] colours = {Color.BLUE, Color.RED, new Color(0, 140, 0), Color.MAGENTA, Color.ORANGE, Color.DARK_GRAY};
        double span = Math.max(hi - lo, 1e-9);
        for (int k = 0; k < reports.size(); k++) {
            TargetReport r = reports.get(k);
            g.setColor(colours[k % colours.length]);
            g.setStroke(new BasicStroke(1.5f));
            double[] l = r.trainLoss();
            for (int i = 1; i < l.length; i++) {
                int x0 = left + (int) ((i - 1) * (double) (w - left - right) / steps);
                int x1 = left + (int) (i * (double) (w - left - right) / steps);
                int y0 = top + (int) ((hi - Math.log10(l[i - 1])) / span * (h - top - bottom));
                int y1 = top + (int) ((hi - Math.log10(l[i])) / span * (h - top - bottom));
                g.drawLine(x0, y0, x1, y1);
            }
            g.drawString(String.format(Locale.ROOT, "%s  %.3f->%.3f", r.path().replace("encoder.", ""),
                    r.startError(), r.calibrationError()), w - right + 8, top + 20 + 18 * k);
        }
        g.dispose();
        ImageIO.write(img, "png", png.toFile());
    }
}
