package dev.loftq.djl.backend;

import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;

/** For tests of memory that autograd keeps: making the JVM free what Java no longer reaches. */
public final class DirectBuffers {
    private DirectBuffers() {}

    /** Runs the GC until the count of Java direct buffers stops falling (their memory freed). */
    public static void freeUnreachable() throws InterruptedException {
        BufferPoolMXBean direct = ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)
                .stream().filter(b -> b.getName().equals("direct")).findFirst().orElseThrow();
        long last = -1;
        for (int i = 0; i < 50; i++) {
            System.gc();
            Thread.sleep(20);
            long now = direct.getCount();
            if (now == last) {
                return;
            }
            last = now;
        }
    }
}
