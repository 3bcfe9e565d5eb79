package dev.loftq.djl.checkpoint;

import dev.loftq.djl.backend.DjlBackend;
import java.nio.file.Path;

/**
 * A run that pauses after each layer, started in a separate JVM by {@link ResumeTest} and killed
 * there mid-way. Arguments: model directory, output directory, pause in milliseconds.
 */
public final class SlowRunMain {
    private SlowRunMain() {}

    public static void main(String[] args) throws Exception {
        long pause = Long.parseLong(args[2]);
        ResumeTest.configure(CheckpointQuantizer.builder(Path.of(args[0]), Path.of(args[1])))
                .backend(DjlBackend.cpu()).listener(new ProgressListener() {
                    @Override
                    public void tensorDone(String module, long bytes, boolean skipped) {
                        try {
                            Thread.sleep(pause);
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        }
                    }
                }).build().run();
    }
}
