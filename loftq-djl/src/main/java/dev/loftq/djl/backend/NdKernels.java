package dev.loftq.djl.backend;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.jni.JniUtils;

/**
 * NDArray recipes whose results are bit-identical to the SPI's scalar definitions where a single
 * PyTorch operation is not. Arguments are validated by {@link DjlScope}.
 *
 * <p>Ownership rule of every method: each array it creates, the result included, is attached to
 * {@code tmp}; inputs are not modified and stay where they are. The caller moves the result out of
 * {@code tmp} before closing it.
 */
final class NdKernels {
    private NdKernels() {}

    /**
     * Attaches {@code r} to {@code m} and returns it: DJL leaves results in the input's manager.
     */
    static NDArray own(NDManager m, NDArray r) {
        r.attach(m);
        return r;
    }

    /**
     * A second handle on {@code a}'s storage, owned by {@code tmp}: for DJL operations that
     * allocate hidden arrays in the manager of their input.
     */
    static NDArray alias(NDManager tmp, NDArray a) {
        return own(tmp, a.reshape(a.getShape()));
    }

    /**
     * {@link Math#max} elementwise with broadcasting: NaN if either is NaN, and {@code +0} over
     * {@code -0}. PyTorch's {@code maximum} returns either zero for a {@code (-0, +0)} pair, so
     * pairs of zeros are replaced by {@code a + b}, which is {@code -0} only if both are.
     */
    static NDArray maximum(NDManager tmp, NDArray a, NDArray b) {
        NDArray r = own(tmp, a.maximum(b));
        NDArray zeros = bothZero(tmp, a, b);
        NDArray sum = own(tmp, a.add(b));
        return own(tmp, NDArrays.where(zeros, sum, r));
    }

    /**
     * {@link Math#min} elementwise with broadcasting: NaN if either is NaN, and {@code -0} under
     * {@code +0}. Pairs of zeros become {@code -((-a) - b)}, which is {@code +0} only if both are.
     */
    static NDArray minimum(NDManager tmp, NDArray a, NDArray b) {
        NDArray r = own(tmp, a.minimum(b));
        NDArray zeros = bothZero(tmp, a, b);
        NDArray negA = own(tmp, a.neg());
        NDArray fix = own(tmp, own(tmp, negA.sub(b)).neg());
        return own(tmp, NDArrays.where(zeros, fix, r));
    }

    private static NDArray bothZero(NDManager tmp, NDArray a, NDArray b) {
        NDArray za = own(tmp, a.eq(0f));
        NDArray zb = own(tmp, b.eq(0f));
        return own(tmp, za.logicalAnd(zb));
    }

    /**
     * {@code Math.min(Math.max(a, lo), hi)} elementwise; NaN stays NaN. PyTorch's {@code clamp}
     * agrees except for the sign of a zero result when a bound is a zero, which takes the exact
     * path.
     */
    static NDArray clamp(NDManager tmp, NDArray a, float lo, float hi) {
        if (lo != 0f && hi != 0f) {
            // not DJL's clip directly: its bounds live in Java memory that autograd must not keep
            return own(tmp, NdScalars.clip(a, lo, hi));
        }
        NDArray loArr = own(tmp, tmp.full(new Shape(), lo, DataType.FLOAT32));
        NDArray hiArr = own(tmp, tmp.full(new Shape(), hi, DataType.FLOAT32));
        return minimum(tmp, maximum(tmp, a, loArr), hiArr);
    }

    /**
     * Correctly rounded float32 square root: PyTorch's float32 CPU kernel is off by one ulp for
     * about one value in six, so the root is taken in float64 and rounded once (the tests check
     * every exponent range against {@code (float) Math.sqrt}). Differentiable: see {@link
     * #exactValue}.
     */
    static NDArray sqrt(NDManager tmp, NDArray a) {
        NDArray d = own(tmp, a.toType(DataType.FLOAT64, false));
        NDArray r = own(tmp, d.sqrt());
        NDArray exact = own(tmp, r.toType(DataType.FLOAT32, false));
        return tracksGradient(a) ? exactValue(tmp, own(tmp, a.sqrt()), exact) : exact;
    }

    /**
     * {@code 1 / (1 + exp(-a))} evaluated in float64 and rounded once: within one ulp of the
     * float64 result, including the subnormal tail below -88 where float32 evaluation underflows to
     * 0. Differentiable: see {@link #exactValue}.
     */
    static NDArray sigmoid(NDManager tmp, NDArray a) {
        NDArray d = own(tmp, a.toType(DataType.FLOAT64, false));
        NDArray r = own(tmp, d.getNDArrayInternal().sigmoid());
        NDArray exact = own(tmp, r.toType(DataType.FLOAT32, false));
        if (!tracksGradient(a)) {
            return exact;
        }
        return exactValue(tmp, own(tmp, a.getNDArrayInternal().sigmoid()), exact);
    }

    /**
     * True when an operation on {@code a} may be recorded for autograd: PyTorch's grad mode is on
     * (a tape is recording). DJL runs dtype conversions under PyTorch's no-grad guard, so the
     * float64 detours above need a differentiable companion then. Not narrowed to arrays that
     * require a gradient: DJL's {@code requiresGrad} is true only for leaves (and arrays that
     * retain their gradient), so it is false for every intermediate result and view of a leaf
     * (ApiQ's clipping logits are slices of one flat leaf), whose gradient would then be cut.
     */
    static boolean tracksGradient(NDArray a) {
        return JniUtils.isGradMode() && a instanceof PtNDArray;
    }

    /**
     * The values of {@code exact} with the gradient of {@code approx} (a float32 evaluation of the
     * same function, within a few ulps): {@code approx + stop(exact - approx)} where that
     * correction is non-zero, else {@code approx}. Two floats that close (or both tiny) have an
     * exact difference, and the sum is then exact too, so the value is {@code exact} bit for bit;
     * where the correction is zero or NaN ({@code approx} equal to {@code exact}, infinite or NaN),
     * {@code approx} keeps its own value, sign of zero included.
     */
    static NDArray exactValue(NDManager tmp, NDArray approx, NDArray exact) {
        NDArray frozen = own(tmp, approx.stopGradient());
        NDArray correction = own(tmp, exact.sub(frozen));
        NDArray corrected = own(tmp, approx.add(correction));
        NDArray nonZero = own(tmp, own(tmp, correction.abs()).gt(0f));
        return own(tmp, NDArrays.where(nonZero, corrected, approx));
    }

    /**
     * FLOAT32 to UINT8: clamped to [0, 255] and rounded half to even; NaN becomes 0 (Java's
     * {@code (int) NaN}), where PyTorch's conversion would be undefined.
     */
    static NDArray toUint8(NDManager tmp, NDArray x) {
        NDArray positive = own(tmp, x.gt(0f));
        NDArray zero = own(tmp, tmp.zeros(new Shape(), DataType.FLOAT32));
        NDArray c = own(tmp, NDArrays.where(positive, x, zero));
        c = own(tmp, c.minimum(255f));
        c = own(tmp, c.round());
        return own(tmp, c.toType(DataType.UINT8, false));
    }

    /**
     * Blockwise absolute maximum over the flat elements of {@code x} ({@code n >= 1} elements):
     * FLOAT32 [ceil(n / blockSize)]. {@code abs} then {@code max} over each block; PyTorch's
     * {@code max} propagates NaN and, over non-negative values, the result is exact.
     */
    static NDArray blockAbsMax(NDManager tmp, NDArray x, int n, int blockSize) {
        NDArray abs = own(tmp, own(tmp, x.reshape(n)).abs());
        int full = n / blockSize;
        int rem = n - full * blockSize;
        NDArray head = null;
        if (full > 0) {
            NDArray blocks = rem == 0 ? abs : own(tmp, abs.get(slice(0, (long) full * blockSize)));
            blocks = own(tmp, blocks.reshape(full, blockSize));
            head = own(tmp, blocks.max(new int[] {1}, false));
        }
        if (rem == 0) {
            return head;
        }
        NDArray tailBlock = own(tmp, abs.get(slice((long) full * blockSize, n)));
        NDArray tail = own(tmp, tailBlock.max(new int[] {0}, true));
        return head == null ? tail : own(tmp, NDArrays.concat(new NDList(head, tail), 0));
    }

    /**
     * Codebook lookup {@code table[codes]}, FLOAT32 of codes' shape. Codes are checked by the
     * caller.
     */
    static NDArray gather(NDManager tmp, NDArray table, NDArray codes) {
        NDArray idx = own(tmp, codes.toType(DataType.INT64, false));
        return own(tmp, table.take(tmp, idx));
    }

    /**
     * Blockwise decoding {@code y[i] = f32(table[codes[i]] * scale[i / blockSize])}, FLOAT32 of
     * codes' shape. As in {@link dev.loftq.core.tensor.HostKernels#decode}, codes past the end of
     * the table read 0.
     *
     * @param n number of codes, >= 1
     */
    static NDArray decode(NDManager tmp, NDArray codes, NDArray table, NDArray scale, int n,
            int blockSize) {
        long len = table.getShape().get(0);
        NDArray lut = table;
        if (len < 256) {
            NDArray pad = own(tmp, tmp.zeros(new Shape(256 - len), DataType.FLOAT32));
            lut = own(tmp, NDArrays.concat(new NDList(table, pad), 0));
        }
        NDArray flatCodes = own(tmp, codes.reshape(n));
        NDArray values = gather(tmp, lut, flatCodes);
        NDArray y = blockwiseMul(tmp, values, scale, n, blockSize);
        return own(tmp, y.reshape(codes.getShape()));
    }

    /**
     * {@code v[i] * s[i / blockSize]} for flat {@code v} [n] and {@code s} [ceil(n / blockSize)].
     */
    static NDArray blockwiseMul(NDManager tmp, NDArray v, NDArray s, int n, int blockSize) {
        int full = n / blockSize;
        int rem = n - full * blockSize;
        if (rem == 0) {
            NDArray blocks = own(tmp, v.reshape(full, blockSize));
            NDArray column = own(tmp, s.reshape(full, 1));
            return own(tmp, own(tmp, blocks.mul(column)).reshape(n));
        }
        NDArray tailV = own(tmp, v.get(slice((long) full * blockSize, n)));
        NDArray tailS = own(tmp, s.get(slice(full, full + 1L)));
        NDArray tail = own(tmp, tailV.mul(tailS));
        if (full == 0) {
            return tail;
        }
        NDArray headV = own(tmp, v.get(slice(0, (long) full * blockSize)));
        NDArray blocks = own(tmp, headV.reshape(full, blockSize));
        NDArray column = own(tmp, own(tmp, s.get(slice(0, full))).reshape(full, 1));
        NDArray head = own(tmp, own(tmp, blocks.mul(column)).reshape((long) full * blockSize));
        return own(tmp, NDArrays.concat(new NDList(head, tail), 0));
    }

    /** The index {@code [from, to)} on axis 0. */
    private static NDIndex slice(long from, long to) {
        return new NDIndex().addSliceDim(from, to);
    }
}
