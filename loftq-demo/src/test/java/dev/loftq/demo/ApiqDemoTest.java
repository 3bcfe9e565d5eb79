package dev.loftq.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code ./demo.sh apiq}: its options, their checks, and a tiny real run. */
class ApiqDemoTest {
    /** Runs {@code loftq-demo args} as {@code ./demo.sh} does; returns exit code, stdout and stderr. */
    private static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = Cli.commandLine(new MiniLmDemo());
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int code = cl.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    private record Run(int code, String out, String err) {}

    @Test
    void defaultsAreTheIssuesSetupAndRowsParseCaseInsensitively() {
        CommandLine cl = Cli.commandLine(new MiniLmDemo());
        CommandLine.ParseResult parsed = cl.parseArgs("apiq");
        ApiqDemo d = parsed.subcommand().commandSpec().commandLine().getCommand();
        // the issue's rows; the NF-k variant (lwn, bwn) only when asked for
        assertEquals(List.of(ApiqMethod.Q2, ApiqMethod.L2P, ApiqMethod.L2D, ApiqMethod.LW2, ApiqMethod.BW2,
                ApiqMethod.Q4, ApiqMethod.L4P, ApiqMethod.L4D, ApiqMethod.LW4, ApiqMethod.BW4), d.rows);
        assertEquals(128, d.calibrationSentences);
        assertEquals(128, d.evalSentences);
        assertEquals(ApiqDemo.ENCODER_LAYERS, d.layers);

        parsed = Cli.commandLine(new MiniLmDemo()).parseArgs("apiq", "--rows", "bw2,Q4,l2p,lwn2", "--clip-lr", "2e-2",
                "--lora-lr", "5e-3", "--bw-steps", "300", "-o", "x");
        d = parsed.subcommand().commandSpec().commandLine().getCommand();
        assertEquals(List.of(ApiqMethod.BW2, ApiqMethod.Q4, ApiqMethod.L2P, ApiqMethod.LWN2), d.rows);
        assertEquals(2e-2f, d.clipLr);
        assertEquals(5e-3f, d.loraLr);
        assertEquals(300, d.bwSteps);
        assertEquals(Path.of("x"), d.out);
    }

    @Test
    void badOptionsExitWith2AndSayWhatIsAllowed() {
        String[][] cases = {
            {"--calibration-sentences", "0", "--calibration-sentences must be in [1, 192], got 0"},
            {"--eval-sentences", "2", "--eval-sentences must be in [3, 165], got 2"},
            {"--clip-lr", "0", "--clip-lr must be finite and > 0, got 0.0"},
            {"--lora-lr", "-5e-4", "--lora-lr must be finite and > 0, got -5.0E-4"},
            {"--lw-steps", "0", "--lw-steps must be in [1, 1000000], got 0"},
            {"--layers", "7", "--layers must be in [1, 6], got 7"},
            {"--bw-batch", "129", "--bw-batch must be in [0, 128] (0 = all calibration sentences), got 129"},
            {"--rows", "bw2,bw2", "--rows must name each row at most once and at least one, got [BW2, BW2]"},
            {"--rows", "bw3", "expected one of [Q2, L2P, L2D, LW2, BW2, Q4, L4P, L4D, LW4, BW4, LWN2, BWN2, LWN4, BWN4]"},
        };
        for (String[] c : cases) {
            Run r = run("apiq", c[0], c[1], "-o", "never-written");
            assertEquals(2, r.code(), String.join(" ", c) + ": " + r.err());
            assertTrue(r.err().contains(c[2]), "expected '" + c[2] + "' in: " + r.err());
        }
        assertTrue(Files.notExists(Path.of("never-written")), "options are checked before anything is written");
    }

    @Test
    void aTinyBlockwiseRunWritesItsTablesAndPlots(@TempDir Path dir) throws Exception {
        Run r = run("apiq", "-o", dir.toString(), "--rows", "bw2,bwn2", "--calibration-sentences", "2",
                "--eval-sentences", "3", "--layers", "1", "--bw-steps", "1", "--bw-batch", "0", "--no-progress");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("| bw2 | ApiQ-bw, int2 g64, 1 step per encoder layer, full batch | 2 |"),
                r.out());
        assertTrue(r.out().contains("| bwn2 | ApiQ-bw, NF2 g64 with learned absmax clipping, 1 step per encoder "
                + "layer, full batch | 2 |"), r.out());

        String md = Files.readString(dir.resolve("results.md"));
        assertTrue(md.contains("encoder layers 1-1 of 6") && md.contains("wall time"), md);
        assertTrue(md.contains("encoder.layer.0: error"), "the block's report: " + md);

        List<String> csv = Files.readAllLines(dir.resolve("results.csv"));
        assertEquals(3, csv.size(), "header and the two rows: " + csv);
        String[] f = csv.get(1).split(",");
        double error = Double.parseDouble(f[f.length - 5]);
        double cosine = Double.parseDouble(f[f.length - 4]);
        assertTrue(error > 0 && error < 1, "mean output error " + error);
        assertTrue(cosine > 0.5 && cosine < 1, "one int2 layer leaves the embeddings close, not equal: " + cosine);

        List<String> linear = Files.readAllLines(dir.resolve("linear-errors.csv"));
        assertEquals(1 + 2 * 36, linear.size(), "every Linear is measured, quantized or not");
        assertTrue(Files.size(dir.resolve("apiq-bw-int2-loss.png")) > 0);
        assertTrue(Files.size(dir.resolve("apiq-bw-nf2-loss.png")) > 0);
    }
}
