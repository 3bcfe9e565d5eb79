package dev.loftq.demo;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.DelegatingProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine;

/** What the demo's commands share: picocli set-up, the progress bar, the machine's load. */
final class Cli {
    private Cli() {}

    /**
     * A command line for {@code command} and its subcommands: enum values case-insensitive, and an
     * exception from a run printed as one line, exiting 2 for an {@link IllegalArgumentException}
     * (bad arguments) and 1 otherwise.
     */
    static CommandLine commandLine(Object command) {
        CommandLine cl = new CommandLine(command);
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
            commandLine.getErr().println(commandLine.getCommandName() + ": error: "
                    + (e.getMessage() == null ? e : e.getMessage()));
            return e instanceof IllegalArgumentException ? 2 : 1;
        });
        return cl;
    }

    /** One ASCII bar on stderr, updated every second; {@code quiet} draws nothing. */
    static ProgressBar progressBar(String task, long max, boolean quiet) {
        return new ProgressBarBuilder().setTaskName(task).setInitialMax(max)
                .setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(1000).continuousUpdate()
                .setConsumer(quiet ? new DelegatingProgressBarConsumer(s -> { })
                        : new ConsoleProgressBarConsumer(System.err))
                .build();
    }

    /** The 1-minute load average (Linux), or "?" where there is none: timings are noisy under load. */
    static String load() {
        try {
            String[] fields = Files.readString(Path.of("/proc/loadavg")).strip().split(" ");
            return fields[0];
        } catch (IOException | RuntimeException e) {
            return "?";
        }
    }
}
