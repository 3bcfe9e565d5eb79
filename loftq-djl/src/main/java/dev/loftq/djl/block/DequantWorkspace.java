package dev.loftq.djl.block;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * One reusable native-order direct buffer per thread, into which an inference forward decodes
 * the weight and over which PyTorch makes a tensor without copying ({@code from_blob} on the
 * CPU). Reusing it avoids what dominates a fresh 64 MB float32 weight on the CPU: allocating and
 * first touching new memory (about 200 ms for 4096 × 4096 on the 2-core development machine,
 * against about 5 ms to decode into memory already mapped).
 *
 * <p>Safe only while nothing keeps the tensor past the operation that reads it: the caller uses
 * it for one synchronous CPU matmul with PyTorch's grad mode off (autograd records nothing),
 * then drops it. (Deciding by the input's {@code requires_grad} instead was tried and corrupted
 * training, which {@code LoraTrainingTest} catches.) Each thread keeps a buffer as large as the largest weight it decoded
 * until {@link #release()}.
 */
final class DequantWorkspace {
    private static final ThreadLocal<ByteBuffer> BUFFER = new ThreadLocal<>();

    private DequantWorkspace() {}

    /** This thread's buffer with room for {@code floats} floats (position 0, little-endian native). */
    static ByteBuffer forThread(int floats) {
        long bytes = (long) floats * Float.BYTES;
        ByteBuffer b = BUFFER.get();
        if (b == null || b.capacity() < bytes) {
            b = ByteBuffer.allocateDirect((int) bytes).order(ByteOrder.nativeOrder());
            BUFFER.set(b);
        }
        b.clear();
        b.limit((int) bytes);
        return b;
    }

    /** Drops this thread's buffer (its memory is freed when the GC collects it). */
    static void release() {
        BUFFER.remove();
    }
}
