package dev.loftq.core.tensor;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/**
 * Coarse data parallelism for host kernels: splits {@code [0, n)} into contiguous chunks that run
 * on the common fork-join pool (the calling thread takes part). Chunks are never smaller than
 * {@code grain}, so small inputs stay on the calling thread, and so does everything run inside
 * {@link #serially}.
 */
public final class Parallel {
    private static final ThreadLocal<Boolean> SERIAL = ThreadLocal.withInitial(() -> false);

    private Parallel() {}

    /**
     * Runs {@code work} with every host kernel it calls on the calling thread: for callers that
     * already keep all cores busy with one task per thread (a checkpoint processed layer by layer
     * on several threads), where splitting each kernel again only makes threads wait for each
     * other.
     */
    public static <T, E extends Exception> T serially(Work<T, E> work) throws E {
        if (SERIAL.get()) {
            return work.run();
        }
        SERIAL.set(true);
        try {
            return work.run();
        } finally {
            SERIAL.set(false);
        }
    }

    /** Work run by {@link #serially}. */
    @FunctionalInterface
    public interface Work<T, E extends Exception> {
        T run() throws E;
    }

    /** The body of a parallel loop over the half-open range {@code [from, to)}. */
    @FunctionalInterface
    public interface RangeBody {
        void run(int from, int to);
    }

    /**
     * Runs {@code body} over {@code [0, n)} in chunks whose boundaries are multiples of
     * {@code align} (so blocks are never split) and at least {@code grain} long.
     */
    public static void forRange(int n, int grain, int align, RangeBody body) {
        if (n <= 0) {
            return;
        }
        int threads = ForkJoinPool.getCommonPoolParallelism() + 1;
        if (threads <= 1 || n <= grain || SERIAL.get()) {
            body.run(0, n);
            return;
        }
        int chunks = (int) Math.min(threads * 4L, Math.max(1L, (long) n / Math.max(1, grain)));
        long chunk = ((long) n + chunks - 1) / chunks;
        chunk = ((chunk + align - 1) / align) * align;
        ForkJoinPool.commonPool().invoke(new Split(0, n, (int) Math.min(chunk, n), body));
    }

    private static final class Split extends RecursiveAction {
        private static final long serialVersionUID = 1L;
        private final int from;
        private final int to;
        private final int chunk;
        private final transient RangeBody body;

        Split(int from, int to, int chunk, RangeBody body) {
            this.from = from;
            this.to = to;
            this.chunk = chunk;
            this.body = body;
        }

        @Override
        protected void compute() {
            if (to - from <= chunk) {
                body.run(from, to);
                return;
            }
            // long: to - from + chunk overflows int for ranges near Integer.MAX_VALUE
            long pieces = ((long) to - from + chunk - 1) / chunk;
            int mid = (int) (from + (pieces / 2) * chunk);
            invokeAll(new Split(from, mid, chunk, body), new Split(mid, to, chunk, body));
        }
    }
}
