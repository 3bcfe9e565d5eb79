package dev.loftq.quant.quantizer;

import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;

/**
 * bitsandbytes' row-wise int8 quantization ({@code int8_vectorwise_quant} without the outlier
 * threshold; Dettmers et al., LLM.int8(), 2022). The tensor is viewed as {@code [rows, in]} with
 * {@code in} its last axis; per row {@code absmax = max |x|} (bitsandbytes' {@code SCB}, the
 * stored scale), {@code q = rint(f32(x · f32(127 / absmax)))} in [-127, 127], stored as the
 * unsigned code {@code q + 128}; dequantization is {@code f32(f32(q · absmax) · f32(1/127))} as
 * {@code int8_vectorwise_dequant}. Where bitsandbytes' arithmetic is undefined, q is 0 for an
 * all-zero row (0·∞ there), and a row whose absmax is below {@code 127 / Float.MAX_VALUE} (an
 * infinite factor) is first multiplied by 2^64, exactly, and then quantized by the same formula.
 * Stateless; one shared instance.
 */
public final class Int8RowwiseQuantizer implements Quantizer {
    private static final Int8RowwiseQuantizer INSTANCE = new Int8RowwiseQuantizer();

    /** {@code 7.874015718698502e-3}, the reciprocal of 127 that bitsandbytes multiplies by. */
    private static final float INVERSE_127 = 7.874015718698502e-3f;

    private static final int OFFSET = 128;

    /** Exact pre-scaling of rows whose factor 127 / absmax overflows. */
    private static final float PRESCALE = 0x1p64f;

    private Int8RowwiseQuantizer() {}

    /** The quantizer. */
    public static Int8RowwiseQuantizer bitsandbytes() {
        return INSTANCE;
    }

    @Override
    public int bits() {
        return 8;
    }

    @Override
    public String description() {
        return "bitsandbytes int8 row-wise absmax";
    }

    @Override
    public QuantizedTensor quantize(TensorScope scope, Tensor w, String name) {
        int n = Inputs.numel(w, name);
        int[] shape = w.shape();
        int in = shape[shape.length - 1];
        int rows = n / in;
        QuantizedTensor.Builder out = QuantizedTensor.builder(this, "int8-rowwise", shape);
        try (TensorScope tmp = scope.newChild()) {
            Tensor x = tmp.reshape(w, rows, in);
            Tensor absmax = tmp.maxLast(tmp.abs(x));
            float[] a = tmp.toFloatArray(absmax);
            Inputs.requireFinite(tmp, tmp.reshape(w, n), in, name, a);
            float[] factor = new float[rows];
            float[] prescale = new float[rows];
            boolean overflow = false;
            for (int r = 0; r < rows; r++) {
                factor[r] = a[r] == 0f ? 0f : 127f / a[r];
                prescale[r] = 1f;
                if (Float.isInfinite(factor[r])) {
                    prescale[r] = PRESCALE;
                    factor[r] = 127f / (a[r] * PRESCALE);
                    overflow = true;
                }
            }
            if (overflow) {
                x = tmp.mul(x, tmp.fromHost(prescale, rows, 1)); // exact: a power of two
            }
            Tensor q = tmp.round(tmp.mul(x, tmp.fromHost(factor, rows, 1)));
            Tensor codes = tmp.cast(tmp.reshape(tmp.add(q, OFFSET), n), DType.UINT8);
            out.packed(scope.keep(tmp.pack(codes, 8, PackOrder.LSB_FIRST, OFFSET)), 8,
                    PackOrder.LSB_FIRST);
            out.scales(scope.keep(absmax), in);
        }
        return out.build();
    }

    @Override
    public Tensor dequantize(TensorScope scope, QuantizedTensor q) {
        if (q.quantizer() != this) {
            throw new IllegalArgumentException("dequantize: " + q + " was made by "
                    + q.quantizer().description() + ", not by " + description());
        }
        int rows = q.numBlocks();
        try (TensorScope tmp = scope.newChild()) {
            Tensor c = tmp.add(tmp.cast(q.codes(tmp), DType.FLOAT32), -OFFSET);
            Tensor y = tmp.mul(tmp.reshape(c, rows, q.blockSize()),
                    tmp.reshape(q.scales(tmp), rows, 1));
            return scope.keep(tmp.reshape(tmp.mul(y, INVERSE_127), q.shape()));
        }
    }

    @Override
    public String toString() {
        return "Int8RowwiseQuantizer";
    }
}
