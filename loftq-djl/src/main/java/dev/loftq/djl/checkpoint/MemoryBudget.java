package dev.loftq.djl.checkpoint;

/**
 * A counting budget of bytes: a worker reserves the estimated footprint of its tensor before
 * loading it and releases it when done, so concurrent work never holds more than the budget. A
 * request larger than the whole budget is granted alone (when nothing else is reserved), so one
 * big tensor still runs. Thread-safe.
 */
final class MemoryBudget {
    private final long capacity;
    private long used;

    MemoryBudget(long capacity) {
        this.capacity = capacity;
    }

    /** Blocks until {@code bytes} fit (or nothing else is reserved); returns the amount reserved. */
    synchronized long acquire(long bytes) throws InterruptedException {
        long want = Math.min(bytes, capacity);
        while (used > 0 && used + want > capacity) {
            wait();
        }
        used += want;
        return want;
    }

    /** Returns a reservation. */
    synchronized void release(long reserved) {
        used -= reserved;
        notifyAll();
    }
}
