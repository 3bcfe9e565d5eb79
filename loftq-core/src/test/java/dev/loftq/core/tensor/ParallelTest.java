package dev.loftq.core.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class ParallelTest {

    @Test
    void coversTheRangeExactlyOnceInAlignedChunks() {
        int n = 1 << 20;
        AtomicLong sum = new AtomicLong();
        List<int[]> chunks = new CopyOnWriteArrayList<>();
        Parallel.forRange(n, 1 << 10, 64, (from, to) -> {
            chunks.add(new int[] {from, to});
            sum.addAndGet((long) to - from);
        });
        assertEquals(n, sum.get());
        for (int[] c : chunks) {
            assertEquals(0, c[0] % 64, "chunk start " + c[0] + " splits a block");
        }
    }

    @Test
    void seriallyKeepsEveryChunkOnTheCallingThread() throws Exception {
        Thread caller = Thread.currentThread();
        List<int[]> chunks = new CopyOnWriteArrayList<>();
        int result = Parallel.serially(() -> {
            Parallel.forRange(1 << 20, 1 << 10, 64, (from, to) -> {
                assertEquals(caller, Thread.currentThread());
                chunks.add(new int[] {from, to});
            });
            return 7;
        });
        assertEquals(7, result);
        assertEquals(1, chunks.size());
        assertEquals(1 << 20, chunks.get(0)[1]);
    }

    @Test
    void seriallyPassesCheckedExceptionsThroughAndEndsOnThem() {
        assertThrows(IOException.class, () -> Parallel.serially(() -> {
            throw new IOException("disk");
        }));
        AtomicLong chunks = new AtomicLong();
        Parallel.forRange(1 << 20, 1 << 10, 64, (from, to) -> chunks.incrementAndGet());
        if (java.util.concurrent.ForkJoinPool.getCommonPoolParallelism() > 0) {
            assertTrue(chunks.get() > 1, "serial mode must end with serially");
        }
    }
}
