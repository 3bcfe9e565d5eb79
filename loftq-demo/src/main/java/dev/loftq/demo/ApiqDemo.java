package dev.loftq.demo;

import dev.loftq.djl.apiq.TargetReport;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.model.BertWeights;
import dev.loftq.djl.model.MiniLmModel;
import dev.loftq.djl.model.ModelResource;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import me.tongfei.progressbar.ProgressBar;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The ApiQ table of issue 8 on all-MiniLM-L6-v2 ({@code ./demo.sh apiq [options]}, a subcommand of
 * {@link MiniLmDemo}): the chosen {@link ApiqMethod} rows run one after another on the calibration
 * sentences (from the start of the pool) and are measured on held-out ones ({@link ApiqComparison}).
 * After each row, {@code results.md}, {@code results.csv} and {@code linear-errors.csv} in
 * {@code --out} are rewritten, so a long run keeps what it finished; each ApiQ-bw row also plots its
 * training loss per block ({@code apiq-bw-int<bits>-loss.png}, {@code apiq-bw-nf<bits>-loss.png}).
 */
@Command(name = "apiq", mixinStandardHelpOptions = true, version = "loftq-demo 0.1.0",
        description = "ApiQ-lw / ApiQ-bw against the QLoRA start and LoftQ on all-MiniLM-L6-v2, r16 alpha 16: mean "
                + "per-Linear output error on the calibration sentences and embedding cosine to fp32 on held-out "
                + "sentences. Progress on stderr, one table row on stdout per finished row.")
public final class ApiqDemo implements Callable<Integer> {
    /** all-MiniLM-L6-v2's encoder layers. */
    static final int ENCODER_LAYERS = 6;
    private static final int MAX_STEPS = 1_000_000;
    private static final String TABLE_HEAD = "| row | method | bits | mean output error (36 Linears) | held-out cosine "
            + "| Spearman | init wall s | load |\n|---|---|---|---|---|---|---|---|\n";

    @Option(names = {"-o", "--out"}, description = "Folder for the tables and plots (default: ${DEFAULT-VALUE}).")
    Path out = Path.of("apiq-out");

    @Option(names = "--rows", split = ",", paramLabel = "ROW", defaultValue = "q2,l2p,l2d,lw2,bw2,q4,l4p,l4d,lw4,bw4",
            description = "Rows to run, in this order (q: QLoRA start on int-k g64, l..p / l..d: LoftQ published / "
                    + "default on NF-k, lw / bw: ApiQ-lw / -bw on int-k g64, lwn / bwn: ApiQ-lw / -bw on NF-k with "
                    + "learned block absmax clipping; the digit is k): "
                    + "${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    List<ApiqMethod> rows;

    @Option(names = "--calibration-sentences", description = "Calibration sentences, from the start of the "
            + "pool of " + Sentences.CALIBRATION_SIZE + " (default: ${DEFAULT-VALUE}).")
    int calibrationSentences = 128;

    @Option(names = "--eval-sentences", description = "Held-out sentences to evaluate on, at least 3 "
            + "(default: ${DEFAULT-VALUE}).")
    int evalSentences = 128;

    @Option(names = "--layers", description = "Encoder layers quantized, from the first, in [1, " + ENCODER_LAYERS
            + "] (default: ${DEFAULT-VALUE}).")
    int layers = ENCODER_LAYERS;

    @Option(names = "--lw-steps", description = "ApiQ-lw steps per Linear, full batch (default: ${DEFAULT-VALUE}).")
    int lwSteps = 60;

    @Option(names = "--bw-steps", description = "ApiQ-bw steps per encoder layer (default: ${DEFAULT-VALUE}).")
    int bwSteps = 100;

    @Option(names = "--bw-batch", description = "ApiQ-bw sentences per step; 0 = all (default: ${DEFAULT-VALUE}).")
    int bwBatch = 4;

    @Option(names = "--clip-lr", description = "ApiQ's AdamW learning rate of the clipping logits "
            + "(default: ${DEFAULT-VALUE}, official).")
    float clipLr = 5e-3f;

    @Option(names = "--lora-lr", description = "ApiQ's AdamW learning rate of A and B (default: ${DEFAULT-VALUE}, "
            + "official).")
    float loraLr = 5e-4f;

    @Option(names = "--hold-out", description = "Fraction of the calibration sentences ApiQ holds out to pick "
            + "each target's best step, in [0, 0.9]; 0 = train on all, keep the last step (default: ${DEFAULT-VALUE}).")
    double holdOut = 0.25;

    @Option(names = "--patience", description = "ApiQ's evaluations (every " + ApiqComparison.EVAL_EVERY
            + " steps) without improvement on the held-out part before a target stops; 0 = never "
            + "(default: ${DEFAULT-VALUE}).")
    int patience = 4;

    @Option(names = "--seed", description = "Seed of every random choice (default: ${DEFAULT-VALUE}).")
    long seed = 42;

    @Option(names = "--no-progress", description = "No progress bar.")
    boolean noProgress;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        long start = System.nanoTime();
        Sentences sentences = Sentences.bundled();
        checkOptions(sentences);
        List<String> calibration = sentences.calibration().subList(0, calibrationSentences);
        List<String> evaluation = sentences.heldOut().subList(0, evalSentences);
        ApiqComparison.Settings settings = new ApiqComparison.Settings(layers, lwSteps, bwSteps, bwBatch, clipLr,
                loraLr, holdOut, patience, seed);
        Files.createDirectories(out);
        PrintWriter stdout = spec.commandLine().getOut();

        BertWeights weights = MiniLmModel.readWeights(ModelResource.classpath(MiniLmModel.ONNX_RESOURCE));
        List<ApiqComparison.Row> done = new ArrayList<>();
        List<String> loads = new ArrayList<>();
        try (DjlBackend backend = DjlBackend.cpu();
                ApiqComparison comparison = new ApiqComparison(backend, weights,
                        ModelResource.classpath(MiniLmModel.TOKENIZER_RESOURCE), calibration, evaluation, settings)) {
            String header = header(comparison, calibration.size(), evaluation.size());
            stdout.println(header);
            stdout.println(TABLE_HEAD.strip());
            stdout.flush();
            long work = 0;
            for (ApiqMethod m : rows) {
                work += comparison.targets(m) + 1L; // its targets, then the measuring
            }
            try (ProgressBar bar = Cli.progressBar("apiq", work, noProgress)) {
                for (ApiqMethod m : rows) {
                    bar.setExtraMessage(String.format(Locale.ROOT, " row %d/%d %s", done.size() + 1, rows.size(),
                            id(m)));
                    ApiqComparison.Row row = comparison.run(m, bar::step);
                    bar.step();
                    done.add(row);
                    loads.add(Cli.load());
                    stdout.println(tableRow(row, loads.get(loads.size() - 1)).strip());
                    stdout.flush();
                    if (m.kind() == ApiqMethod.Kind.APIQ_BW) {
                        Plots.targetLosses(row.reports(), row.label() + ": training loss per encoder layer",
                                out.resolve("apiq-bw-" + (m.normalFloat() ? "nf" : "int") + m.bits() + "-loss.png"));
                    }
                    write(header, done, loads, -1);
                }
            }
            double wall = (System.nanoTime() - start) / 1e9;
            write(header, done, loads, wall);
            stdout.printf(Locale.ROOT, "%nwall time %.0f s; tables written to %s%n", wall,
                    out.toAbsolutePath().normalize());
            stdout.flush();
        }
        return 0;
    }

    private void checkOptions(Sentences sentences) {
        if (rows.isEmpty() || new HashSet<>(rows).size() != rows.size()) {
            throw new IllegalArgumentException("--rows must name each row at most once and at least one, got " + rows);
        }
        int pool = sentences.calibration().size();
        if (calibrationSentences < 1 || calibrationSentences > pool) {
            throw new IllegalArgumentException("--calibration-sentences must be in [1, " + pool + "], got "
                    + calibrationSentences);
        }
        int heldOut = sentences.heldOut().size();
        if (evalSentences < 3 || evalSentences > heldOut) {
            throw new IllegalArgumentException("--eval-sentences must be in [3, " + heldOut + "], got " + evalSentences);
        }
        if (layers < 1 || layers > ENCODER_LAYERS) {
            throw new IllegalArgumentException("--layers must be in [1, " + ENCODER_LAYERS + "], got " + layers);
        }
        checkSteps("--lw-steps", lwSteps);
        checkSteps("--bw-steps", bwSteps);
        if (bwBatch < 0 || bwBatch > calibrationSentences) {
            throw new IllegalArgumentException("--bw-batch must be in [0, " + calibrationSentences
                    + "] (0 = all calibration sentences), got " + bwBatch);
        }
        checkLearningRate("--clip-lr", clipLr);
        checkLearningRate("--lora-lr", loraLr);
        if (!(holdOut >= 0 && holdOut <= 0.9)) {
            throw new IllegalArgumentException("--hold-out must be in [0, 0.9], got " + holdOut);
        }
        if (patience < 0) {
            throw new IllegalArgumentException("--patience must be >= 0 (0 = never stop early), got " + patience);
        }
    }

    private static void checkSteps(String option, int steps) {
        if (steps < 1 || steps > MAX_STEPS) {
            throw new IllegalArgumentException(option + " must be in [1, " + MAX_STEPS + "], got " + steps);
        }
    }

    private static void checkLearningRate(String option, float lr) {
        if (!(lr > 0f) || Float.isInfinite(lr)) {
            throw new IllegalArgumentException(option + " must be finite and > 0, got " + lr);
        }
    }

    private String header(ApiqComparison comparison, int calibration, int evaluation) {
        int first = Sentences.CALIBRATION_SIZE + 1;
        return String.format(Locale.ROOT, "%s: all-MiniLM-L6-v2, encoder layers 1-%d of %d quantized; %d calibration "
                + "sentences (pool lines 1-%d), %d held-out evaluation sentences (lines %d-%d); %s; %d cores, load "
                + "%s at the start%nArguments: %s", Instant.now(), layers, ENCODER_LAYERS, calibration,
                calibration, evaluation, first, first + evaluation - 1, comparison.describe(),
                Runtime.getRuntime().availableProcessors(), Cli.load(),
                String.join(" ", spec.commandLine().getParseResult().originalArgs()));
    }

    private static String tableRow(ApiqComparison.Row r, String load) {
        return String.format(Locale.ROOT, "| %s | %s | %d | %.4f | %.4f | %.4f | %.0f | %s |%n", id(r.method()),
                r.label(), r.method().bits(), r.meanOutputError(), r.cosine(), r.spearman(), r.seconds(), load);
    }

    private static String id(ApiqMethod m) {
        return m.name().toLowerCase(Locale.ROOT);
    }

    /** Rewrites results.md, results.csv and linear-errors.csv; {@code wall} < 0 while rows remain. */
    private void write(String header, List<ApiqComparison.Row> done, List<String> loads, double wall)
            throws IOException {
        StringBuilder md = new StringBuilder("# ApiQ on all-MiniLM-L6-v2\n\n").append(header).append("\n\n")
                .append(TABLE_HEAD);
        StringBuilder csv = new StringBuilder("row,method,bits,mean_output_error,cosine,spearman,init_seconds,load\n");
        StringBuilder linear = new StringBuilder("row,path,output_error\n");
        StringBuilder details = new StringBuilder("\n## Per row\n");
        for (int i = 0; i < done.size(); i++) {
            ApiqComparison.Row r = done.get(i);
            String id = id(r.method());
            md.append(tableRow(r, loads.get(i)));
            csv.append(String.format(Locale.ROOT, "%s,\"%s\",%d,%.6f,%.6f,%.6f,%.2f,%s%n", id, r.label(),
                    r.method().bits(), r.meanOutputError(), r.cosine(), r.spearman(), r.seconds(), loads.get(i)));
            List<String> errors = new ArrayList<>();
            for (Map.Entry<String, Double> e : r.linearErrors().entrySet()) {
                linear.append(String.format(Locale.ROOT, "%s,%s,%.6f%n", id, e.getKey(), e.getValue()));
                errors.add(String.format(Locale.ROOT, "%.3f", e.getValue()));
            }
            details.append("\n### ").append(id).append(": ").append(r.label()).append("\n\n");
            for (TargetReport t : r.reports()) {
                details.append("    ").append(t).append('\n');
            }
            details.append("    output error per Linear, in model order: ").append(String.join(" ", errors))
                    .append('\n');
        }
        md.append(details);
        md.append(wall < 0 ? String.format(Locale.ROOT, "%n(running: %d of %d rows done)%n", done.size(), rows.size())
                : String.format(Locale.ROOT, "%nwall time %.0f s%n", wall));
        Files.writeString(out.resolve("results.md"), md, StandardCharsets.UTF_8);
        Files.writeString(out.resolve("results.csv"), csv, StandardCharsets.UTF_8);
        Files.writeString(out.resolve("linear-errors.csv"), linear, StandardCharsets.UTF_8);
    }
}
