package dev.loftq.core.tensor;

/**
 * The tensor SPI: a lifetime scope that is also the factory of every operation. Each result is
 * owned by the scope that made it and freed when that scope closes; inputs may come from any open
 * scope of the same backend. DJL's {@code NDManager} maps onto this directly.
 *
 * <p>General rules, checked by every backend (violations throw {@link IllegalArgumentException}
 * whose message names the operation, the shapes or values seen and what is allowed):
 * <ul>
 *   <li>Arithmetic, comparisons and reductions take FLOAT32; {@code where} takes a BOOL condition;
 *       codes and packed bytes are UINT8.</li>
 *   <li>Binary elementwise operations broadcast with numpy rules ({@link Shapes#broadcast}).</li>
 *   <li>Results are fresh tensors; no operation modifies its inputs.</li>
 *   <li>Using a tensor whose scope has closed, or a closed scope, throws
 *       {@link IllegalStateException} naming the operation.</li>
 *   <li>Mixing tensors of two backends throws {@link IllegalArgumentException}.</li>
 * </ul>
 * Floating-point results of elementwise operations are the correctly rounded float32 result
 * unless stated otherwise; matmul and sum-like reductions may differ between backends by their
 * summation order (the test kit states the tolerances).
 */
public interface TensorScope extends AutoCloseable {
    /** The backend this scope belongs to. */
    Backend backend();

    /** A child scope: closed with this one at the latest. */
    TensorScope newChild();

    /**
     * Moves {@code t} (owned by this scope's child or by any scope of the same backend that is
     * still open) into this scope, so it survives the closing of its former owner. Returns t.
     */
    <T extends Tensor> T keep(T t);

    /** Frees every tensor made in this scope and its children. Idempotent. */
    @Override
    void close();

    /** False after {@link #close()}. */
    boolean isOpen();

    // ---- creation and host copies -----------------------------------------------------------

    /** A FLOAT32 tensor holding a copy of {@code data} (row-major) in {@code shape}. */
    Tensor fromHost(float[] data, int... shape);

    /** A UINT8 tensor holding a copy of {@code data}; byte values are read as unsigned. */
    Tensor fromHostBytes(byte[] data, int... shape);

    /** A FLOAT32 tensor filled with {@code value}. */
    Tensor full(float value, int... shape);

    /**
     * Normal samples {@code mean + std * N(0, 1)} from a portable generator seeded with
     * {@code seed}: identical on every backend for the same arguments. {@code std >= 0}, both
     * finite.
     */
    Tensor randomNormal(long seed, float mean, float std, int... shape);

    /** A row-major copy of a FLOAT32 tensor. */
    float[] toFloatArray(Tensor t);

    /** A row-major copy of a UINT8 or BOOL tensor (BOOL as 0/1). */
    byte[] toByteArray(Tensor t);

    /** The value of a single-element FLOAT32 tensor. */
    default float item(Tensor t) {
        float[] v = toFloatArray(t);
        if (v.length != 1) {
            throw new IllegalArgumentException("item: tensor must have exactly 1 element, got shape "
                    + java.util.Arrays.toString(t.shape()));
        }
        return v[0];
    }

    // ---- shape -------------------------------------------------------------------------------

    /** Same elements in a new shape; at most one dimension may be -1. Any dtype. */
    Tensor reshape(Tensor t, int... shape);

    /** The transpose of a 2-D tensor. Any dtype. */
    Tensor transpose(Tensor t);

    /**
     * Rows {@code [from, to)} of a tensor of rank >= 1 (axis 0), {@code 0 <= from <= to <= dim(0)}.
     * Any dtype.
     */
    Tensor sliceRows(Tensor t, int from, int to);

    /**
     * Columns {@code [from, to)} of a 2-D tensor, {@code 0 <= from <= to <= dim(1)}. Any dtype.
     */
    Tensor sliceColumns(Tensor t, int from, int to);

    /**
     * Concatenation along {@code axis} in {@code [0, rank)}: at least one part; all parts have the
     * same rank (>= 1), the same dtype and equal sizes on every other axis.
     */
    Tensor concat(int axis, Tensor... parts);

    /**
     * Conversion between FLOAT32 and UINT8 (values clamped to [0, 255] and rounded half-even; NaN
     * becomes 0), BOOL to either (0/1), or to the same dtype (a copy). Anything else, e.g. to BOOL,
     * is rejected.
     */
    Tensor cast(Tensor t, DType dtype);

    // ---- arithmetic (FLOAT32, broadcasting) ----------------------------------------------------

    /** a + b. */
    Tensor add(Tensor a, Tensor b);

    /** a - b. */
    Tensor sub(Tensor a, Tensor b);

    /** a * b. */
    Tensor mul(Tensor a, Tensor b);

    /** a / b (IEEE: x/0 is ±Inf or NaN). */
    Tensor div(Tensor a, Tensor b);

    /** a + s. */
    Tensor add(Tensor a, float s);

    /** a * s. */
    Tensor mul(Tensor a, float s);

    /** a / s. Not the same as {@code mul(a, 1/s)} in float32. */
    Tensor div(Tensor a, float s);

    /** |a|. */
    Tensor abs(Tensor a);

    /** -a. */
    Tensor neg(Tensor a);

    /** sqrt(a) (NaN for negative values). */
    Tensor sqrt(Tensor a);

    /** Round half to even, as {@code torch.round}. */
    Tensor round(Tensor a);

    /**
     * min(max(a, lo), hi); requires lo <= hi. NaN stays NaN; the sign of a zero result is
     * unspecified.
     */
    Tensor clamp(Tensor a, float lo, float hi);

    /** 1 / (1 + exp(-a)). Within 2 ulp of the float64 result on every backend. */
    Tensor sigmoid(Tensor a);

    /**
     * Elementwise max(a, b) (broadcasting); NaN if either is NaN; the sign of a zero result is
     * unspecified.
     */
    Tensor maximum(Tensor a, Tensor b);

    /**
     * Elementwise min(a, b) (broadcasting); NaN if either is NaN; the sign of a zero result is
     * unspecified.
     */
    Tensor minimum(Tensor a, Tensor b);

    // ---- comparisons and selection ------------------------------------------------------------

    /** BOOL a > b (broadcasting); false when either is NaN. */
    Tensor gt(Tensor a, Tensor b);

    /** BOOL a < b (broadcasting); false when either is NaN. */
    Tensor lt(Tensor a, Tensor b);

    /** BOOL a == b (broadcasting); false when either is NaN. */
    Tensor eq(Tensor a, Tensor b);

    /** cond ? a : b elementwise; cond BOOL, a and b FLOAT32; all three broadcast together. */
    Tensor where(Tensor cond, Tensor a, Tensor b);

    // ---- reductions over the last axis (FLOAT32; result shape drops the last axis) ------------

    /**
     * Maximum over the last axis (NaN if any is NaN; the sign of a zero result is unspecified).
     * Rejects a zero-length last axis.
     */
    Tensor maxLast(Tensor a);

    /**
     * Minimum over the last axis (NaN if any is NaN; the sign of a zero result is unspecified).
     * Rejects a zero-length last axis.
     */
    Tensor minLast(Tensor a);

    /** Sum over the last axis. */
    Tensor sumLast(Tensor a);

    /** Mean over the last axis. Rejects a zero-length last axis. */
    Tensor meanLast(Tensor a);

    /**
     * Sum of squares of all elements, accumulated in double precision and returned to the host.
     * The building block of every error norm in this library. Each square may be formed in
     * float32 first (so |a| must stay below ~1.8e19 for a finite result).
     */
    double sumOfSquares(Tensor a);

    // ---- linear algebra -----------------------------------------------------------------------

    /**
     * op(a)·op(b) for 2-D FLOAT32 tensors, where op transposes when asked. Inner dimensions must
     * agree. Result [rows of op(a), columns of op(b)].
     */
    Tensor matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB);

    /** a·b for 2-D FLOAT32 tensors. */
    default Tensor matmul(Tensor a, Tensor b) {
        return matmul(a, false, b, false);
    }

    // ---- codebooks: coarse whole-matrix kernels -------------------------------------------------

    /**
     * Codebook lookup: a FLOAT32 tensor of codes' shape with {@code table[code]}. {@code table} is
     * 1-D FLOAT32; {@code codes} UINT8 of any shape; every code must index the table.
     */
    Tensor gather(Tensor table, Tensor codes);

    /**
     * Blockwise absolute maximum over the flat row-major elements of a FLOAT32 tensor: result
     * FLOAT32 [ceil(n / blockSize)], the last block holding the remaining elements. NaN if a block
     * holds a NaN. {@code blockSize >= 1}; n >= 1.
     */
    Tensor blockAbsMax(Tensor x, int blockSize);

    /**
     * Blockwise codebook encoding, one pass: for flat element i with block {@code b = i /
     * blockSize}, {@code xn} is {@code x[i]} normalised by {@code scale[b]} as {@code mode} says,
     * and the code is {@code table.encode(xn)} (so 0/0, x/0 and NaN follow IEEE and the table's
     * NaN code). {@code scale} is FLOAT32 [ceil(n / blockSize)]. Result UINT8 of x's shape.
     */
    Tensor encode(Tensor x, Tensor scale, int blockSize, ScaleMode mode, BucketTable table);

    /**
     * Blockwise least-squares statistics of a codebook fit, one pass and no per-element output:
     * with {@code xn} and the code as in {@link #encode} and {@code t = values[code]}, returns
     * FLOAT32 [ceil(n / blockSize), 3] holding per block {@code Σ x·t}, {@code Σ t²} and
     * {@code Σ x²}. Each sum is taken in 16 float partials, element e of the block (counted from
     * the block's start) adding its float product to partial e mod 16 in element order; the 16
     * partials are then added in order in double and rounded to float once (an order that SIMD
     * lanes follow, {@link HostKernels#FIT_LANES}). The
     * least-squares scale of block b for those codes is {@code Σx·t / Σt²}, and its squared error
     * at scale s is {@code Σx² − 2s·Σx·t + s²·Σt²}: what a scale search needs, without
     * materialising codes. {@code values} is FLOAT32 1-D and every code of {@code table} must
     * index it.
     *
     * <p>{@code scale} is FLOAT32 [nb] with nb = ceil(n / blockSize), or [m, nb] for m >= 1 sets
     * of block scales fitted in the same pass over x: then the result is [m, nb, 3], set j's
     * statistics bit for bit those of a call with scale row j alone.
     */
    Tensor blockCodebookFit(Tensor x, Tensor scale, int blockSize, ScaleMode mode,
            BucketTable table, Tensor values);

    /**
     * Blockwise decoding, one pass: {@code y[i] = f32(table[codes[i]] * scale[i / blockSize])}.
     * codes UINT8 (any shape), table FLOAT32 1-D, scale FLOAT32 [ceil(n / blockSize)]. Result
     * FLOAT32 of codes' shape.
     */
    Tensor decode(Tensor codes, Tensor table, Tensor scale, int blockSize);

    /**
     * The quantization residual in one pass: {@code x − decode(codes, table, scale, blockSize)}
     * bit for bit, without the decoded tensor (what an alternating quantizer such as LoftQ needs
     * at every step). {@code x} FLOAT32 with as many elements as {@code codes} (both read flat);
     * the rest as {@link #decode}. Result FLOAT32 of x's shape.
     */
    Tensor decodeResidual(Tensor x, Tensor codes, Tensor table, Tensor scale, int blockSize);

    /**
     * Packs UINT8 codes of {@code bits} in {1, 2, 3, 4, 8} into a bit stream; result UINT8
     * [ceil(n·bits / 8)]. Code j occupies stream bits [j·bits, (j+1)·bits). With
     * {@link PackOrder#MSB_FIRST} stream bit k is bit {@code 7 - k % 8} of byte {@code k / 8} and
     * each code is written most significant bit first (bitsandbytes 4-bit: first element in the
     * high nibble); with {@link PackOrder#LSB_FIRST} stream bit k is bit {@code k % 8} of byte
     * {@code k / 8} and codes are written least significant bit first (native LoftQ: first element
     * in the low bits). Unused bits of a short last byte hold {@code padCode} codes (truncated).
     * Codes and {@code padCode} must be in {@code [0, 2^bits)}.
     */
    Tensor pack(Tensor codes, int bits, PackOrder order, int padCode);

    /**
     * Inverse of {@link #pack}: the first {@code count} codes, UINT8 [count]. {@code packed} is
     * UINT8 (read flat) holding at least {@code ceil(count·bits / 8)} bytes; {@code count >= 0}.
     */
    Tensor unpack(Tensor packed, int bits, PackOrder order, int count);
}
