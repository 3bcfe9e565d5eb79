package dev.loftq.core.ref;

import dev.loftq.core.Checks;
import dev.loftq.core.tensor.BucketTable;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.HostKernels;
import dev.loftq.core.tensor.HostRandom;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.ScaleMode;
import dev.loftq.core.tensor.Shapes;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;

/**
 * The reference backend's {@link TensorScope}: validates every call (the messages name the
 * operation, the shapes or values seen and what is allowed), then runs a host kernel over the
 * operands' arrays. Owns the tensors it makes and its child scopes; not thread-safe.
 */
final class RefScope implements TensorScope {
    private static final int[] PACK_BITS = {1, 2, 3, 4, 8};

    private final ReferenceBackend backend;
    private final RefScope parent;
    private final Set<RefTensor> owned = Collections.newSetFromMap(new IdentityHashMap<>());
    private final Set<RefScope> children = Collections.newSetFromMap(new IdentityHashMap<>());
    private boolean open = true;

    RefScope(ReferenceBackend backend, RefScope parent) {
        this.backend = backend;
        this.parent = parent;
    }

    // ---- lifetime ------------------------------------------------------------------------------

    @Override
    public ReferenceBackend backend() {
        return backend;
    }

    @Override
    public TensorScope newChild() {
        checkOpen("newChild");
        RefScope child = new RefScope(backend, this);
        children.add(child);
        return child;
    }

    @Override
    public <T extends Tensor> T keep(T t) {
        checkOpen("keep");
        RefTensor r = use("keep", "t", t);
        RefScope from = r.owner();
        if (from != this) {
            from.owned.remove(r);
            owned.add(r);
            r.moveTo(this);
        }
        return t;
    }

    @Override
    public void close() {
        if (!open) {
            return;
        }
        open = false;
        for (RefScope child : new ArrayList<>(children)) {
            child.close();
        }
        children.clear();
        for (RefTensor t : owned) {
            t.free();
        }
        owned.clear();
        if (parent != null && parent.open) {
            parent.children.remove(this);
        }
    }

    @Override
    public boolean isOpen() {
        return open;
    }

    /** Tensors owned by this scope and its open descendants (0 once closed). */
    long liveTensorCount() {
        long n = owned.size();
        for (RefScope child : children) {
            n += child.liveTensorCount();
        }
        return n;
    }

    // ---- creation and host copies --------------------------------------------------------------

    @Override
    public Tensor fromHost(float[] data, int... shape) {
        checkOpen("fromHost");
        Checks.notNull("fromHost: data", data);
        int[] s = shape("fromHost", shape);
        int n = Shapes.numelInt("fromHost", s);
        if (data.length != n) {
            throw new IllegalArgumentException("fromHost: data has " + data.length
                    + " elements, shape " + Arrays.toString(s) + " needs " + n);
        }
        return floats(s, data.clone());
    }

    @Override
    public Tensor fromHostBytes(byte[] data, int... shape) {
        checkOpen("fromHostBytes");
        Checks.notNull("fromHostBytes: data", data);
        int[] s = shape("fromHostBytes", shape);
        int n = Shapes.numelInt("fromHostBytes", s);
        if (data.length != n) {
            throw new IllegalArgumentException("fromHostBytes: data has " + data.length
                    + " elements, shape " + Arrays.toString(s) + " needs " + n);
        }
        return bytes(DType.UINT8, s, data.clone());
    }

    @Override
    public Tensor full(float value, int... shape) {
        checkOpen("full");
        int[] s = shape("full", shape);
        float[] data = new float[Shapes.numelInt("full", s)];
        Arrays.fill(data, value);
        return floats(s, data);
    }

    @Override
    public Tensor randomNormal(long seed, float mean, float std, int... shape) {
        checkOpen("randomNormal");
        int[] s = shape("randomNormal", shape);
        return floats(s, HostRandom.normal(seed, mean, std, Shapes.numelInt("randomNormal", s)));
    }

    @Override
    public float[] toFloatArray(Tensor t) {
        checkOpen("toFloatArray");
        return useFloat("toFloatArray", "t", t).floats().clone();
    }

    @Override
    public byte[] toByteArray(Tensor t) {
        checkOpen("toByteArray");
        RefTensor r = use("toByteArray", "t", t);
        if (r.dtype() == DType.FLOAT32) {
            throw new IllegalArgumentException("toByteArray: t must be UINT8 or BOOL, got "
                    + r.describe());
        }
        return r.bytes().clone();
    }

    @Override
    public float item(Tensor t) {
        checkOpen("item");
        RefTensor r = useFloat("item", "t", t);
        if (r.size() != 1) {
            throw new IllegalArgumentException("item: tensor must have exactly 1 element, got "
                    + "shape " + Arrays.toString(r.shapeView()));
        }
        return r.floats()[0];
    }

    // ---- shape ---------------------------------------------------------------------------------

    /** Shares the (immutable) storage of t. */
    @Override
    public Tensor reshape(Tensor t, int... shape) {
        checkOpen("reshape");
        RefTensor r = use("reshape", "t", t);
        int[] s = Shapes.resolveReshape("reshape", r.shapeView(), shape("reshape", shape));
        return like(r, s, r.floats(), r.bytes());
    }

    @Override
    public Tensor transpose(Tensor t) {
        checkOpen("transpose");
        RefTensor r = use("transpose", "t", t);
        requireRank("transpose", "t", r, 2);
        int rows = r.shapeView()[0];
        int cols = r.shapeView()[1];
        int[] s = {cols, rows};
        return r.dtype() == DType.FLOAT32
                ? floats(s, Layout.transpose(r.floats(), rows, cols))
                : bytes(r.dtype(), s, Layout.transpose(r.bytes(), rows, cols));
    }

    @Override
    public Tensor sliceRows(Tensor t, int from, int to) {
        checkOpen("sliceRows");
        RefTensor r = use("sliceRows", "t", t);
        int[] shape = r.shapeView();
        if (shape.length == 0) {
            throw new IllegalArgumentException("sliceRows: t must have rank >= 1, got shape []");
        }
        checkRange("sliceRows", "rows", from, to, shape);
        int[] s = shape.clone();
        s[0] = to - from;
        int rowSize = Shapes.numelInt("sliceRows", Arrays.copyOfRange(shape, 1, shape.length));
        int start = from * rowSize;
        int end = to * rowSize;
        return r.dtype() == DType.FLOAT32
                ? floats(s, Arrays.copyOfRange(r.floats(), start, end))
                : bytes(r.dtype(), s, Arrays.copyOfRange(r.bytes(), start, end));
    }

    @Override
    public Tensor sliceColumns(Tensor t, int from, int to) {
        checkOpen("sliceColumns");
        RefTensor r = use("sliceColumns", "t", t);
        requireRank("sliceColumns", "t", r, 2);
        int[] shape = r.shapeView();
        checkRange("sliceColumns", "columns", from, to, new int[] {shape[1]});
        int rows = shape[0];
        int cols = shape[1];
        int width = to - from;
        int[] s = {rows, width};
        if (r.dtype() == DType.FLOAT32) {
            float[] out = new float[rows * width];
            Layout.copyRuns(r.floats(), from, cols, out, 0, width, width, rows);
            return floats(s, out);
        }
        byte[] out = new byte[rows * width];
        Layout.copyRuns(r.bytes(), from, cols, out, 0, width, width, rows);
        return bytes(r.dtype(), s, out);
    }

    @Override
    public Tensor concat(int axis, Tensor... parts) {
        checkOpen("concat");
        Checks.notNull("concat: parts", parts);
        if (parts.length == 0) {
            throw new IllegalArgumentException("concat: at least one part is required, got none");
        }
        RefTensor[] p = new RefTensor[parts.length];
        for (int i = 0; i < parts.length; i++) {
            p[i] = use("concat", "parts[" + i + "]", parts[i]);
        }
        int[] first = p[0].shapeView();
        int rank = first.length;
        if (rank == 0) {
            throw new IllegalArgumentException("concat: parts must have rank >= 1, got shape []");
        }
        if (axis < 0 || axis >= rank) {
            throw new IllegalArgumentException("concat: axis " + axis + " out of range for parts "
                    + "of rank " + rank + " (allowed: [0, " + (rank - 1) + "])");
        }
        long total = 0;
        for (int i = 0; i < p.length; i++) {
            int[] s = p[i].shapeView();
            if (p[i].dtype() != p[0].dtype()) {
                throw new IllegalArgumentException("concat: parts[" + i + "] is " + p[i].describe()
                        + " but parts[0] is " + p[0].describe() + " (dtypes must agree)");
            }
            boolean compatible = s.length == rank;
            for (int a = 0; a < rank && compatible; a++) {
                compatible = a == axis || s[a] == first[a];
            }
            if (!compatible) {
                throw new IllegalArgumentException("concat: parts[" + i + "] has shape "
                        + Arrays.toString(s) + ", incompatible with parts[0] shape "
                        + Arrays.toString(first) + " along axis " + axis
                        + " (same rank, and equal sizes on every other axis)");
            }
            total += s[axis];
        }
        if (total > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("concat: the parts add up to " + total
                    + " along axis " + axis + " (allowed: at most " + Integer.MAX_VALUE + ")");
        }
        int[] outShape = first.clone();
        outShape[axis] = (int) total;
        int n = Shapes.numelInt("concat", outShape);
        int outer = Shapes.numelInt("concat", Arrays.copyOfRange(first, 0, axis));
        int inner = Shapes.numelInt("concat", Arrays.copyOfRange(first, axis + 1, rank));
        int outRun = outShape[axis] * inner;
        boolean isFloat = p[0].dtype() == DType.FLOAT32;
        Object out = isFloat ? new float[n] : new byte[n];
        int offset = 0;
        for (RefTensor part : p) {
            int run = part.shapeView()[axis] * inner;
            Object src = isFloat ? part.floats() : part.bytes();
            Layout.copyRuns(src, 0, run, out, offset, outRun, run, outer);
            offset += run;
        }
        return isFloat ? floats(outShape, (float[]) out)
                : bytes(p[0].dtype(), outShape, (byte[]) out);
    }

    @Override
    public Tensor cast(Tensor t, DType dtype) {
        checkOpen("cast");
        RefTensor r = use("cast", "t", t);
        Checks.notNull("cast: dtype", dtype);
        DType from = r.dtype();
        int n = r.size();
        int[] s = r.shapeView().clone();
        if (from == dtype) {
            return from == DType.FLOAT32 ? floats(s, r.floats().clone())
                    : bytes(from, s, r.bytes().clone());
        }
        if (from == DType.FLOAT32 && dtype == DType.UINT8) {
            float[] x = r.floats();
            byte[] out = new byte[n];
            for (int i = 0; i < n; i++) {
                float v = x[i];
                float c = v > 0f ? Math.min(v, 255f) : 0f; // NaN and -0 give 0
                out[i] = (byte) (int) Math.rint(c);
            }
            return bytes(DType.UINT8, s, out);
        }
        if (from != DType.FLOAT32 && dtype == DType.FLOAT32) {
            byte[] x = r.bytes();
            float[] out = new float[n];
            for (int i = 0; i < n; i++) {
                out[i] = x[i] & 0xFF;
            }
            return floats(s, out);
        }
        if (from == DType.BOOL && dtype == DType.UINT8) {
            return bytes(DType.UINT8, s, r.bytes().clone());
        }
        throw new IllegalArgumentException("cast: " + from + " -> " + dtype + " is not supported"
                + " (allowed: FLOAT32 <-> UINT8, BOOL -> FLOAT32 or UINT8, or the same dtype)");
    }

    // ---- arithmetic ----------------------------------------------------------------------------

    @Override
    public Tensor add(Tensor a, Tensor b) {
        return binary("add", Elementwise.Binary.ADD, a, b);
    }

    @Override
    public Tensor sub(Tensor a, Tensor b) {
        return binary("sub", Elementwise.Binary.SUB, a, b);
    }

    @Override
    public Tensor mul(Tensor a, Tensor b) {
        return binary("mul", Elementwise.Binary.MUL, a, b);
    }

    @Override
    public Tensor div(Tensor a, Tensor b) {
        return binary("div", Elementwise.Binary.DIV, a, b);
    }

    @Override
    public Tensor add(Tensor a, float s) {
        return unary("add", Elementwise.Unary.ADD_SCALAR, a, s, 0f);
    }

    @Override
    public Tensor mul(Tensor a, float s) {
        return unary("mul", Elementwise.Unary.MUL_SCALAR, a, s, 0f);
    }

    @Override
    public Tensor div(Tensor a, float s) {
        return unary("div", Elementwise.Unary.DIV_SCALAR, a, s, 0f);
    }

    @Override
    public Tensor abs(Tensor a) {
        return unary("abs", Elementwise.Unary.ABS, a, 0f, 0f);
    }

    @Override
    public Tensor neg(Tensor a) {
        return unary("neg", Elementwise.Unary.NEG, a, 0f, 0f);
    }

    @Override
    public Tensor sqrt(Tensor a) {
        return unary("sqrt", Elementwise.Unary.SQRT, a, 0f, 0f);
    }

    @Override
    public Tensor round(Tensor a) {
        return unary("round", Elementwise.Unary.ROUND, a, 0f, 0f);
    }

    @Override
    public Tensor clamp(Tensor a, float lo, float hi) {
        checkOpen("clamp");
        if (!(lo <= hi)) {
            throw new IllegalArgumentException("clamp: requires lo <= hi (neither NaN), got lo="
                    + lo + ", hi=" + hi);
        }
        return unary("clamp", Elementwise.Unary.CLAMP, a, lo, hi);
    }

    @Override
    public Tensor sigmoid(Tensor a) {
        return unary("sigmoid", Elementwise.Unary.SIGMOID, a, 0f, 0f);
    }

    @Override
    public Tensor maximum(Tensor a, Tensor b) {
        return binary("maximum", Elementwise.Binary.MAXIMUM, a, b);
    }

    @Override
    public Tensor minimum(Tensor a, Tensor b) {
        return binary("minimum", Elementwise.Binary.MINIMUM, a, b);
    }

    // ---- comparisons and selection -------------------------------------------------------------

    @Override
    public Tensor gt(Tensor a, Tensor b) {
        return compare("gt", Elementwise.Compare.GT, a, b);
    }

    @Override
    public Tensor lt(Tensor a, Tensor b) {
        return compare("lt", Elementwise.Compare.LT, a, b);
    }

    @Override
    public Tensor eq(Tensor a, Tensor b) {
        return compare("eq", Elementwise.Compare.EQ, a, b);
    }

    @Override
    public Tensor where(Tensor cond, Tensor a, Tensor b) {
        checkOpen("where");
        RefTensor c = use("where", "cond", cond);
        if (c.dtype() != DType.BOOL) {
            throw new IllegalArgumentException("where: cond must be BOOL, got " + c.describe());
        }
        RefTensor x = useFloat("where", "a", a);
        RefTensor y = useFloat("where", "b", b);
        int[] s = Shapes.broadcast("where", Shapes.broadcast("where", c.shapeView(), x.shapeView()),
                y.shapeView());
        Shapes.numelInt("where", s);
        Broadcast plan = new Broadcast(s, c.shapeView(), x.shapeView(), y.shapeView());
        return floats(s, Elementwise.where(plan, c.bytes(), x.floats(), y.floats()));
    }

    // ---- reductions ----------------------------------------------------------------------------

    @Override
    public Tensor maxLast(Tensor a) {
        return reduceLast("maxLast", Reductions.Last.MAX, a);
    }

    @Override
    public Tensor minLast(Tensor a) {
        return reduceLast("minLast", Reductions.Last.MIN, a);
    }

    /** Accumulates each row in double and rounds once. */
    @Override
    public Tensor sumLast(Tensor a) {
        return reduceLast("sumLast", Reductions.Last.SUM, a);
    }

    /** Divides each row's double sum by its length and rounds once. */
    @Override
    public Tensor meanLast(Tensor a) {
        return reduceLast("meanLast", Reductions.Last.MEAN, a);
    }

    @Override
    public double sumOfSquares(Tensor a) {
        checkOpen("sumOfSquares");
        return Reductions.sumOfSquares(useFloat("sumOfSquares", "a", a).floats());
    }

    // ---- linear algebra ------------------------------------------------------------------------

    @Override
    public Tensor matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB) {
        checkOpen("matmul");
        RefTensor x = useFloat("matmul", "a", a);
        RefTensor y = useFloat("matmul", "b", b);
        requireRank("matmul", "a", x, 2);
        requireRank("matmul", "b", y, 2);
        int[] sa = x.shapeView();
        int[] sb = y.shapeView();
        int m = transposeA ? sa[1] : sa[0];
        int k = transposeA ? sa[0] : sa[1];
        int kb = transposeB ? sb[1] : sb[0];
        int n = transposeB ? sb[0] : sb[1];
        if (k != kb) {
            throw new IllegalArgumentException("matmul: inner dimensions differ: op(a) is [" + m
                    + ", " + k + "] (a " + Arrays.toString(sa) + ", transposeA=" + transposeA
                    + ") and op(b) is [" + kb + ", " + n + "] (b " + Arrays.toString(sb)
                    + ", transposeB=" + transposeB + "); op(a) columns must equal op(b) rows");
        }
        int[] s = {m, n};
        Shapes.numelInt("matmul", s);
        return floats(s, MatMul.multiply(x.floats(), transposeA, y.floats(), transposeB, m, k, n));
    }

    // ---- codebooks -----------------------------------------------------------------------------

    @Override
    public Tensor gather(Tensor table, Tensor codes) {
        checkOpen("gather");
        RefTensor t = useTable("gather", table);
        RefTensor c = useUint8("gather", "codes", codes);
        float[] lut = t.floats();
        byte[] code = c.bytes();
        checkCodesIndex("gather", code, lut.length);
        float[] out = new float[code.length];
        for (int i = 0; i < code.length; i++) {
            out[i] = lut[code[i] & 0xFF];
        }
        return floats(c.shapeView().clone(), out);
    }

    @Override
    public Tensor blockAbsMax(Tensor x, int blockSize) {
        checkOpen("blockAbsMax");
        RefTensor r = useFloat("blockAbsMax", "x", x);
        Checks.inRange("blockAbsMax: blockSize", blockSize, 1, Integer.MAX_VALUE);
        int n = r.size();
        if (n == 0) {
            throw new IllegalArgumentException("blockAbsMax: x must have at least 1 element, got "
                    + "shape " + Arrays.toString(r.shapeView()));
        }
        float[] out = new float[HostKernels.blockCount(n, blockSize)];
        HostKernels.blockAbsMax(r.floats(), n, blockSize, out);
        return floats(new int[] {out.length}, out);
    }

    @Override
    public Tensor encode(Tensor x, Tensor scale, int blockSize, ScaleMode mode, BucketTable table) {
        checkOpen("encode");
        RefTensor r = useFloat("encode", "x", x);
        RefTensor s = useFloat("encode", "scale", scale);
        Checks.inRange("encode: blockSize", blockSize, 1, Integer.MAX_VALUE);
        Checks.notNull("encode: mode", mode);
        Checks.notNull("encode: table", table);
        int n = r.size();
        checkScale("encode", s, n, blockSize);
        byte[] out = new byte[n];
        HostKernels.encode(r.floats(), n, s.floats(), blockSize, mode, table, out);
        return bytes(DType.UINT8, r.shapeView().clone(), out);
    }

    @Override
    public Tensor blockCodebookFit(Tensor x, Tensor scale, int blockSize, ScaleMode mode,
            BucketTable table, Tensor values) {
        checkOpen("blockCodebookFit");
        RefTensor r = useFloat("blockCodebookFit", "x", x);
        RefTensor s = useFloat("blockCodebookFit", "scale", scale);
        RefTensor v = useTable("blockCodebookFit", values);
        Checks.inRange("blockCodebookFit: blockSize", blockSize, 1, Integer.MAX_VALUE);
        Checks.notNull("blockCodebookFit: mode", mode);
        Checks.notNull("blockCodebookFit: table", table);
        int n = r.size();
        if (n == 0) {
            throw new IllegalArgumentException("blockCodebookFit: x must have at least 1 element, "
                    + "got shape " + java.util.Arrays.toString(r.shapeView()));
        }
        int nb = HostKernels.blockCount(n, blockSize);
        int sets = HostKernels.fitScaleSets(s.shapeView(), n, blockSize);
        HostKernels.requireCodesIndexValues("blockCodebookFit", table, v.size());
        float[] out = new float[3 * sets * nb];
        HostKernels.blockCodebookFit(r.floats(), n, s.floats(), sets, blockSize, mode, table,
                v.floats(), out);
        return floats(s.rank() == 1 ? new int[] {nb, 3} : new int[] {sets, nb, 3}, out);
    }

    @Override
    public Tensor decode(Tensor codes, Tensor table, Tensor scale, int blockSize) {
        checkOpen("decode");
        RefTensor c = useUint8("decode", "codes", codes);
        RefTensor t = useTable("decode", table);
        RefTensor s = useFloat("decode", "scale", scale);
        Checks.inRange("decode: blockSize", blockSize, 1, Integer.MAX_VALUE);
        int n = c.size();
        checkScale("decode", s, n, blockSize);
        checkCodesIndex("decode", c.bytes(), t.size());
        float[] out = new float[n];
        HostKernels.decode(c.bytes(), n, t.floats(), s.floats(), blockSize, out);
        return floats(c.shapeView().clone(), out);
    }

    @Override
    public Tensor decodeResidual(Tensor x, Tensor codes, Tensor table, Tensor scale,
            int blockSize) {
        checkOpen("decodeResidual");
        RefTensor r = useFloat("decodeResidual", "x", x);
        RefTensor c = useUint8("decodeResidual", "codes", codes);
        RefTensor t = useTable("decodeResidual", table);
        RefTensor s = useFloat("decodeResidual", "scale", scale);
        Checks.inRange("decodeResidual: blockSize", blockSize, 1, Integer.MAX_VALUE);
        int n = c.size();
        if (r.size() != n) {
            throw new IllegalArgumentException("decodeResidual: x has " + r.size()
                    + " elements " + Arrays.toString(r.shapeView()) + ", codes " + n
                    + "; they must have as many");
        }
        checkScale("decodeResidual", s, n, blockSize);
        checkCodesIndex("decodeResidual", c.bytes(), t.size());
        float[] out = new float[n];
        HostKernels.decodeResidual(r.floats(), c.bytes(), n, t.floats(), s.floats(), blockSize,
                out);
        return floats(r.shapeView().clone(), out);
    }

    @Override
    public Tensor pack(Tensor codes, int bits, PackOrder order, int padCode) {
        checkOpen("pack");
        RefTensor c = useUint8("pack", "codes", codes);
        Checks.oneOf("pack: bits", bits, PACK_BITS);
        Checks.notNull("pack: order", order);
        int maxCode = (1 << bits) - 1;
        Checks.inRange("pack: padCode", padCode, 0, maxCode);
        byte[] code = c.bytes();
        int n = code.length;
        for (int i = 0; i < n; i++) {
            if ((code[i] & 0xFF) > maxCode) {
                throw new IllegalArgumentException("pack: codes[" + i + "] = " + (code[i] & 0xFF)
                        + " does not fit in " + bits + " bits (allowed: [0, " + maxCode + "])");
            }
        }
        byte[] out = new byte[HostKernels.packedLength(n, bits)];
        HostKernels.pack(code, n, bits, order, padCode, out);
        return bytes(DType.UINT8, new int[] {out.length}, out);
    }

    @Override
    public Tensor unpack(Tensor packed, int bits, PackOrder order, int count) {
        checkOpen("unpack");
        RefTensor p = useUint8("unpack", "packed", packed);
        Checks.oneOf("unpack: bits", bits, PACK_BITS);
        Checks.notNull("unpack: order", order);
        Checks.inRange("unpack: count", count, 0, Integer.MAX_VALUE);
        int needed = HostKernels.packedLength(count, bits);
        if (needed > p.size()) {
            throw new IllegalArgumentException("unpack: count " + count + " at " + bits
                    + " bits needs " + needed + " packed bytes, packed has " + p.size());
        }
        byte[] out = new byte[count];
        HostKernels.unpack(p.bytes(), bits, order, count, out);
        return bytes(DType.UINT8, new int[] {count}, out);
    }

    // ---- helpers -------------------------------------------------------------------------------

    private Tensor unary(String op, Elementwise.Unary kind, Tensor a, float p, float q) {
        checkOpen(op);
        RefTensor x = useFloat(op, "a", a);
        return floats(x.shapeView().clone(), Elementwise.unary(kind, x.floats(), p, q));
    }

    private Tensor binary(String op, Elementwise.Binary kind, Tensor a, Tensor b) {
        checkOpen(op);
        RefTensor x = useFloat(op, "a", a);
        RefTensor y = useFloat(op, "b", b);
        Broadcast plan = plan(op, x, y);
        float[] out = Elementwise.binary(kind, plan, x.floats(), y.floats());
        return floats(broadcastShape(op, x, y), out);
    }

    private Tensor compare(String op, Elementwise.Compare kind, Tensor a, Tensor b) {
        checkOpen(op);
        RefTensor x = useFloat(op, "a", a);
        RefTensor y = useFloat(op, "b", b);
        Broadcast plan = plan(op, x, y);
        return bytes(DType.BOOL, broadcastShape(op, x, y),
                Elementwise.compare(kind, plan, x.floats(), y.floats()));
    }

    private static int[] broadcastShape(String op, RefTensor x, RefTensor y) {
        return Shapes.broadcast(op, x.shapeView(), y.shapeView());
    }

    private static Broadcast plan(String op, RefTensor x, RefTensor y) {
        int[] s = broadcastShape(op, x, y);
        Shapes.numelInt(op, s);
        return new Broadcast(s, x.shapeView(), y.shapeView());
    }

    private Tensor reduceLast(String op, Reductions.Last kind, Tensor a) {
        checkOpen(op);
        RefTensor x = useFloat(op, "a", a);
        int[] shape = x.shapeView();
        if (shape.length == 0) {
            throw new IllegalArgumentException(op + ": a must have rank >= 1, got shape []");
        }
        int len = shape[shape.length - 1];
        if (len == 0 && kind != Reductions.Last.SUM) {
            throw new IllegalArgumentException(op + ": the last axis must not be empty, got shape "
                    + Arrays.toString(shape));
        }
        int[] s = Arrays.copyOf(shape, shape.length - 1);
        int rows = Shapes.numelInt(op, s);
        return floats(s, Reductions.last(kind, x.floats(), rows, len));
    }

    private void checkOpen(String op) {
        if (!open) {
            throw new IllegalStateException(op + ": this scope is closed");
        }
    }

    /** The live reference tensor behind {@code t}, or the exception the contract asks for. */
    private static RefTensor use(String op, String name, Tensor t) {
        if (t == null) {
            throw new IllegalArgumentException(op + ": " + name + " must not be null");
        }
        if (!(t instanceof RefTensor)) {
            throw new IllegalArgumentException(op + ": " + name + " belongs to backend "
                    + backendName(t) + ", not " + ReferenceBackend.NAME
                    + " (tensors of different backends cannot be mixed)");
        }
        RefTensor r = (RefTensor) t;
        if (!r.isAlive()) {
            throw new IllegalStateException(op + ": " + name + " (" + r.describe()
                    + ") is no longer alive: the scope that owned it was closed");
        }
        return r;
    }

    private static String backendName(Tensor t) {
        return t.backend() == null ? t.getClass().getName()
                : t.backend().name() + " (" + t.backend().device() + ")";
    }

    private static RefTensor useFloat(String op, String name, Tensor t) {
        RefTensor r = use(op, name, t);
        if (r.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException(op + ": " + name + " must be FLOAT32, got "
                    + r.describe());
        }
        return r;
    }

    private static RefTensor useUint8(String op, String name, Tensor t) {
        RefTensor r = use(op, name, t);
        if (r.dtype() != DType.UINT8) {
            throw new IllegalArgumentException(op + ": " + name + " must be UINT8, got "
                    + r.describe());
        }
        return r;
    }

    private static RefTensor useTable(String op, Tensor t) {
        RefTensor r = useFloat(op, "table", t);
        if (r.rank() != 1 || r.size() == 0) {
            throw new IllegalArgumentException(op + ": table must be 1-D with at least 1 entry, "
                    + "got " + r.describe());
        }
        return r;
    }

    private static void requireRank(String op, String name, RefTensor r, int rank) {
        if (r.rank() != rank) {
            throw new IllegalArgumentException(op + ": " + name + " must be " + rank + "-D, got "
                    + r.describe());
        }
    }

    private static void checkRange(String op, String what, int from, int to, int[] shape) {
        if (from < 0 || from > to || to > shape[0]) {
            throw new IllegalArgumentException(op + ": " + what + " [" + from + ", " + to
                    + ") out of range for size " + shape[0] + " (allowed: 0 <= from <= to <= "
                    + shape[0] + ")");
        }
    }

    private static void checkScale(String op, RefTensor scale, int n, int blockSize) {
        int blocks = HostKernels.blockCount(n, blockSize);
        if (scale.rank() != 1 || scale.size() != blocks) {
            throw new IllegalArgumentException(op + ": scale must be FLOAT32 [" + blocks
                    + "] (ceil(" + n + " / " + blockSize + ") blocks), got " + scale.describe());
        }
    }

    private static void checkCodesIndex(String op, byte[] codes, int tableSize) {
        if (tableSize >= 256) {
            return;
        }
        for (int i = 0; i < codes.length; i++) {
            if ((codes[i] & 0xFF) >= tableSize) {
                throw new IllegalArgumentException(op + ": codes[" + i + "] = " + (codes[i] & 0xFF)
                        + " is out of range for a table of " + tableSize + " entries (allowed: [0, "
                        + (tableSize - 1) + "])");
            }
        }
    }

    private static int[] shape(String op, int[] shape) {
        Checks.notNull(op + ": shape", shape);
        return shape.clone();
    }

    private RefTensor floats(int[] shape, float[] data) {
        RefTensor t = RefTensor.ofFloats(this, shape, data);
        owned.add(t);
        return t;
    }

    private RefTensor bytes(DType dtype, int[] shape, byte[] data) {
        RefTensor t = RefTensor.ofBytes(this, dtype, shape, data);
        owned.add(t);
        return t;
    }

    private RefTensor like(RefTensor r, int[] shape, float[] floats, byte[] bytes) {
        return r.dtype() == DType.FLOAT32 ? floats(shape, floats) : bytes(r.dtype(), shape, bytes);
    }
}
