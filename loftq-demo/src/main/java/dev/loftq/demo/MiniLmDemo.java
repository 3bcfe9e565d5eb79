package dev.loftq.demo;

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
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import me.tongfei.progressbar.ProgressBar;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The real-model demo: all-MiniLM-L6-v2 with all 36 Linears quantized to NF4 or NF2 plus LoRA
 * (rank 16 or 64), started by QLoRA, published LoftQ or this library's LoftQ default; a table of
 * weight error and embedding agreement with fp32 on the held-out sentences; a short distillation
 * fine-tuning of the NF2 r16 model's adapters on the calibration sentences; plots and tables into
 * {@code --out}. Configurations run {@code --threads} at a time, each on its own model; the
 * fine-tuning runs after them, alone, on a freshly initialised model. Its subcommand {@code apiq}
 * is {@link ApiqDemo}.
 */
@Command(name = "loftq-demo", mixinStandardHelpOptions = true, version = "loftq-demo 0.1.0",
        description = "LoftQ vs QLoRA on all-MiniLM-L6-v2: weight error, embedding cosine and similarity ranking "
                + "against fp32, and a short adapter fine-tuning. Progress on stderr, the table on stdout.",
        subcommands = ApiqDemo.class)
public final class MiniLmDemo implements Callable<Integer> {
    private static final int[] RANKS = {16, 64};
    private static final int LAYERS = 36;

    @Option(names = {"-o", "--out"}, description = "Folder for the plots and tables (default: ${DEFAULT-VALUE}).")
    Path out = Path.of("demo-out");

    @Option(names = "--iterations", description = "LoftQ alternating steps T (default: ${DEFAULT-VALUE}).")
    int iterations = 5;

    @Option(names = "--eval-sentences", description = "Held-out sentences to evaluate on, at least 3; "
            + "0 = all of them (default: ${DEFAULT-VALUE}).")
    int evalSentences;

    @Option(names = "--steps", description = "Fine-tuning steps; 0 skips fine-tuning (default: ${DEFAULT-VALUE}).")
    int steps = 300;

    @Option(names = "--batch-size", description = "Fine-tuning sentences per step (default: ${DEFAULT-VALUE}).")
    int batchSize = 16;

    @Option(names = "--learning-rate", description = "Fine-tuning Adam learning rate (default: ${DEFAULT-VALUE}).")
    float learningRate = 5e-4f;

    @Option(names = "--finetune", description = "Start of the fine-tuned NF2 r16 model: ${COMPLETION-CANDIDATES} "
            + "(default: ${DEFAULT-VALUE}).")
    Initialization finetuneInit = Initialization.LOFTQ_DEFAULT;

    @Option(names = "--threads", description = "Configurations run at once (default: ${DEFAULT-VALUE}).")
    int threads = 2;

    @Option(names = "--seed", description = "Seed of every random choice (default: ${DEFAULT-VALUE}).")
    long seed = 42;

    @Option(names = "--no-progress", description = "No progress bar.")
    boolean noProgress;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /**
     * Runs the demo (or, with {@code apiq} first, {@link ApiqDemo}) with {@code args} and exits with
     * its code (0 ok, 1 failed, 2 bad arguments).
     */
    public static void main(String[] args) {
        System.setProperty("java.awt.headless", "true");
        if (System.getProperty("ai.djl.offline") == null) {
            System.setProperty("ai.djl.offline", "true"); // natives come from Maven; never download
        }
        System.exit(Cli.commandLine(new MiniLmDemo()).execute(args));
    }

    @Override
    public Integer call() throws IOException, InterruptedException {
        long start = System.nanoTime();
        PrintWriter stdout = spec.commandLine().getOut();
        Sentences sentences = Sentences.bundled();
        List<String> heldOut = heldOut(sentences);
        checkOptions();
        Files.createDirectories(out);
        List<Variant> variants = new ArrayList<>();
        for (Format f : Format.values()) {
            for (int r : RANKS) {
                for (Initialization init : Initialization.values()) {
                    variants.add(new Variant(f, r, init));
                }
            }
        }
        stdout.printf(Locale.ROOT, "all-MiniLM-L6-v2: %d configurations x %d Linear layers, LoftQ T=%d, alpha = rank; "
                + "evaluated on %d held-out sentences (%d pairs)%n", variants.size(), LAYERS, iterations,
                heldOut.size(), heldOut.size() * (heldOut.size() - 1) / 2);
        stdout.flush();

        BertWeights weights = MiniLmModel.readWeights(ModelResource.classpath(MiniLmModel.ONNX_RESOURCE));
        ModelResource tokenizer = ModelResource.classpath(MiniLmModel.TOKENIZER_RESOURCE);
        List<VariantResult> results = new ArrayList<>();
        FineTuneResult fineTuned = null;
        ResultTable table;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try (DjlBackend backend = DjlBackend.cpu();
                ProgressBar bar = bar(variants.size() * (LAYERS + 1L) + (steps == 0 ? 0 : LAYERS + steps))) {
            Experiment experiment = new Experiment(backend, weights, tokenizer, heldOut, iterations, seed);
            AtomicInteger done = new AtomicInteger();
            AtomicInteger trained = new AtomicInteger();
            Runnable message = () -> bar.setExtraMessage(String.format(Locale.ROOT, " %d/%d configs%s",
                    done.get(), variants.size(), steps == 0 ? "" : ", step " + trained.get() + "/" + steps));
            message.run();
            List<Future<VariantResult>> rows = new ArrayList<>();
            for (Variant v : variants) {
                rows.add(pool.submit(() -> {
                    VariantResult r = experiment.evaluate(v, bar::step);
                    done.incrementAndGet();
                    bar.step();
                    message.run();
                    return r;
                }));
            }
            for (Future<VariantResult> f : rows) {
                results.add(get(f));
            }
            pool.shutdown();
            table = new ResultTable(results);
            stdout.println();
            stdout.print(table.text());
            stdout.flush();
            Files.writeString(out.resolve("results.csv"), table.csv(), StandardCharsets.UTF_8);
            Plots.configurations(results, out.resolve("configurations.png"));
            // Fine-tuning runs alone, on a model of its own: while other threads evaluated, its
            // gradients turned NaN (seen in two runs), so nothing else touches the engine meanwhile.
            if (steps > 0) {
                Variant tuned = new Variant(Format.NF2, 16, finetuneInit);
                Distillation d = new Distillation(steps, batchSize, learningRate, seed);
                fineTuned = experiment.fineTune(tuned, d, sentences.calibration(), bar::step, step -> {
                    trained.set(step);
                    bar.step();
                    message.run();
                });
            }
        } finally {
            pool.shutdownNow();
        }

        String summary = fineTuned == null ? "" : fineTuneSummary(fineTuned, sentences.calibration().size());
        stdout.print(summary);
        double wall = (System.nanoTime() - start) / 1e9;
        Files.writeString(out.resolve("results.md"), "# loftq-demo results\n\n" + Instant.now() + ": "
                + heldOut.size() + " held-out sentences, LoftQ T=" + iterations + ", seed " + seed + "\n\n"
                + table.markdown() + (summary.isEmpty() ? "" : "\n```\n" + summary.strip() + "\n```\n")
                + String.format(Locale.ROOT, "%nwall time %.0f s%n", wall), StandardCharsets.UTF_8);
        stdout.printf(Locale.ROOT, "%nwall time %.0f s; plots and tables written to %s%n", wall,
                out.toAbsolutePath().normalize());
        stdout.flush();
        return 0;
    }

    private List<String> heldOut(Sentences sentences) {
        List<String> all = sentences.heldOut();
        if (evalSentences == 0) {
            return all;
        }
        if (evalSentences < 3 || evalSentences > all.size()) {
            throw new IllegalArgumentException("--eval-sentences must be 0 or in [3, " + all.size() + "], got "
                    + evalSentences);
        }
        return all.subList(0, evalSentences);
    }

    private void checkOptions() {
        if (steps < 0) {
            throw new IllegalArgumentException("--steps must be >= 0, got " + steps);
        }
        if (threads < 1 || threads > 64) {
            throw new IllegalArgumentException("--threads must be in [1, 64], got " + threads);
        }
        if (steps > 0) {
            new Distillation(steps, batchSize, learningRate, seed); // validates the fine-tuning options up front
        }
    }

    /** Writes the loss curve (PNG, CSV) and returns the summary lines. */
    private String fineTuneSummary(FineTuneResult r, int calibrationSize) throws IOException {
        float[] losses = r.losses();
        int window = Math.max(1, Math.min(calibrationSize / batchSize, losses.length)); // about one epoch
        String label = r.start().variant().label();
        Plots.lossCurve(losses, window, "Distilling " + label + " toward fp32: adapters only, " + calibrationSize
                + " calibration sentences", out.resolve("finetune-loss.png"));
        StringBuilder csv = new StringBuilder("step,loss\n");
        for (int i = 0; i < losses.length; i++) {
            csv.append(i + 1).append(',').append(losses[i]).append('\n');
        }
        Files.writeString(out.resolve("finetune-loss.csv"), csv, StandardCharsets.UTF_8);
        return String.format(Locale.ROOT, "%nfine-tuning %s, adapters only: %d steps x %d of %d calibration sentences, "
                + "Adam lr %s, loss 1 - cos to fp32%n"
                + "  loss, mean of the first / last %d steps:   %.4f -> %.4f%n"
                + "  held-out cosine to fp32:                   %.4f -> %.4f%n"
                + "  held-out Spearman of pair similarities:    %.4f -> %.4f   (training %.0f s)%n",
                label, losses.length, batchSize, calibrationSize, learningRate, window, mean(losses, 0, window),
                mean(losses, losses.length - window, losses.length), r.start().cosine(), r.cosineAfter(),
                r.start().spearman(), r.spearmanAfter(), r.trainSeconds());
    }

    private static double mean(float[] a, int from, int to) {
        double s = 0;
        for (int i = from; i < to; i++) {
            s += a[i];
        }
        return s / (to - from);
    }

    /** The result of a job, its own exception rethrown as is. */
    private static <T> T get(Future<T> f) throws IOException, InterruptedException {
        try {
            return f.get();
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof IOException io) {
                throw io;
            }
            if (c instanceof RuntimeException re) {
                throw re;
            }
            throw new IllegalStateException(c);
        }
    }

    /** One bar on stderr for all the work (layer initializations, evaluations, training steps). */
    private ProgressBar bar(long max) {
        return Cli.progressBar("demo", max, noProgress);
    }
}
