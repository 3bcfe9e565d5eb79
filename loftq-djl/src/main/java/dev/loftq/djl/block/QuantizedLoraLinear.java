package dev.loftq.djl.block;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.Dropout;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import dev.loftq.core.Checks;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.backend.NdScalars;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A frozen quantized linear layer plus a trainable LoRA term, as a DJL block:
 * {@code y = x·deq(Q)ᵀ + s·(dropout(x)·Aᵀ)·Bᵀ + b} over inputs {@code [..., in]} of any leading
 * shape, like DJL's {@link Linear} (Hu et al. 2021, LoRA; Dettmers et al. 2023, QLoRA; Li et al.
 * 2023, LoftQ).
 *
 * <p><b>State.</b> Q (packed codes and scales from any {@link dev.loftq.quant.quantizer.Quantizer})
 * and the bias {@code b} are frozen: they are plain tensors of the layer's {@link TensorScope},
 * not DJL {@link Parameter}s, so no optimizer sees or updates them and they count in no parameter
 * list. The only parameters ({@link #getParameters()}) are {@code lora_A} [r, in] and {@code lora_B}
 * [out, r], FLOAT32, with gradients required. {@code s} is {@code alpha / r}, or
 * {@code alpha / √r} with rsLoRA; the caller passes it already computed.
 *
 * <p><b>Dequantization.</b> By default the weight is dequantized on the fly in every forward pass
 * (for 4-bit codebook weights on the CPU in one host pass over a host copy of the packed codes,
 * bit for bit what the quantizer's own {@code dequantize} gives; see {@link #dequantize}),
 * in a temporary scope that is closed before forward returns (PyTorch's autograd keeps its own
 * reference when the input needs a gradient): memory stays at the packed size (about 0.52 bytes
 * per weight for NF4 with double quantization; twice that with the host copy) plus one transient
 * float32 copy during a call. With
 * On the CPU with PyTorch's grad mode off (inference: no {@code GradientCollector} open), the
 * 4-bit weight is decoded into a per-thread reusable buffer instead of fresh memory
 * ({@link #releaseThreadWorkspace()}); while gradients are collected, into fresh memory that
 * autograd may keep. With
 * {@link Builder#optCacheDequantized(boolean) optCacheDequantized(true)} the float32 weight is made
 * once, on first use, and kept until {@link #close()}: forward then costs about what an fp32
 * {@code Linear} costs, for 4 bytes per weight of memory.
 *
 * <p><b>Why a {@code Linear}.</b> The class extends {@link Linear} so that it fits every field and
 * collection typed {@code Linear} (DJL's {@code ScaledDotProductAttentionBlock} holds its
 * projections so); all of {@code Linear}'s behaviour is overridden, and it has no {@code weight} or
 * {@code bias} parameter. {@link #merge(NDManager)} makes a plain fp32 {@code Linear} for export
 * or inference; this layer stays as it is, so training can go on from the separate adapters.
 *
 * <p><b>Lifetime.</b> The layer owns its scope (given to the builder): {@link #close()} frees Q,
 * the bias, the cache and the LoRA arrays. Forward after close throws
 * {@link IllegalStateException}.
 *
 * <p>Thread-safety: forward may run on several threads at once (the cache is made once under a
 * lock); replacing parameter arrays is not thread-safe.
 */
public final class QuantizedLoraLinear extends Linear implements AutoCloseable {
    /** DJL save-format version of this block. */
    private static final byte VERSION = 1;

    /** DJL parameter name of A. */
    public static final String LORA_A = "lora_A";

    /** DJL parameter name of B. */
    public static final String LORA_B = "lora_B";

    private final String name;
    private final TensorScope scope;
    private final QuantizedTensor quantized;
    private final NDArray bias;
    private final Parameter loraA;
    private final Parameter loraB;
    private final int in;
    private final int out;
    private final int rank;
    private final float scaling;
    private final float dropout;
    private final boolean cacheDequantized;
    private final HostNibbleDecoder hostDecoder;
    private final AtomicBoolean closed = new AtomicBoolean();
    private volatile NDArray cached;

    private QuantizedLoraLinear(Builder b, int in, int out, int rank) {
        super(unitsOnly(out));
        // Linear's constructor registered "weight" (and no bias); this layer has neither.
        parameters.clear();
        this.version = VERSION;
        this.name = b.name;
        this.scope = b.scope;
        this.quantized = b.quantized;
        this.bias = b.bias == null ? null : DjlBackend.ndArray(b.bias);
        this.in = in;
        this.out = out;
        this.rank = rank;
        this.scaling = b.scaling;
        this.dropout = b.dropout;
        this.cacheDequantized = b.cache;
        this.hostDecoder = HostNibbleDecoder.tryCreate(scope, quantized);
        NDManager manager = DjlBackend.manager(scope);
        this.loraA = addParameter(Parameter.builder().setName(LORA_A).setType(Parameter.Type.WEIGHT)
                .optArray(ownCopy(manager, b.loraA)).build());
        this.loraB = addParameter(Parameter.builder().setName(LORA_B).setType(Parameter.Type.WEIGHT)
                .optArray(ownCopy(manager, b.loraB)).build());
        loraA.getArray().setRequiresGradient(true);
        loraB.getArray().setRequiresGradient(true);
        this.inputShapes = new Shape[] {new Shape(1, in)};
    }

    private static Linear.Builder unitsOnly(int out) {
        return new Linear.Builder() {}.setUnits(out).optBias(false);
    }

    /** A fresh array in {@code manager} with {@code t}'s values, so the parameter owns its memory. */
    private static NDArray ownCopy(NDManager manager, Tensor t) {
        NDArray src = DjlBackend.ndArray(t);
        NDArray copy = manager.create(src.getShape(), DataType.FLOAT32, src.getDevice());
        src.copyTo(copy);
        return copy;
    }

    /**
     * Starts a layer. (Named so because {@code builder()} is {@link Linear#builder()}, inherited,
     * which builds a plain Linear.)
     */
    public static Builder loraBuilder() {
        return new Builder();
    }

    // ---- forward ------------------------------------------------------------------------------

    @Override
    protected NDList forwardInternal(ParameterStore parameterStore, NDList inputs, boolean training,
            PairList<String, Object> params) {
        requireOpen();
        NDArray x = inputs.singletonOrThrow();
        Shape shape = x.getShape();
        if (shape.dimension() < 1 || shape.get(shape.dimension() - 1) != in) {
            throw new IllegalArgumentException("QuantizedLoraLinear " + name + " [" + out + ", " + in
                    + "]: input must be [..., " + in + "], got " + shape);
        }
        DataType inType = x.getDataType();
        NDArray x32 = inType == DataType.FLOAT32 ? x : x.toType(DataType.FLOAT32, false);
        NDArray a = parameterStore.getValue(loraA, x.getDevice(), training);
        NDArray b = parameterStore.getValue(loraB, x.getDevice(), training);
        NDArray base;
        if (cacheDequantized) {
            base = Linear.linear(x32, dequantizedWeight(), bias).head();
        } else {
            try (TensorScope tmp = scope.newChild()) {
                NDArray w = hostDecoder != null && !JniUtils.isGradMode()
                        ? workspaceWeight(DjlBackend.manager(tmp))
                        : DjlBackend.ndArray(dequantize(tmp));
                base = Linear.linear(x32, w, bias).head(); // in x's manager: outlives tmp
            }
        }
        NDArray loraIn = training && dropout > 0f ? Dropout.dropout(x32, dropout, true).head() : x32;
        // s is applied to the narrow [..., r] product: one pass over r columns, not out
        // the float operand through NdScalars: autograd keeps it for the backward pass
        NDArray lora = Linear.linear(NdScalars.muli(Linear.linear(loraIn, a).head(), scaling), b)
                .head();
        NDArray y = base.addi(lora);
        return new NDList(inType == DataType.FLOAT32 ? y : y.toType(inType, false));
    }

    private NDArray dequantizedWeight() {
        NDArray w = cached;
        if (w == null) {
            synchronized (this) {
                w = cached;
                if (w == null) {
                    w = DjlBackend.ndArray(dequantize(scope));
                    cached = w;
                }
            }
        }
        return w;
    }

    /**
     * deq(Q) decoded into this thread's {@link DequantWorkspace} and seen by PyTorch in place:
     * valid until this thread's next forward, which is enough for one synchronous CPU matmul while
     * PyTorch's grad mode is off (no {@code GradientCollector} open), so autograd keeps nothing.
     */
    private NDArray workspaceWeight(NDManager manager) {
        java.nio.ByteBuffer buf = DequantWorkspace.forThread(hostDecoder.numel());
        hostDecoder.decode(buf.asFloatBuffer());
        return manager.create(buf, new Shape(out, in), DataType.FLOAT32);
    }

    /**
     * Frees the calling thread's dequantization workspace: a direct buffer as large as the
     * largest 4-bit weight this thread ran through an on-the-fly inference forward (64 MB for
     * 4096 × 4096). It is made again when needed.
     */
    public static void releaseThreadWorkspace() {
        DequantWorkspace.release();
    }

    /**
     * deq(Q), FLOAT32 [out, in], owned by {@code target}: bit for bit
     * {@code quantized().dequantize(target)}, through a single host pass for 4-bit codebook
     * weights on the CPU.
     */
    public Tensor dequantize(TensorScope target) {
        requireOpen();
        return hostDecoder != null ? hostDecoder.dequantize(target) : quantized.dequantize(target);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputs) {
        Shape s = inputs[0];
        if (s.dimension() < 1 || s.get(s.dimension() - 1) != in) {
            throw new IllegalArgumentException("QuantizedLoraLinear " + name + " [" + out + ", " + in
                    + "]: input must be [..., " + in + "], got " + s);
        }
        return new Shape[] {s.slice(0, s.dimension() - 1).add(out)};
    }

    @Override
    public PairList<String, Shape> describeInput() {
        return new PairList<>(java.util.List.of("linearInput"), java.util.List.of(new Shape(-1, in)));
    }

    @Override
    protected void beforeInitialize(Shape... inputShapes) {
        this.inputShapes = inputShapes;
    }

    /** The parameters exist from construction: nothing to shape. */
    @Override
    public void prepare(Shape[] inputShapes) {}

    // ---- merge ----------------------------------------------------------------------------------

    /**
     * A full-precision DJL {@link Linear} with weight {@code deq(Q) + s·B·A} and this layer's bias,
     * its parameters created and initialized in {@code manager} (input shape [1, in]). This layer is
     * not changed.
     *
     * @param manager owns the new Linear's parameters; must be on the layer's device
     */
    public Linear merge(NDManager manager) {
        requireOpen();
        Checks.notNull("manager", manager);
        Linear linear = Linear.builder().setUnits(out).optBias(bias != null).build();
        linear.initialize(manager, DataType.FLOAT32, new Shape(1, in));
        try (TensorScope tmp = scope.newChild()) {
            NDManager m = DjlBackend.manager(tmp);
            NDArray w = DjlBackend.ndArray(quantized.dequantize(tmp));
            NDArray a = loraA.getArray().duplicate();
            NDArray b = loraB.getArray().duplicate();
            a.attach(m);
            b.attach(m);
            NDArray merged = w.add(NdScalars.muli(b.matMul(a), scaling));
            merged.attach(m);
            merged.copyTo(linear.getParameters().get("weight").getArray());
            if (bias != null) {
                bias.copyTo(linear.getParameters().get("bias").getArray());
            }
        }
        return linear;
    }

    // ---- accessors ------------------------------------------------------------------------------

    /** The path or name given to the builder (used in messages). */
    public String name() {
        return name;
    }

    /** Input features. */
    public int inFeatures() {
        return in;
    }

    /** Output features. */
    public int outFeatures() {
        return out;
    }

    /** LoRA rank r. */
    public int rank() {
        return rank;
    }

    /** The LoRA scaling s of the forward. */
    public float scaling() {
        return scaling;
    }

    /** Dropout rate on the LoRA input while training. */
    public float dropout() {
        return dropout;
    }

    /** Whether the dequantized weight is cached. */
    public boolean cachesDequantized() {
        return cacheDequantized;
    }

    /** Q, owned by this layer: do not close or keep it elsewhere. */
    public QuantizedTensor quantized() {
        return quantized;
    }

    /** The frozen bias [out] (owned by this layer; do not modify), or null. */
    public NDArray bias() {
        return bias;
    }

    /** The trainable A [r, in]. */
    public Parameter loraA() {
        return loraA;
    }

    /** The trainable B [out, r]. */
    public Parameter loraB() {
        return loraB;
    }

    /** The layer's scope (owns Q and the bias); for writers that need to read them. */
    public TensorScope scope() {
        return scope;
    }

    /** Whether {@link #close()} has run. */
    public boolean isClosed() {
        return closed.get();
    }

    /** Frees Q, the bias, the cache and the LoRA arrays. Idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            cached = null;
            scope.close();
        }
    }

    private void requireOpen() {
        if (closed.get()) {
            throw new IllegalStateException("QuantizedLoraLinear " + name + " is closed");
        }
    }

    @Override
    public String toString() {
        return "QuantizedLoraLinear(" + name + ": " + in + " -> " + out + ", " + quantized.format()
                + " " + quantized.bits() + "-bit, r=" + rank + ", s=" + scaling
                + (dropout > 0 ? ", dropout=" + dropout : "") + (bias != null ? ", bias" : "")
                + (cacheDequantized ? ", cached" : "") + ")";
    }

    /**
     * Builds a {@link QuantizedLoraLinear}. Required: {@link #setQuantized}, {@link #setLora},
     * {@link #setScaling}. The scope given to {@code setQuantized} becomes the layer's: every
     * tensor passed in must belong to it (or to a scope it outlives) and the layer closes it.
     */
    public static final class Builder {
        private String name = "layer";
        private TensorScope scope;
        private QuantizedTensor quantized;
        private Tensor bias;
        private Tensor loraA;
        private Tensor loraB;
        private float scaling = Float.NaN;
        private float dropout;
        private boolean cache;

        private Builder() {}

        /**
         * The frozen weight Q [out, in] and the scope that owns it (a {@link DjlBackend} scope,
         * handed over to the layer).
         */
        public Builder setQuantized(TensorScope scope, QuantizedTensor quantized) {
            this.scope = scope;
            this.quantized = quantized;
            return this;
        }

        /** A [r, in] and B [out, r], FLOAT32 tensors of the same backend; copied into the layer. */
        public Builder setLora(Tensor loraA, Tensor loraB) {
            this.loraA = loraA;
            this.loraB = loraB;
            return this;
        }

        /** The LoRA scaling s (alpha / r, or alpha / √r for rsLoRA); finite and > 0. */
        public Builder setScaling(float scaling) {
            this.scaling = scaling;
            return this;
        }

        /** The frozen bias [out], FLOAT32, owned by the layer's scope. Default: none. */
        public Builder optBias(Tensor bias) {
            this.bias = bias;
            return this;
        }

        /** Dropout rate in [0, 1) on the LoRA input while training. Default 0. */
        public Builder optDropout(float dropout) {
            this.dropout = dropout;
            return this;
        }

        /** Cache the dequantized weight (speed for memory, see the class doc). Default false. */
        public Builder optCacheDequantized(boolean cache) {
            this.cache = cache;
            return this;
        }

        /** The name in messages, usually the module path. Default {@code "layer"}. */
        public Builder optName(String name) {
            this.name = Checks.notNull("name", name);
            return this;
        }

        /**
         * Validates and builds.
         *
         * @throws IllegalArgumentException naming the layer and the shapes when Q is not 2-D, A or
         *     B do not fit it, the bias is not [out], or the scaling or dropout is out of range
         */
        public QuantizedLoraLinear build() {
            Checks.notNull("scope", scope);
            Checks.notNull("quantized", quantized);
            Checks.notNull("loraA", loraA);
            Checks.notNull("loraB", loraB);
            int[] q = quantized.shape();
            if (q.length != 2) {
                throw new IllegalArgumentException(name + ": Q must be [out, in], got "
                        + Arrays.toString(q));
            }
            int out = q[0];
            int in = q[1];
            int[] a = loraA.shape();
            int[] bShape = loraB.shape();
            if (a.length != 2 || bShape.length != 2 || a[1] != in || bShape[0] != out
                    || bShape[1] != a[0] || a[0] < 1) {
                throw new IllegalArgumentException(name + ": LoRA factors must be A [r, " + in
                        + "] and B [" + out + ", r], got A " + Arrays.toString(a) + " and B "
                        + Arrays.toString(bShape));
            }
            if (a[0] > Math.min(in, out)) {
                throw new IllegalArgumentException(name + ": rank must be in [1, min(out, in) = "
                        + Math.min(in, out) + "], got " + a[0]);
            }
            if (loraA.dtype() != DType.FLOAT32 || loraB.dtype() != DType.FLOAT32) {
                throw new IllegalArgumentException(name + ": LoRA factors must be FLOAT32, got "
                        + loraA.dtype() + " and " + loraB.dtype());
            }
            if (bias != null && (bias.shape().length != 1 || bias.shape()[0] != out
                    || bias.dtype() != DType.FLOAT32)) {
                throw new IllegalArgumentException(name + ": bias must be FLOAT32 [" + out
                        + "], got " + bias.dtype() + " " + Arrays.toString(bias.shape()));
            }
            if (!(scaling > 0f) || Float.isInfinite(scaling)) {
                throw new IllegalArgumentException(name + ": scaling must be finite and > 0, got "
                        + scaling);
            }
            if (!(dropout >= 0f && dropout < 1f)) {
                throw new IllegalArgumentException(name + ": dropout must be in [0, 1), got "
                        + dropout);
            }
            return new QuantizedLoraLinear(this, in, out, a[0]);
        }
    }
}
