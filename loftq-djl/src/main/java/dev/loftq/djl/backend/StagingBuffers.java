package dev.loftq.djl.backend;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * A small pool of native-order direct buffers for host-to-device copies (GPU uploads; CPU uploads
 * write into the new array's own storage). Allocating a direct buffer costs far more than filling
 * one (the JVM zeroes and accounts it; 64 MB took ~180 ms here), so uploads borrow a buffer, fill
 * it, let PyTorch copy it, and give it back.
 *
 * <p>Keeps at most {@link #MAX_POOLED} buffers of at most {@link #MAX_POOLED_BYTES} bytes each (by
 * default); larger buffers are used once and left to the garbage collector. When the pool is full,
 * a returned buffer replaces the smallest pooled one if it is larger. Thread-safe.
 */
final class StagingBuffers {
    /** Buffers kept for reuse. */
    static final int MAX_POOLED = 2;
    /** Capacity above which a buffer is not kept. */
    static final int MAX_POOLED_BYTES = 64 << 20;
    /** Capacities are rounded up to a multiple of this, so near sizes share a buffer. */
    private static final int GRANULE = 1 << 20;

    private final int maxPooled;
    private final int maxPooledBytes;
    private final List<ByteBuffer> pool;
    private long allocations;

    /** A pool with the default limits. */
    StagingBuffers() {
        this(MAX_POOLED, MAX_POOLED_BYTES);
    }

    /** A pool keeping at most {@code maxPooled} buffers of at most {@code maxPooledBytes} each. */
    StagingBuffers(int maxPooled, int maxPooledBytes) {
        this.maxPooled = maxPooled;
        this.maxPooledBytes = maxPooledBytes;
        this.pool = new ArrayList<>(maxPooled);
    }

    /**
     * A buffer with position 0, limit {@code bytes} and native byte order, owned by the caller
     * until {@link #release}.
     */
    ByteBuffer acquire(int bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("staging: bytes must be >= 0, got " + bytes);
        }
        ByteBuffer buf = null;
        synchronized (this) {
            int best = -1;
            for (int i = 0; i < pool.size(); i++) {
                int cap = pool.get(i).capacity();
                if (cap >= bytes && (best < 0 || cap < pool.get(best).capacity())) {
                    best = i;
                }
            }
            if (best >= 0) {
                buf = pool.remove(best);
            } else {
                allocations++;
            }
        }
        if (buf == null) {
            long rounded = ((long) bytes + GRANULE - 1) / GRANULE * GRANULE;
            int cap = (int) Math.min(Integer.MAX_VALUE - 8, Math.max(GRANULE, rounded));
            buf = ByteBuffer.allocateDirect(cap).order(ByteOrder.nativeOrder());
        }
        buf.clear();
        buf.limit(bytes);
        return buf;
    }

    /** Gives a buffer from {@link #acquire} back; the caller must not use it afterwards. */
    void release(ByteBuffer buf) {
        if (buf.capacity() > maxPooledBytes) {
            return;
        }
        synchronized (this) {
            if (pool.size() < maxPooled) {
                pool.add(buf);
                return;
            }
            int smallest = 0;
            for (int i = 1; i < pool.size(); i++) {
                if (pool.get(i).capacity() < pool.get(smallest).capacity()) {
                    smallest = i;
                }
            }
            if (pool.get(smallest).capacity() < buf.capacity()) {
                pool.set(smallest, buf);
            }
        }
    }

    /** Drops every pooled buffer. */
    synchronized void clear() {
        pool.clear();
    }

    /** Number of direct buffers allocated so far (tests). */
    synchronized long allocations() {
        return allocations;
    }

    /** Number of buffers in the pool (tests). */
    synchronized int pooled() {
        return pool.size();
    }
}
