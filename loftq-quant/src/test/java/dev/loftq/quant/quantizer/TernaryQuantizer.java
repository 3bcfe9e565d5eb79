package dev.loftq.quant.quantizer;

import dev.loftq.core.tensor.BucketTable;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.ScaleMode;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;

/**
 * A user-written quantizer, as an application would write one against the public API only:
 * ternary codes {-s, 0, s} with one scale per tensor, {@code s = mean |x|} (computed on the host in
 * double precision, so identical on every backend), and {@code |x| > s/2} deciding between 0 and
 * ±s. It must work wherever a built-in quantizer does.
 */
public final class TernaryQuantizer implements Quantizer {
    private static final float[] VALUES = {-1f, 0f, 1f};
    private static final BucketTable ENCODER = BucketTable.of(new float[] {-0.5f, 0.5f},
            new int[] {0, 1, 2}, 1);

    @Override
    public QuantizedTensor quantize(TensorScope scope, Tensor w, String name) {
        int n = (int) w.numel();
        if (w.rank() == 0 || n == 0) {
            throw new IllegalArgumentException("tensor " + name + " must have rank >= 1 and elements");
        }
        float[] x = scope.toFloatArray(w);
        double sum = 0;
        for (float v : x) {
            if (!Float.isFinite(v)) {
                throw new IllegalArgumentException("tensor " + name + " has " + v);
            }
            sum += Math.abs(v);
        }
        float s = (float) (sum / n);
        try (TensorScope tmp = scope.newChild()) {
            Tensor scale = tmp.fromHost(new float[] {s}, 1);
            Tensor codes = tmp.encode(tmp.reshape(w, n), scale, n, ScaleMode.DIVIDE, ENCODER);
            return QuantizedTensor.builder(this, "ternary", w.shape())
                    .packed(scope.keep(tmp.pack(codes, 2, PackOrder.MSB_FIRST, 1)), 2,
                            PackOrder.MSB_FIRST)
                    .scales(scope.keep(scale), n)
                    .build();
        }
    }

    @Override
    public Tensor dequantize(TensorScope scope, QuantizedTensor q) {
        try (TensorScope tmp = scope.newChild()) {
            Tensor table = tmp.fromHost(VALUES, VALUES.length);
            Tensor y = tmp.decode(q.codes(tmp), table, q.scales(tmp), q.blockSize());
            return scope.keep(tmp.reshape(y, q.shape()));
        }
    }

    @Override
    public int bits() {
        return 2;
    }

    @Override
    public String description() {
        return "ternary, one scale per tensor (a user-written quantizer)";
    }

    @Override
    public String toString() {
        return "TernaryQuantizer";
    }
}
