package dev.loftq.djl.cli;

import dev.loftq.core.io.SafetensorsFormatException;
import dev.loftq.djl.io.CheckpointFormatException;
import java.io.PrintWriter;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code loftq} command: {@code loftq quantize …} and {@code loftq inspect FILE}.
 *
 * <p>Exit codes: {@value #OK} success; {@value #FAILED} the run failed (an I/O error while
 * writing, e.g. a full disk); {@value #USAGE} bad arguments (unknown option, bad value, targets
 * matching nothing, rank too large); {@value #BAD_INPUT} the model or file is missing or
 * malformed (the message names the file and tensor); {@value #BAD_OUTPUT} the output directory is
 * not writable, not empty, or holds a different unfinished run. Errors go to standard error as
 * {@code loftq: error: <message>}.
 */
@Command(name = "loftq", mixinStandardHelpOptions = true, version = "loftq 0.1.0",
        description = "Quantization-aware LoRA initialisation (LoftQ) for safetensors checkpoints.",
        subcommands = {QuantizeCommand.class, InspectCommand.class,
                CommandLine.HelpCommand.class})
public final class LoftqCli implements Runnable {
    /** Success. */
    public static final int OK = 0;
    /** The run failed. */
    public static final int FAILED = 1;
    /** Bad arguments. */
    public static final int USAGE = 2;
    /** Missing or malformed input. */
    public static final int BAD_INPUT = 3;
    /** Output directory unusable. */
    public static final int BAD_OUTPUT = 4;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getErr());
    }

    /** Runs the command with {@code args} and exits with its code. */
    public static void main(String[] args) {
        System.exit(execute(args, new PrintWriter(System.out, true),
                new PrintWriter(System.err, true)));
    }

    /** Runs the command with {@code args}, printing to {@code out} and {@code err}; returns the exit code. */
    public static int execute(String[] args, PrintWriter out, PrintWriter err) {
        CommandLine cl = new CommandLine(new LoftqCli());
        cl.setOut(out);
        cl.setErr(err);
        cl.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
            int code = exitCode(e);
            String message = e.getMessage() == null ? e.toString() : e.getMessage();
            if (e instanceof NoSuchFileException n && n.getReason() != null
                    && !message.contains(n.getReason())) {
                message = n.getFile() + ": " + n.getReason();
            } else if (e instanceof NoSuchFileException n && n.getReason() == null) {
                message = n.getFile() + ": no such file or directory";
            }
            commandLine.getErr().println("loftq: error: " + message);
            if (code == FAILED && e.getCause() != null) {
                commandLine.getErr().println("  caused by: " + e.getCause());
            }
            return code;
        });
        return cl.execute(args);
    }

    /** The exit code for an exception escaping a command. */
    static int exitCode(Throwable e) {
        if (e instanceof IllegalArgumentException) {
            return USAGE;
        }
        if (e instanceof AccessDeniedException || e instanceof DirectoryNotEmptyException
                || e instanceof FileAlreadyExistsException
                || (e instanceof java.io.IOException && String.valueOf(e.getMessage())
                        .contains("unfinished run with a different configuration"))) {
            return BAD_OUTPUT;
        }
        if (e instanceof SafetensorsFormatException || e instanceof CheckpointFormatException
                || e instanceof NoSuchFileException) {
            return BAD_INPUT;
        }
        return FAILED;
    }
}
