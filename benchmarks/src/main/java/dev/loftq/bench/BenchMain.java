package dev.loftq.bench;

import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;

/**
 * Runs one benchmark suite with JMH, prints its figures as a Markdown table and appends them to
 * {@code benchmarks/results/<suite>.json}. Usage: {@code benchmarks/run.sh SUITE} (see
 * benchmarks/RESULTS.md).
 */
public final class BenchMain {
    private record Suite(Class<?> benchmark, Function<Collection<RunResult>, List<Figure>> figures) {}

    private static final Map<String, Suite> SUITES = Map.of(
            "matmul", new Suite(MatmulBenchmark.class, MatmulBenchmark::figures),
            "loftq", new Suite(LoftqBenchmark.class, LoftqBenchmark::figures),
            "quantize", new Suite(QuantizeBenchmark.class, QuantizeBenchmark::figures),
            "lora-forward", new Suite(LoraForwardBenchmark.class, LoraForwardBenchmark::figures));

    private BenchMain() {}

    public static void main(String[] args) throws RunnerException {
        boolean quick = args.length > 0 && args[args.length - 1].equals("--quick");
        int positional = quick ? args.length - 1 : args.length;
        if (positional < 1 || !SUITES.containsKey(args[0])) {
            System.err.println("usage: BenchMain SUITE [results-dir] [--quick]; suites: "
                    + SUITES.keySet() + "; --quick: one short iteration, nothing recorded");
            System.exit(2);
        }
        String name = args[0];
        Path resultsDir = Path.of(positional > 1 ? args[1] : "benchmarks/results");
        Suite suite = SUITES.get(name);
        ChainedOptionsBuilder options = new OptionsBuilder()
                .include(suite.benchmark().getName())
                .forks(1)
                .warmupIterations(quick ? 1 : 3)
                .warmupTime(TimeValue.seconds(quick ? 1 : 2))
                .measurementIterations(quick ? 1 : 5)
                .measurementTime(TimeValue.seconds(quick ? 1 : 2))
                .jvmArgsAppend("-Xmx8g", "-Dai.djl.offline=true", "--add-modules",
                        "jdk.incubator.vector");
        Collection<RunResult> results = new Runner(options.build()).run();
        List<Figure> figures = suite.figures().apply(results);
        System.out.println();
        System.out.println("| figure | value | unit | ± (99.9 %) |");
        System.out.println("|---|---|---|---|");
        for (Figure f : figures) {
            System.out.printf("| %s | %.4g | %s | %s |%n", f.name(), f.value(), f.unit(),
                    Double.isNaN(f.error()) ? "" : String.format("%.2g", f.error()));
        }
        System.out.println("machine: " + ResultsLog.machine());
        if (!quick) {
            new ResultsLog(resultsDir, name, "benchmarks/run.sh " + name).append(figures);
        }
    }
}
