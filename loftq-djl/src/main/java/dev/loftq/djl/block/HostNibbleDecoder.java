package dev.loftq.djl.block;

import ai.djl.Device;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.Parallel;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.QuantizedTensor;

/**
 * The forward pass's dequantization of a 4-bit codebook weight on the CPU in one host pass:
 * {@code w[i] = table[code(i)] · scale[i / blockSize]}, the very product
 * {@link CodebookQuantizer#dequantize} computes (through {@code unpack} and {@code decode}), so
 * the result is bit for bit the same, but without the SPI's intermediate code tensor and its
 * transfers. The packed codes and the float32 block scales (nested ones dequantized once, as
 * {@link QuantizedTensor#scales} does) are copied to the host at construction: 0.5 byte per
 * weight plus 4 bytes per block, on top of Q itself. Immutable and thread-safe.
 */
final class HostNibbleDecoder {
    private static final int GRAIN = 1 << 16;

    private final byte[] packed;
    private final float[] scales;
    private final float[] table;
    private final int blockSize;
    private final int numel;
    private final int[] shape;
    private final boolean msbFirst;

    private HostNibbleDecoder(byte[] packed, float[] scales, float[] table, int blockSize,
            int numel, int[] shape, boolean msbFirst) {
        this.packed = packed;
        this.scales = scales;
        this.table = table;
        this.blockSize = blockSize;
        this.numel = numel;
        this.shape = shape;
        this.msbFirst = msbFirst;
    }

    /**
     * A decoder for {@code q}, or null when the fast path does not apply: not a 4-bit
     * {@link CodebookQuantizer} tensor, an odd block size, or a scope on a GPU (where the SPI's
     * device kernels are the fast path).
     */
    static HostNibbleDecoder tryCreate(TensorScope scope, QuantizedTensor q) {
        if (!(q.quantizer() instanceof CodebookQuantizer) || q.bits() != 4
                || q.codebook().isEmpty() || q.blockSize() % 2 != 0
                || q.zeroPoints().isPresent()
                || !Device.Type.CPU.equals(DjlBackend.manager(scope).getDevice().getDeviceType())) {
            return null;
        }
        try (TensorScope tmp = scope.newChild()) {
            byte[] packed = tmp.toByteArray(q.packed());
            float[] scales = tmp.toFloatArray(q.scales(tmp));
            return new HostNibbleDecoder(packed, scales, q.codebook().get().values(), q.blockSize(),
                    q.numel(), q.shape(), q.packOrder() == PackOrder.MSB_FIRST);
        }
    }

    /** deq(Q) as a FLOAT32 tensor of Q's shape, owned by {@code scope}. */
    Tensor dequantize(TensorScope scope) {
        float[] out = new float[numel];
        decode(java.nio.FloatBuffer.wrap(out));
        return scope.fromHost(out, shape);
    }

    /** Number of weights. */
    int numel() {
        return numel;
    }

    /** Q's shape. */
    int[] shape() {
        return shape.clone();
    }

    /** Fills {@code out[0, numel)} (absolute puts; the buffer's position is not used). */
    void decode(java.nio.FloatBuffer out) {
        float[] lut = new float[16];
        System.arraycopy(table, 0, lut, 0, Math.min(16, table.length));
        int hiShift = msbFirst ? 4 : 0;
        int loShift = msbFirst ? 0 : 4;
        Parallel.forRange(numel, GRAIN, blockSize, (from, to) -> {
            int last = (to - 1) / blockSize;
            for (int b = from / blockSize; b <= last; b++) {
                int o = b * blockSize;
                int end = Math.min(o + blockSize, to);
                float s = scales[b];
                int i = o;
                for (; i + 1 < end; i += 2) {
                    int p = packed[i >>> 1];
                    out.put(i, lut[(p >>> hiShift) & 15] * s);
                    out.put(i + 1, lut[(p >>> loShift) & 15] * s);
                }
                if (i < end) {
                    out.put(i, lut[(packed[i >>> 1] >>> hiShift) & 15] * s);
                }
            }
        });
    }
}
