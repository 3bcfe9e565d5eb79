package dev.loftq.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class SentencesTest {
    @Test
    void bundledFileHoldsAtLeast320DistinctNonEmptySentencesOfVariedLength() throws IOException {
        List<String> all = Sentences.bundled().all();
        assertTrue(all.size() >= 320, "sentences: " + all.size());
        Set<String> seen = new HashSet<>();
        int shortest = Integer.MAX_VALUE;
        int longest = 0;
        for (String s : all) {
            assertTrue(!s.isBlank() && !s.startsWith("#"), "\"" + s + "\"");
            assertTrue(seen.add(s), "duplicate: " + s);
            int words = s.split("\\s+").length;
            shortest = Math.min(shortest, words);
            longest = Math.max(longest, words);
        }
        assertTrue(shortest >= 3 && shortest <= 4, "shortest sentence: " + shortest + " words");
        assertTrue(longest >= 50 && longest <= 70, "longest sentence: " + longest + " words");
    }

    @Test
    void first192AreTheCalibrationPoolAndTheRestIsHeldOut() throws IOException {
        Sentences s = Sentences.bundled();
        assertEquals(Sentences.CALIBRATION_SIZE, s.calibration().size());
        assertEquals(s.all().size() - 192, s.heldOut().size());
        assertEquals(s.all().get(0), s.calibration().get(0));
        assertEquals(s.all().get(192), s.heldOut().get(0));
        assertTrue(s.heldOut().size() >= 128, "held-out: " + s.heldOut().size());
    }

    @Test
    void missingResourceIsNamed() {
        FileNotFoundException e = assertThrows(FileNotFoundException.class,
                () -> Sentences.fromClasspath("dev/loftq/demo/no-such.txt"));
        assertTrue(e.getMessage().contains("dev/loftq/demo/no-such.txt"), e.getMessage());
    }

    @Test
    void resourceWithoutSentencesIsRejected() {
        IOException e = assertThrows(IOException.class,
                () -> Sentences.fromClasspath("dev/loftq/demo/comments-only.txt"));
        assertTrue(e.getMessage().contains("comments-only.txt") && e.getMessage().contains("no sentence"),
                e.getMessage());
    }
}
