package dev.loftq.djl.backend;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.BucketTable;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.HostKernels;
import dev.loftq.core.tensor.HostRandom;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.ScaleMode;
import dev.loftq.core.tensor.Shapes;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.function.Function;

/**
 * A {@link TensorScope} over one {@link NDManager}. Every operation validates its arguments as the
 * SPI states, runs in a temporary sub-manager, and attaches only its result to this scope's
 * manager. Not thread-safe (one thread at a time), as the SPI allows.
 */
final class DjlScope implements TensorScope {
    private final DjlBackend backend;
    private final NDManager manager;
    private boolean closed;

    /**
     * A scope over {@code manager}, a sub-manager of the backend's base manager or of a scope's.
     */
    DjlScope(DjlBackend backend, NDManager manager) {
        this.backend = backend;
        this.manager = manager;
    }

    /** Checks that {@code scope} is an open scope of a DJL backend. */
    static DjlScope of(String op, TensorScope scope) {
        if (scope == null) {
            throw new IllegalArgumentException(op + ": scope must not be null");
        }
        if (!(scope instanceof DjlScope s)) {
            throw new IllegalArgumentException(op + ": scope belongs to backend '"
                    + scope.backend().name() + "'; expected a " + DjlBackend.NAME + " scope");
        }
        s.checkOpen(op);
        return s;
    }

    NDManager manager() {
        return manager;
    }

    @Override
    public DjlBackend backend() {
        return backend;
    }

    @Override
    public TensorScope newChild() {
        checkOpen("newChild");
        return new DjlScope(backend, manager.newSubManager());
    }

    @Override
    public <T extends Tensor> T keep(T t) {
        DjlTensor d = in("keep", "t", t);
        if (d.owner() != this) {
            d.moveTo(this);
        }
        return t;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            manager.close();
        }
    }

    @Override
    public boolean isOpen() {
        // A parent's (or the backend's) close closes this scope's sub-manager too.
        return !closed && manager.isOpen();
    }

    @Override
    public String toString() {
        return "DjlScope(" + backend.device() + (isOpen() ? ")" : ", closed)");
    }

    // ---- creation and host copies ---------------------------------------------------------------

    @Override
    public Tensor fromHost(float[] data, int... shape) {
        checkOpen("fromHost");
        int n = checkHostData("fromHost", data == null ? -1 : data.length, shape);
        return out(uploadFloats(data, shape));
    }

    @Override
    public Tensor fromHostBytes(byte[] data, int... shape) {
        checkOpen("fromHostBytes");
        int n = checkHostData("fromHostBytes", data == null ? -1 : data.length, shape);
        return out(uploadBytes(data, shape));
    }

    @Override
    public Tensor full(float value, int... shape) {
        checkOpen("full");
        checkShape("full", shape);
        return out(manager.full(DjlTensor.shape(shape), value, DataType.FLOAT32));
    }

    @Override
    public Tensor randomNormal(long seed, float mean, float std, int... shape) {
        checkOpen("randomNormal");
        int n = checkShape("randomNormal", shape);
        float[] data = HostRandom.normal(seed, mean, std, n);
        return out(uploadFloats(data, shape));
    }

    @Override
    public float[] toFloatArray(Tensor t) {
        DjlTensor d = in("toFloatArray", "t", t);
        requireType("toFloatArray", "t", d, DType.FLOAT32);
        int n = Shapes.numelInt("toFloatArray", d.shape());
        float[] cached = d.hostCopy(); // read once: the copy is softly held
        if (cached != null) {
            return cached.clone();
        }
        float[] out = new float[n];
        if (n > 0) {
            download(d.nd(), n, 4, (buf, from, len) -> buf.asFloatBuffer().get(out, from, len));
        }
        return out;
    }

    /**
     * The values of a FLOAT32 tensor for a host kernel, downloaded once per tensor: a quantizer
     * reads the same weight for its absmax, its scale search and its encoding, and each download
     * of a 4096 x 4096 matrix costs about as much as the kernel. The array is shared: read-only.
     */
    private float[] hostFloats(DjlTensor d) {
        float[] values = d.hostCopy();
        if (values == null) {
            values = toFloatArray(d);
            d.hostCopy(values);
        }
        return values;
    }

    /** {@link #hostFloats} for UINT8 and BOOL tensors. */
    private byte[] hostBytes(DjlTensor d) {
        byte[] values = d.hostBytes();
        if (values == null) {
            values = toByteArray(d);
            d.hostBytes(values);
        }
        return values;
    }

    /** A tensor made from an array a host kernel wrote, which stays as its host copy. */
    private Tensor outHost(float[] values, int... shape) {
        DjlTensor t = (DjlTensor) out(uploadFloats(values, shape));
        t.hostCopy(values);
        return t;
    }

    @Override
    public byte[] toByteArray(Tensor t) {
        DjlTensor d = in("toByteArray", "t", t);
        if (d.dtype() == DType.FLOAT32) {
            throw new IllegalArgumentException("toByteArray: t must be UINT8 or BOOL, got FLOAT32");
        }
        int n = Shapes.numelInt("toByteArray", d.shape());
        byte[] cached = d.hostBytes();
        if (cached != null) {
            return cached.clone();
        }
        byte[] out = new byte[n];
        if (n > 0) {
            download(d.nd(), n, 1, (buf, from, len) -> buf.get(out, from, len));
        }
        return out;
    }

    @Override
    public float item(Tensor t) {
        DjlTensor d = in("item", "t", t);
        requireType("item", "t", d, DType.FLOAT32);
        if (d.numel() != 1) {
            throw new IllegalArgumentException("item: tensor must have exactly 1 element, got "
                    + "shape " + Arrays.toString(d.shape()));
        }
        return toFloatArray(d)[0];
    }

    // ---- shape ----------------------------------------------------------------------------------

    @Override
    public Tensor reshape(Tensor t, int... shape) {
        DjlTensor d = in("reshape", "t", t);
        if (shape == null) {
            throw new IllegalArgumentException("reshape: shape must not be null");
        }
        int[] target = Shapes.resolveReshape("reshape", d.shape(), shape);
        DjlTensor view = (DjlTensor) outView(d, d.nd().reshape(DjlTensor.shape(target)));
        view.shareHostCopy(d);
        return view;
    }

    @Override
    public Tensor transpose(Tensor t) {
        DjlTensor d = in("transpose", "t", t);
        if (d.rank() != 2) {
            throw new IllegalArgumentException("transpose: t must be 2-D, got shape "
                    + Arrays.toString(d.shape()));
        }
        return outView(d, d.nd().transpose());
    }

    @Override
    public Tensor sliceRows(Tensor t, int from, int to) {
        DjlTensor d = in("sliceRows", "t", t);
        if (d.rank() < 1) {
            throw new IllegalArgumentException("sliceRows: t must have rank >= 1, got shape []");
        }
        checkRange("sliceRows", from, to, d.dim(0), "rows", d);
        return outView(d, d.nd().get(manager, new NDIndex().addSliceDim(from, to)));
    }

    @Override
    public Tensor sliceColumns(Tensor t, int from, int to) {
        DjlTensor d = in("sliceColumns", "t", t);
        if (d.rank() != 2) {
            throw new IllegalArgumentException("sliceColumns: t must be 2-D, got shape "
                    + Arrays.toString(d.shape()));
        }
        checkRange("sliceColumns", from, to, d.dim(1), "columns", d);
        return outView(d, d.nd().get(manager, new NDIndex().addAllDim().addSliceDim(from, to)));
    }

    @Override
    public Tensor concat(int axis, Tensor... parts) {
        checkOpen("concat");
        if (parts == null || parts.length == 0) {
            throw new IllegalArgumentException("concat: needs at least one part, got none");
        }
        DjlTensor first = in("concat", "parts[0]", parts[0]);
        int rank = first.rank();
        if (rank == 0) {
            throw new IllegalArgumentException("concat: parts must have rank >= 1, got shape []");
        }
        if (axis < -rank || axis >= rank) {
            throw new IllegalArgumentException("concat: axis must be in [" + -rank + ", "
                    + (rank - 1) + "] for rank " + rank + ", got " + axis);
        }
        int ax = axis < 0 ? axis + rank : axis;
        NDList list = new NDList(parts.length);
        int[] s0 = first.shape();
        for (int i = 0; i < parts.length; i++) {
            DjlTensor p = in("concat", "parts[" + i + "]", parts[i]);
            int[] s = p.shape();
            boolean ok = s.length == rank && p.dtype() == first.dtype();
            for (int k = 0; ok && k < rank; k++) {
                ok = k == ax || s[k] == s0[k];
            }
            if (!ok) {
                throw new IllegalArgumentException("concat: parts[" + i + "] is " + p.dtype() + " "
                        + Arrays.toString(s) + " but parts[0] is " + first.dtype() + " "
                        + Arrays.toString(s0) + "; parts need the same dtype, rank and sizes on "
                        + "every axis except " + ax);
            }
            list.add(p.nd());
        }
        return out(NDArrays.concat(list, ax));
    }

    @Override
    public Tensor cast(Tensor t, DType dtype) {
        DjlTensor d = in("cast", "t", t);
        if (dtype == null) {
            throw new IllegalArgumentException("cast: dtype must not be null");
        }
        DType from = d.dtype();
        if (dtype == DType.BOOL && from != DType.BOOL) {
            throw new IllegalArgumentException("cast: cannot cast " + from + " to BOOL; allowed: "
                    + "FLOAT32 <-> UINT8, BOOL -> FLOAT32 or UINT8, or a copy to the same dtype");
        }
        if (from == dtype) {
            return out(d.nd().duplicate());
        }
        if (dtype == DType.UINT8 && from == DType.FLOAT32) {
            return withTmp(tmp -> NdKernels.toUint8(tmp, d.nd()));
        }
        return out(d.nd().toType(DjlTensor.dataType(dtype), false));
    }

    // ---- arithmetic -----------------------------------------------------------------------------

    @Override
    public Tensor add(Tensor a, Tensor b) {
        return binary("add", a, b, NDArray::add);
    }

    @Override
    public Tensor sub(Tensor a, Tensor b) {
        return binary("sub", a, b, NDArray::sub);
    }

    @Override
    public Tensor mul(Tensor a, Tensor b) {
        return binary("mul", a, b, NDArray::mul);
    }

    @Override
    public Tensor div(Tensor a, Tensor b) {
        return binary("div", a, b, NDArray::div);
    }

    // The scalar operand is a PyTorch allocation, not DJL's Number overload (a tensor over a Java
    // buffer, freed at a later GC while autograd may still hold it): see NdScalars.
    @Override
    public Tensor add(Tensor a, float s) {
        return out(NdScalars.add(f32("add", "a", a).nd(), s));
    }

    @Override
    public Tensor mul(Tensor a, float s) {
        return out(NdScalars.mul(f32("mul", "a", a).nd(), s));
    }

    @Override
    public Tensor div(Tensor a, float s) {
        return out(NdScalars.div(f32("div", "a", a).nd(), s));
    }

    @Override
    public Tensor abs(Tensor a) {
        return out(f32("abs", "a", a).nd().abs());
    }

    @Override
    public Tensor neg(Tensor a) {
        return out(f32("neg", "a", a).nd().neg());
    }

    @Override
    public Tensor sqrt(Tensor a) {
        DjlTensor d = f32("sqrt", "a", a);
        return withTmp(tmp -> NdKernels.sqrt(tmp, d.nd()));
    }

    @Override
    public Tensor round(Tensor a) {
        return out(f32("round", "a", a).nd().round());
    }

    @Override
    public Tensor clamp(Tensor a, float lo, float hi) {
        DjlTensor d = f32("clamp", "a", a);
        if (!(lo <= hi)) {
            throw new IllegalArgumentException("clamp: requires lo <= hi, got lo=" + lo + ", hi="
                    + hi);
        }
        return withTmp(tmp -> NdKernels.clamp(tmp, d.nd(), lo, hi));
    }

    @Override
    public Tensor sigmoid(Tensor a) {
        DjlTensor d = f32("sigmoid", "a", a);
        return withTmp(tmp -> NdKernels.sigmoid(tmp, d.nd()));
    }

    @Override
    public Tensor maximum(Tensor a, Tensor b) {
        DjlTensor x = f32("maximum", "a", a);
        DjlTensor y = f32("maximum", "b", b);
        Shapes.broadcast("maximum", x.shape(), y.shape());
        return withTmp(tmp -> NdKernels.maximum(tmp, x.nd(), y.nd()));
    }

    @Override
    public Tensor minimum(Tensor a, Tensor b) {
        DjlTensor x = f32("minimum", "a", a);
        DjlTensor y = f32("minimum", "b", b);
        Shapes.broadcast("minimum", x.shape(), y.shape());
        return withTmp(tmp -> NdKernels.minimum(tmp, x.nd(), y.nd()));
    }

    // ---- comparisons and selection --------------------------------------------------------------

    @Override
    public Tensor gt(Tensor a, Tensor b) {
        return binary("gt", a, b, NDArray::gt);
    }

    @Override
    public Tensor lt(Tensor a, Tensor b) {
        return binary("lt", a, b, NDArray::lt);
    }

    @Override
    public Tensor eq(Tensor a, Tensor b) {
        return binary("eq", a, b, NDArray::eq);
    }

    @Override
    public Tensor where(Tensor cond, Tensor a, Tensor b) {
        DjlTensor c = in("where", "cond", cond);
        requireType("where", "cond", c, DType.BOOL);
        DjlTensor x = f32("where", "a", a);
        DjlTensor y = f32("where", "b", b);
        int[] condAndA = Shapes.broadcast("where", c.shape(), x.shape());
        int[] shape = Shapes.broadcast("where", condAndA, y.shape());
        // DJL's where wants equal shapes: expand each operand (a view, no copy) to the result
        // shape.
        return withTmp(tmp -> {
            Shape s = DjlTensor.shape(shape);
            NDArray cc = expand(tmp, c, shape, s);
            NDArray xx = expand(tmp, x, shape, s);
            NDArray yy = expand(tmp, y, shape, s);
            return NdKernels.own(tmp, NDArrays.where(cc, xx, yy));
        });
    }

    private static NDArray expand(NDManager tmp, DjlTensor t, int[] shape, Shape s) {
        return Arrays.equals(t.shape(), shape) ? t.nd() : NdKernels.own(tmp, t.nd().broadcast(s));
    }

    // ---- reductions over the last axis ----------------------------------------------------------

    @Override
    public Tensor maxLast(Tensor a) {
        DjlTensor d = lastAxisInput("maxLast", a, false);
        return out(d.nd().max(new int[] {-1}, false));
    }

    @Override
    public Tensor minLast(Tensor a) {
        DjlTensor d = lastAxisInput("minLast", a, false);
        return out(d.nd().min(new int[] {-1}, false));
    }

    @Override
    public Tensor sumLast(Tensor a) {
        DjlTensor d = lastAxisInput("sumLast", a, true);
        return out(d.nd().sum(new int[] {-1}, false));
    }

    @Override
    public Tensor meanLast(Tensor a) {
        DjlTensor d = lastAxisInput("meanLast", a, false);
        return out(d.nd().mean(new int[] {-1}, false));
    }

    /**
     * Sum of squares accumulated in float64: on the host, streamed from the tensor's memory in
     * chunks ({@link KernelPlacement#HOST}), or as a float64 PyTorch reduction whose scalar alone
     * crosses to the host ({@link KernelPlacement#DEVICE}).
     */
    @Override
    public double sumOfSquares(Tensor a) {
        DjlTensor d = f32("sumOfSquares", "a", a);
        int n = Shapes.numelInt("sumOfSquares", d.shape());
        if (n == 0) {
            return 0.0;
        }
        if (backend.hostKernels()) {
            SquareSum sum = new SquareSum(Math.min(n, backend.transferChunkBytes() / 4));
            float[] cached = d.hostCopy();
            if (cached != null) {
                sum.add(FloatBuffer.wrap(cached));
            } else {
                download(d.nd(), n, 4, (buf, from, len) -> sum.add(buf.asFloatBuffer()));
            }
            return sum.total();
        }
        try (NDManager tmp = manager.newSubManager()) {
            NDArray x = NdKernels.own(tmp, d.nd().toType(DataType.FLOAT64, false));
            NDArray sq = NdKernels.own(tmp, x.square());
            NDArray sum = NdKernels.own(tmp, sq.sum());
            return sum.toDoubleArray()[0];
        }
    }

    /** A float64 sum of squares over chunks: four accumulators, 64K floats copied at a time. */
    private static final class SquareSum {
        private final float[] scratch;
        private double s0;
        private double s1;
        private double s2;
        private double s3;

        SquareSum(int maxChunk) {
            scratch = new float[Math.max(1, Math.min(maxChunk, 1 << 16))];
        }

        void add(FloatBuffer src) {
            float[] c = scratch;
            while (src.hasRemaining()) {
                int len = Math.min(c.length, src.remaining());
                src.get(c, 0, len);
                int i = 0;
                for (; i + 3 < len; i += 4) {
                    double a = c[i];
                    double b = c[i + 1];
                    double d = c[i + 2];
                    double e = c[i + 3];
                    s0 += a * a;
                    s1 += b * b;
                    s2 += d * d;
                    s3 += e * e;
                }
                for (; i < len; i++) {
                    double a = c[i];
                    s0 += a * a;
                }
            }
        }

        double total() {
            return (s0 + s1) + (s2 + s3);
        }
    }

    // ---- linear algebra -------------------------------------------------------------------------

    /** {@code transpose} makes views, so PyTorch hands the transposes to BLAS without copies. */
    @Override
    public Tensor matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB) {
        DjlTensor x = f32("matmul", "a", a);
        DjlTensor y = f32("matmul", "b", b);
        if (x.rank() != 2 || y.rank() != 2) {
            throw new IllegalArgumentException("matmul: a and b must be 2-D, got shapes "
                    + Arrays.toString(x.shape()) + " and " + Arrays.toString(y.shape()));
        }
        int[] sa = x.shape();
        int[] sb = y.shape();
        int inA = transposeA ? sa[0] : sa[1];
        int inB = transposeB ? sb[1] : sb[0];
        if (inA != inB) {
            throw new IllegalArgumentException("matmul: inner dimensions differ: op(a) is "
                    + opShape(sa, transposeA) + " (a " + Arrays.toString(sa) + ", transposeA="
                    + transposeA + "), op(b) is " + opShape(sb, transposeB) + " (b "
                    + Arrays.toString(sb) + ", transposeB=" + transposeB
                    + "); columns of op(a) must equal rows of op(b)");
        }
        return withTmp(tmp -> {
            NDArray l = transposeA ? NdKernels.own(tmp, x.nd().transpose()) : x.nd();
            NDArray r = transposeB ? NdKernels.own(tmp, y.nd().transpose()) : y.nd();
            return NdKernels.own(tmp, l.matMul(r));
        });
    }

    // ---- codebooks ------------------------------------------------------------------------------

    /** On the host or as PyTorch take, as {@link KernelPlacement} says. */
    @Override
    public Tensor gather(Tensor table, Tensor codes) {
        DjlTensor tab = table1d("gather", table);
        DjlTensor c = in("gather", "codes", codes);
        requireType("gather", "codes", c, DType.UINT8);
        int size = tab.dim(0);
        int n = Shapes.numelInt("gather", c.shape());
        if (backend.hostKernels()) {
            byte[] cs = toByteArray(c);
            float[] ts = toFloatArray(tab);
            float[] out = new float[n];
            for (int i = 0; i < n; i++) {
                int code = cs[i] & 0xFF;
                if (code >= size) {
                    throw gatherRange(code, size);
                }
                out[i] = ts[code];
            }
            return out(uploadFloats(out, c.shape()));
        }
        if (n > 0) {
            int max = maxCode(c);
            if (max >= size) {
                throw gatherRange(max, size);
            }
        }
        return withTmp(tmp -> NdKernels.gather(tmp, tab.nd(), c.nd()));
    }

    private static IllegalArgumentException gatherRange(int code, int size) {
        return new IllegalArgumentException("gather: code " + code + " does not index the table of "
                + size + " entries; codes must be in [0, " + (size - 1) + "]");
    }

    /** On the host or as PyTorch abs-and-max over blocks, as {@link KernelPlacement} says. */
    @Override
    public Tensor blockAbsMax(Tensor x, int blockSize) {
        DjlTensor d = f32("blockAbsMax", "x", x);
        checkBlockSize("blockAbsMax", blockSize);
        int n = Shapes.numelInt("blockAbsMax", d.shape());
        if (n < 1) {
            throw new IllegalArgumentException("blockAbsMax: x must have at least 1 element, got "
                    + "shape " + Arrays.toString(d.shape()));
        }
        if (backend.hostKernels()) {
            int blocks = (int) (((long) n + blockSize - 1) / blockSize);
            float[] out = new float[blocks];
            HostKernels.blockAbsMax(hostFloats(d), n, blockSize, out);
            return out(uploadFloats(out, blocks));
        }
        return withTmp(tmp -> NdKernels.blockAbsMax(tmp, d.nd(), n, blockSize));
    }

    /** Host round trip: DJL has no bucketing operation (searchsorted). */
    @Override
    public Tensor encode(Tensor x, Tensor scale, int blockSize, ScaleMode mode, BucketTable table) {
        DjlTensor d = f32("encode", "x", x);
        checkBlockSize("encode", blockSize);
        if (mode == null || table == null) {
            throw new IllegalArgumentException("encode: " + (mode == null ? "mode" : "table")
                    + " must not be null");
        }
        int n = Shapes.numelInt("encode", d.shape());
        DjlTensor s = scaleArg("encode", scale, n, blockSize);
        int[] shape = d.shape();
        float[] xs = hostFloats(d);
        float[] ss = toFloatArray(s);
        byte[] codes = new byte[n];
        HostKernels.encode(xs, n, ss, blockSize, mode, table, codes);
        DjlTensor encoded = (DjlTensor) out(uploadBytes(codes, shape));
        encoded.hostBytes(codes); // the decode of a round trip reads them next
        return encoded;
    }

    /** Host round trip: one copy of x for every scale set, uploads only the statistics. */
    @Override
    public Tensor blockCodebookFit(Tensor x, Tensor scale, int blockSize, ScaleMode mode,
            BucketTable table, Tensor values) {
        DjlTensor d = f32("blockCodebookFit", "x", x);
        checkBlockSize("blockCodebookFit", blockSize);
        if (mode == null || table == null) {
            throw new IllegalArgumentException("blockCodebookFit: " + (mode == null ? "mode" : "table")
                    + " must not be null");
        }
        DjlTensor v = table1d("blockCodebookFit", values);
        int n = Shapes.numelInt("blockCodebookFit", d.shape());
        if (n == 0) {
            throw new IllegalArgumentException("blockCodebookFit: x must have at least 1 element, "
                    + "got shape " + Arrays.toString(d.shape()));
        }
        DjlTensor s = f32("blockCodebookFit", "scale", scale);
        int sets = HostKernels.fitScaleSets(s.shape(), n, blockSize);
        HostKernels.requireCodesIndexValues("blockCodebookFit", table, v.dim(0));
        int nb = HostKernels.blockCount(n, blockSize);
        float[] out = new float[3 * sets * nb];
        HostKernels.blockCodebookFit(hostFloats(d), n, toFloatArray(s), sets, blockSize, mode,
                table, toFloatArray(v), out);
        return out(uploadFloats(out, s.rank() == 1 ? new int[] {nb, 3} : new int[] {sets, nb, 3}));
    }

    /** On the host or as PyTorch take-and-multiply, as {@link KernelPlacement} says. */
    @Override
    public Tensor decode(Tensor codes, Tensor table, Tensor scale, int blockSize) {
        return decoded("decode", null, codes, table, scale, blockSize);
    }

    /**
     * On the host or as PyTorch take, multiply and subtract, as {@link KernelPlacement} says; on
     * the host, x is downloaded once per tensor (LoftQ subtracts from the same weight every step).
     */
    @Override
    public Tensor decodeResidual(Tensor x, Tensor codes, Tensor table, Tensor scale,
            int blockSize) {
        return decoded("decodeResidual", f32("decodeResidual", "x", x), codes, table, scale,
                blockSize);
    }

    /** {@link #decode}, subtracted from {@code x} (of codes' element count) when x is not null. */
    private Tensor decoded(String op, DjlTensor x, Tensor codes, Tensor table, Tensor scale,
            int blockSize) {
        DjlTensor c = in(op, "codes", codes);
        requireType(op, "codes", c, DType.UINT8);
        DjlTensor tab = table1d(op, table);
        checkBlockSize(op, blockSize);
        int n = Shapes.numelInt(op, c.shape());
        if (x != null && x.numel() != n) {
            throw new IllegalArgumentException(op + ": x has " + x.numel() + " elements "
                    + Arrays.toString(x.shape()) + ", codes " + n + "; they must have as many");
        }
        DjlTensor s = scaleArg(op, scale, n, blockSize);
        DjlTensor shapeOf = x != null ? x : c;
        if (n == 0) {
            return out(manager.create(shapeOf.nd().getShape(), DataType.FLOAT32));
        }
        int size = tab.dim(0);
        if (backend.hostKernels()) {
            byte[] cs = hostCodes(op, c, n, size);
            float[] out = new float[n];
            if (x == null) {
                HostKernels.decode(cs, n, toFloatArray(tab), toFloatArray(s), blockSize, out);
            } else {
                HostKernels.decodeResidual(hostFloats(x), cs, n, toFloatArray(tab),
                        toFloatArray(s), blockSize, out);
            }
            return outHost(out, shapeOf.shape());
        }
        int max = maxCode(c);
        if (max >= size) {
            throw decodeRange(op, max, size);
        }
        return withTmp(tmp -> {
            NDArray y = NdKernels.decode(tmp, c.nd(), tab.nd(), s.nd(), n, blockSize);
            return x == null ? y
                    : x.nd().sub(NdKernels.own(tmp, y.reshape(x.nd().getShape())));
        });
    }

    /** The codes on the host, each checked to index a table of {@code size} entries. */
    private byte[] hostCodes(String op, DjlTensor c, int n, int size) {
        byte[] cs = hostBytes(c);
        for (int i = 0; i < n; i++) {
            if ((cs[i] & 0xFF) >= size) {
                throw decodeRange(op, cs[i] & 0xFF, size);
            }
        }
        return cs;
    }

    private static IllegalArgumentException decodeRange(String op, int code, int size) {
        return new IllegalArgumentException(op + ": code " + code + " does not index the table of "
                + size + " entries; codes must be in [0, " + (size - 1) + "]");
    }

    /** Host round trip: DJL has no bit operations. */
    @Override
    public Tensor pack(Tensor codes, int bits, PackOrder order, int padCode) {
        DjlTensor c = in("pack", "codes", codes);
        requireType("pack", "codes", c, DType.UINT8);
        checkBits("pack", bits);
        if (order == null) {
            throw new IllegalArgumentException("pack: order must not be null");
        }
        int limit = (1 << bits) - 1;
        if (padCode < 0 || padCode > limit) {
            throw new IllegalArgumentException("pack: padCode must be in [0, " + limit + "] for "
                    + bits + "-bit codes, got " + padCode);
        }
        int n = Shapes.numelInt("pack", c.shape());
        byte[] host = toByteArray(c);
        for (int i = 0; i < n; i++) {
            if ((host[i] & 0xFF) > limit) {
                throw new IllegalArgumentException("pack: code " + (host[i] & 0xFF)
                        + " at flat index " + i + " does not fit in " + bits
                        + " bits; codes must be in [0, " + limit + "]");
            }
        }
        int len = HostKernels.packedLength(n, bits);
        byte[] packed = new byte[len];
        HostKernels.pack(host, n, bits, order, padCode, packed);
        return out(uploadBytes(packed, len));
    }

    /** Host round trip: DJL has no bit operations. */
    @Override
    public Tensor unpack(Tensor packed, int bits, PackOrder order, int count) {
        DjlTensor p = in("unpack", "packed", packed);
        requireType("unpack", "packed", p, DType.UINT8);
        checkBits("unpack", bits);
        if (order == null) {
            throw new IllegalArgumentException("unpack: order must not be null");
        }
        if (count < 0) {
            throw new IllegalArgumentException("unpack: count must be >= 0, got " + count);
        }
        long need = ((long) count * bits + 7) / 8;
        if (p.numel() < need) {
            throw new IllegalArgumentException("unpack: " + count + " codes of " + bits
                    + " bits need " + need + " packed bytes, got " + p.numel() + " (shape "
                    + Arrays.toString(p.shape()) + ")");
        }
        byte[] host = toByteArray(p);
        byte[] codes = new byte[count];
        HostKernels.unpack(host, bits, order, count, codes);
        return out(uploadBytes(codes, count));
    }

    // ---- interop --------------------------------------------------------------------------------

    Tensor wrap(NDArray array) {
        if (array == null) {
            throw new IllegalArgumentException("wrap: array must not be null");
        }
        if (array.isReleased()) {
            throw new IllegalStateException("wrap: array has been closed");
        }
        String engine = array.getManager().getEngine().getEngineName();
        if (!DjlBackend.ENGINE.equals(engine)) {
            throw new IllegalArgumentException("wrap: array belongs to engine " + engine
                    + "; expected " + DjlBackend.ENGINE);
        }
        Device device = array.getDevice();
        if (!device.equals(backend.djlDevice())) {
            throw new IllegalArgumentException("wrap: array is on " + device
                    + " but the backend is on " + backend.djlDevice());
        }
        if (DjlTensor.dtypeOf(array.getDataType()) == null) {
            throw new IllegalArgumentException("wrap: data type " + array.getDataType() + " is not "
                    + "supported; allowed: FLOAT32, UINT8, BOOLEAN");
        }
        // A second handle on the same storage (a view), owned by this scope.
        return out(array.reshape(array.getShape()));
    }

    // ---- helpers: results, transfers ------------------------------------------------------------

    /** Moves an operation's result into this scope. */
    private Tensor out(NDArray result) {
        result.attach(manager);
        return new DjlTensor(this, result);
    }

    /** Moves a fresh array (not another tensor's handle) into this scope as a tensor. */
    Tensor adopt(NDArray array) {
        checkOpen("adopt");
        return out(array);
    }

    /**
     * Like {@link #out} for operations that may return a view of {@code src} (reshape, transpose,
     * slices): should DJL ever hand back {@code src}'s own handle, a new handle is made, so the
     * input is never moved.
     */
    private Tensor outView(DjlTensor src, NDArray result) {
        return out(result == src.nd() ? src.nd().reshape(src.nd().getShape()) : result);
    }

    /** Runs {@code body} with a temporary sub-manager and keeps only its result. */
    private Tensor withTmp(Function<NDManager, NDArray> body) {
        try (NDManager tmp = manager.newSubManager()) {
            return out(body.apply(tmp));
        }
    }

    /** Writes elements {@code [from, from + len)} of a host array at the start of {@code buf}. */
    @FunctionalInterface
    private interface ChunkFill {
        void into(ByteBuffer buf, int from, int len);
    }

    /** Reads elements {@code [from, from + len)} of a tensor from {@code buf} (position 0). */
    @FunctionalInterface
    private interface ChunkDrain {
        void from(ByteBuffer buf, int from, int len);
    }

    private NDArray uploadFloats(float[] data, int... shape) {
        return upload(DataType.FLOAT32, 4, shape, data.length,
                (buf, from, len) -> buf.asFloatBuffer().put(data, from, len));
    }

    private NDArray uploadBytes(byte[] data, int... shape) {
        return upload(DataType.UINT8, 1, shape, data.length,
                (buf, from, len) -> buf.put(0, data, from, len));
    }

    /**
     * Uploads {@code n} host elements as a new array of this scope's device that owns its memory.
     * On the CPU the elements are written straight into a fresh array's storage. On a GPU they go
     * through a reused staging buffer: up to one chunk ({@link DjlBackend#transferChunkBytes()}),
     * the buffer becomes an array ({@code from_blob}, which copies to the device); larger, an
     * empty array is filled chunk by chunk, so the staging buffer stays small and any size fits.
     */
    private NDArray upload(DataType type, int elementBytes, int[] shape, int n, ChunkFill fill) {
        Shape s = DjlTensor.shape(shape);
        if (n == 0) {
            return manager.create(s, type);
        }
        if (backend.aliasesHostMemory()) {
            // CPU: fill a fresh array's own storage through a direct view of it, one copy in all.
            NDArray result = manager.create(s, type);
            ByteBuffer view = result.toByteBuffer(true);
            fill.into(view, 0, n);
            return result;
        }
        StagingBuffers staging = backend.staging();
        int chunk = Math.max(1, backend.transferChunkBytes() / elementBytes);
        if (n <= chunk) {
            ByteBuffer buf = staging.acquire(n * elementBytes);
            try {
                fill.into(buf, 0, n);
                buf.position(0).limit(n * elementBytes);
                return manager.create(buf, s, type);
            } finally {
                staging.release(buf);
            }
        }
        try (NDManager tmp = manager.newSubManager()) {
            NDArray flat = NdKernels.own(tmp, tmp.create(new Shape(n), type));
            ByteBuffer buf = staging.acquire(chunk * elementBytes);
            try {
                for (int from = 0; from < n; from += chunk) {
                    int len = Math.min(chunk, n - from);
                    buf.clear();
                    fill.into(buf, from, len);
                    buf.position(0).limit(len * elementBytes);
                    try (NDArray part = tmp.create(buf, new Shape(len), type)) {
                        flat.set(new NDIndex().addSliceDim(from, (long) from + len), part);
                    }
                }
            } finally {
                staging.release(buf);
            }
            NDArray result = NdKernels.own(tmp, flat.reshape(s));
            result.attach(manager);
            return result;
        }
    }

    /**
     * Copies the {@code n >= 1} elements of {@code nd} to the host, chunk by chunk. Contiguous CPU
     * memory is read in place; DJL's copies for other arrays (non-contiguous views, GPU arrays) go
     * into a temporary manager, not into the array's owner.
     */
    private void download(NDArray nd, int n, int elementBytes, ChunkDrain drain) {
        try (NDManager tmp = manager.newSubManager()) {
            NDArray flat = NdKernels.own(tmp, nd.reshape(n));
            int chunk = Math.max(1, backend.transferChunkBytes() / elementBytes);
            if (n <= chunk) {
                drain.from(flat.toByteBuffer(true), 0, n);
                return;
            }
            for (int from = 0; from < n; from += chunk) {
                int len = Math.min(chunk, n - from);
                try (NDManager part = tmp.newSubManager()) {
                    NDIndex range = new NDIndex().addSliceDim(from, (long) from + len);
                    NDArray slice = NdKernels.own(part, flat.get(part, range));
                    drain.from(slice.toByteBuffer(true), from, len);
                }
            }
        }
    }

    private int maxCode(DjlTensor codes) {
        try (NDManager tmp = manager.newSubManager()) {
            NDArray max = NdKernels.own(tmp, codes.nd().max());
            return max.toByteArray()[0] & 0xFF;
        }
    }

    // ---- helpers: validation --------------------------------------------------------------------

    void checkOpen(String op) {
        if (!isOpen()) {
            throw new IllegalStateException(op + ": scope is closed");
        }
    }

    /** A live tensor of this backend; this scope must be open. */
    private DjlTensor in(String op, String name, Tensor t) {
        checkOpen(op);
        DjlTensor d = DjlTensor.of(op, name, t);
        if (d.djlBackend() != backend) {
            Backend other = d.backend();
            throw new IllegalArgumentException(op + ": " + name + " belongs to another "
                    + other.name() + " backend instance (" + other.device() + "); tensors "
                    + "cannot be mixed across backends (this one: " + backend.device() + ")");
        }
        return d;
    }

    private DjlTensor f32(String op, String name, Tensor t) {
        DjlTensor d = in(op, name, t);
        requireType(op, name, d, DType.FLOAT32);
        return d;
    }

    private static void requireType(String op, String name, DjlTensor d, DType type) {
        if (d.dtype() != type) {
            throw new IllegalArgumentException(op + ": " + name + " must be " + type + ", got "
                    + d.dtype() + " " + Arrays.toString(d.shape()));
        }
    }

    private Tensor binary(String op, Tensor a, Tensor b,
            java.util.function.BiFunction<NDArray, NDArray, NDArray> f) {
        DjlTensor x = f32(op, "a", a);
        DjlTensor y = f32(op, "b", b);
        Shapes.broadcast(op, x.shape(), y.shape());
        return out(f.apply(x.nd(), y.nd()));
    }

    private DjlTensor lastAxisInput(String op, Tensor a, boolean allowEmptyAxis) {
        DjlTensor d = f32(op, "a", a);
        if (d.rank() == 0) {
            throw new IllegalArgumentException(op + ": a must have rank >= 1, got shape []");
        }
        if (!allowEmptyAxis && d.dim(-1) == 0) {
            throw new IllegalArgumentException(op + ": the last axis must not be empty, got shape "
                    + Arrays.toString(d.shape()));
        }
        return d;
    }

    private DjlTensor table1d(String op, Tensor table) {
        DjlTensor t = f32(op, "table", table);
        if (t.rank() != 1 || t.dim(0) < 1) {
            throw new IllegalArgumentException(op + ": table must be 1-D with at least 1 entry, "
                    + "got shape " + Arrays.toString(t.shape()));
        }
        return t;
    }

    private DjlTensor scaleArg(String op, Tensor scale, int n, int blockSize) {
        DjlTensor s = f32(op, "scale", scale);
        int blocks = (int) (((long) n + blockSize - 1) / blockSize);
        if (s.rank() != 1 || s.dim(0) != blocks) {
            throw new IllegalArgumentException(op + ": scale must be [" + blocks + "] (ceil(" + n
                    + " / " + blockSize + ")), got " + Arrays.toString(s.shape()));
        }
        return s;
    }

    private static void checkBlockSize(String op, int blockSize) {
        if (blockSize < 1) {
            throw new IllegalArgumentException(op + ": blockSize must be >= 1, got " + blockSize);
        }
    }

    private static void checkBits(String op, int bits) {
        if (bits != 1 && bits != 2 && bits != 3 && bits != 4 && bits != 8) {
            throw new IllegalArgumentException(op + ": bits must be one of [1, 2, 3, 4, 8], got "
                    + bits);
        }
    }

    private static int checkShape(String op, int[] shape) {
        if (shape == null) {
            throw new IllegalArgumentException(op + ": shape must not be null");
        }
        return Shapes.numelInt(op, shape);
    }

    private static int checkHostData(String op, int length, int[] shape) {
        if (length < 0) {
            throw new IllegalArgumentException(op + ": data must not be null");
        }
        int n = checkShape(op, shape);
        if (length != n) {
            throw new IllegalArgumentException(op + ": data has " + length + " elements but shape "
                    + Arrays.toString(shape) + " needs " + n);
        }
        return n;
    }

    private static void checkRange(String op, int from, int to, int size, String what,
            DjlTensor d) {
        if (from < 0 || from > to || to > size) {
            throw new IllegalArgumentException(op + ": [" + from + ", " + to + ") is not a range "
                    + "of the " + size + " " + what + " of shape " + Arrays.toString(d.shape())
                    + "; need 0 <= from <= to <= " + size);
        }
    }

    private static String opShape(int[] s, boolean transposed) {
        return transposed ? "[" + s[1] + ", " + s[0] + "]" : Arrays.toString(s);
    }
}
