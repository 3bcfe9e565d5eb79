package dev.loftq.demo;

import java.io.BufferedReader;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The demo's English sentences: one per line, lines starting with {@code #} and blank lines
 * skipped. The first {@value #CALIBRATION_SIZE} sentences are the calibration pool (fine-tuning,
 * calibration data for ApiQ), the rest the held-out evaluation set. The bundled file is
 * {@value #RESOURCE}; keep its path stable, other modules read it.
 *
 * @param all every sentence, in file order
 */
public record Sentences(List<String> all) {
    /** Classpath name of the bundled sentences. */
    public static final String RESOURCE = "dev/loftq/demo/sentences.txt";
    /** Sentences 1 … 192 are the calibration pool. */
    public static final int CALIBRATION_SIZE = 192;

    /** Copies the list. */
    public Sentences {
        all = List.copyOf(all);
    }

    /** The bundled sentences ({@value #RESOURCE}). */
    public static Sentences bundled() throws IOException {
        return fromClasspath(RESOURCE);
    }

    /**
     * Reads a UTF-8 sentences file from the classpath.
     *
     * @param resource classpath name, e.g. {@value #RESOURCE}
     * @throws FileNotFoundException if there is no such resource
     * @throws IOException if it cannot be read or holds no sentence
     */
    public static Sentences fromClasspath(String resource) throws IOException {
        InputStream in = Sentences.class.getClassLoader().getResourceAsStream(resource);
        if (in == null) {
            throw new FileNotFoundException("classpath resource " + resource
                    + " not found; expected a UTF-8 text file with one sentence per line");
        }
        List<String> lines = new ArrayList<>();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            for (String line = r.readLine(); line != null; line = r.readLine()) {
                String s = line.strip();
                if (!s.isEmpty() && !s.startsWith("#")) {
                    lines.add(s);
                }
            }
        }
        if (lines.isEmpty()) {
            throw new IOException("classpath resource " + resource
                    + " holds no sentence; expected one sentence per line ('#' lines are comments)");
        }
        return new Sentences(lines);
    }

    /** Sentences 1 … {@value #CALIBRATION_SIZE} (all of them if there are fewer). */
    public List<String> calibration() {
        return all.subList(0, Math.min(CALIBRATION_SIZE, all.size()));
    }

    /** The sentences after the calibration pool: the held-out evaluation set. */
    public List<String> heldOut() {
        return all.subList(Math.min(CALIBRATION_SIZE, all.size()), all.size());
    }
}
