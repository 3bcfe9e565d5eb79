package dev.loftq.djl.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A run killed mid-way (a real SIGKILL of another JVM) and restarted gives identical output. */
class ResumeTest {
    @TempDir
    Path tmp;

    static CheckpointQuantizer.Builder configure(CheckpointQuantizer.Builder b) {
        return b.rank(4).iterations(2).threads(2).seed(5);
    }

    @Test
    void aKilledRunResumesToByteIdenticalOutput() throws Exception {
        Path model = TinyLlama.write(tmp.resolve("model"), 3);
        Path reference = tmp.resolve("reference");
        configure(CheckpointQuantizer.builder(model, reference))
                .backend(CheckpointQuantizerTest.BACKEND).build().run();

        Path out = tmp.resolve("resumed");
        Path work = out.resolve(CheckpointQuantizer.WORK_DIR);
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(java, "-Dai.djl.offline=true", "-cp",
                System.getProperty("java.class.path"), SlowRunMain.class.getName(),
                model.toString(), out.toString(), "400").redirectErrorStream(true)
                .redirectOutput(tmp.resolve("child.log").toFile()).start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (workFiles(work) < 5 && p.isAlive() && System.nanoTime() < deadline) {
                Thread.sleep(50);
            }
            assertTrue(p.isAlive(), "the child finished before it could be killed: "
                    + Files.readString(tmp.resolve("child.log")));
        } finally {
            p.destroyForcibly();
            p.waitFor(30, TimeUnit.SECONDS);
        }
        long finished = workFiles(work);
        assertTrue(finished >= 5 && finished < 21, "finished layers at the kill: " + finished);
        assertFalse(Files.exists(out.resolve(CheckpointQuantizer.REPORT)));

        // A different configuration must not resume it.
        IOException e = assertThrows(IOException.class, () -> configure(
                CheckpointQuantizer.builder(model, out)).rank(2)
                .backend(CheckpointQuantizerTest.BACKEND).build().run());
        assertTrue(e.getMessage().contains("holds an unfinished run with a different "
                + "configuration"), e.getMessage());
        assertTrue(Files.isDirectory(work), "a refused resume leaves the work alone");

        QuantizationResult r = configure(CheckpointQuantizer.builder(model, out))
                .backend(CheckpointQuantizerTest.BACKEND).build().run();
        assertTrue(r.wasResumed());
        assertTrue(r.resumed() >= finished - 2, "skipped " + r.resumed() + " of " + finished);
        assertSameTree(reference, out);
    }

    private static long workFiles(Path work) throws IOException {
        if (!Files.isDirectory(work)) {
            return 0;
        }
        try (Stream<Path> s = Files.list(work)) {
            return s.filter(f -> f.getFileName().toString().endsWith(".safetensors")
                    && !f.getFileName().toString().startsWith(".")).count();
        }
    }

    static void assertSameTree(Path a, Path b) throws IOException {
        List<Path> fa = relativeFiles(a);
        assertEquals(fa, relativeFiles(b));
        for (Path rel : fa) {
            assertArrayEquals(Files.readAllBytes(a.resolve(rel)), Files.readAllBytes(b.resolve(rel)),
                    rel.toString());
        }
    }

    static List<Path> relativeFiles(Path root) throws IOException {
        try (Stream<Path> s = Files.walk(root)) {
            return s.filter(Files::isRegularFile).map(root::relativize).sorted().toList();
        }
    }
}
