package dev.loftq.djl.wrap;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import dev.loftq.core.Checks;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.block.QuantizedLoraLinear;
import dev.loftq.djl.model.BlockPaths;
import dev.loftq.quant.loftq.LoftqPolicy;
import dev.loftq.quant.quantizer.Quantizer;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Replaces every selected {@link Linear} of a DJL block tree by a {@link QuantizedLoraLinear}
 * initialised from that Linear's weight and bias (peft's {@code get_peft_model} with a quantized
 * backbone):
 *
 * <pre>{@code
 * LoraWrapper wrapper = LoraWrapper.builder(backend)
 *         .setTargets(LayerSelector.glob("encoder.layer.*.attention.self.*"))
 *         .setSpec(new LoraSpec(CodebookQuantizer.bitsandbytesNf4DoubleQuant(), 16, 16f, false))
 *         .optInitializer(LoraInitializer.loftq(5, 42L))
 *         .build();
 * try (LoraModel lora = wrapper.wrap(root)) {
 *     lora.layers().forEach(l -> log.info("{}", l));
 *     // train root with DJL's Trainer: only lora_A / lora_B have gradients
 * }
 * }</pre>
 *
 * <p><b>What it replaces.</b> Blocks of class exactly {@code ai.djl.nn.core.Linear} whose path
 * (as {@link BlockPaths#byPath} names it) the selector accepts, with initialized parameters. The
 * tree is rewritten by {@link BlockRewriter} (children list and the fields forward uses), which
 * covers {@code SequentialBlock}/{@code ParallelBlock} trees, custom blocks holding their Linear
 * children in fields, and DJL's {@code ai.djl.nn.transformer} blocks; a place it cannot rewrite is
 * an {@link IllegalArgumentException} naming the path, and nothing is skipped silently. The
 * replaced Linears are not closed (their parameters stay with their manager).
 *
 * <p><b>Trainability.</b> Unless {@link Builder#optFreezeOthers(boolean) optFreezeOthers(false)},
 * every other parameter of the tree is frozen ({@link Parameter#freeze}), as peft does: an
 * optimizer then updates A and B only.
 *
 * <p><b>Mixed precision.</b> {@link Builder#rule} gives selected layers another {@link LoraSpec}
 * (e.g. 8-bit for the first layers, 2-bit for the rest, as LoftQ's mixed-precision recipe); the
 * first matching rule wins, the default spec applies otherwise.
 *
 * <p>Immutable and thread-safe; {@link #wrap} modifies the tree it is given.
 */
public final class LoraWrapper {
    private static final Logger LOG = LoggerFactory.getLogger(LoraWrapper.class);

    private final DjlBackend backend;
    private final LayerSelector targets;
    private final LoraSpec spec;
    private final List<Map.Entry<LayerSelector, LoraSpec>> rules;
    private final LoftqPolicy policy;
    private final LoraInitializer initializer;
    private final float dropout;
    private final boolean cacheDequantized;
    private final boolean freezeOthers;

    private LoraWrapper(Builder b) {
        this.backend = b.backend;
        this.targets = b.targets;
        this.spec = b.spec;
        this.rules = List.copyOf(b.rules);
        this.policy = b.policy;
        this.initializer = b.initializer;
        this.dropout = b.dropout;
        this.cacheDequantized = b.cacheDequantized;
        this.freezeOthers = b.freezeOthers;
    }

    /** Starts a wrapper whose layers keep their tensors in scopes of {@code backend}. */
    public static Builder builder(DjlBackend backend) {
        return new Builder(backend);
    }

    /**
     * The spec for the layer at {@code path}: the first matching rule's; else the default with the
     * quantizer and rank of the policy's first rule found in the path; else the default.
     */
    public LoraSpec specFor(String path, Block block) {
        for (Map.Entry<LayerSelector, LoraSpec> r : rules) {
            if (r.getKey().matches(path, block)) {
                return r.getValue();
            }
        }
        return policy.ruleFor(path).map(r -> new LoraSpec(r.quantizer().orElse(spec.quantizer()),
                r.rank().orElse(spec.rank()), spec.alpha(), spec.rsLora())).orElse(spec);
    }

    /**
     * Wraps the selected Linear layers of {@code root} in place.
     *
     * @param root an initialized block tree whose parameters are on the backend's device
     * @return the wrapped layers, in tree order; close it to free the quantized weights
     * @throws IllegalArgumentException if the selector matches no Linear (the message lists some
     *     existing Linear paths), matches a block that is not a plain {@code Linear} or one without
     *     initialized parameters, a rank exceeds min(out, in) of a layer, or a layer cannot be
     *     rewritten (see {@link BlockRewriter}); in every case naming the path. On any error the
     *     tree is left as it was (layers already swapped are put back) and nothing leaks.
     */
    public LoraModel wrap(Block root) {
        Checks.notNull("root", root);
        Map<String, Block> tree = BlockPaths.byPath(root);
        Map<String, Linear> selected = new LinkedHashMap<>();
        List<String> linearPaths = new ArrayList<>();
        for (Map.Entry<String, Block> e : tree.entrySet()) {
            String path = e.getKey();
            Block block = e.getValue();
            if (block instanceof Linear && !(block instanceof QuantizedLoraLinear)) {
                linearPaths.add(path);
            }
            if (path.isEmpty() || !targets.matches(path, block)) {
                continue;
            }
            if (block instanceof QuantizedLoraLinear) {
                throw new IllegalArgumentException("layer " + path + " is already a "
                        + "QuantizedLoraLinear; wrap the original model, or exclude it");
            }
            if (block.getClass() != Linear.class) {
                throw new IllegalArgumentException("target " + path + " is a "
                        + block.getClass().getName() + ", not an ai.djl.nn.core.Linear; only "
                        + "Linear layers can be wrapped (narrow the selector " + targets + ")");
            }
            selected.put(path, (Linear) block);
        }
        if (selected.isEmpty()) {
            throw new IllegalArgumentException("selector " + targets + " matches no Linear layer; "
                    + "the tree has " + linearPaths.size() + " Linear layers, e.g. "
                    + linearPaths.subList(0, Math.min(5, linearPaths.size())));
        }
        for (Map.Entry<String, Linear> e : selected.entrySet()) {
            checkLayer(e.getKey(), e.getValue(), specFor(e.getKey(), e.getValue()));
        }
        List<WrappedLayer> layers = new ArrayList<>();
        Map<Linear, QuantizedLoraLinear> done = new IdentityHashMap<>();
        List<Map.Entry<String, Linear>> replaced = new ArrayList<>();
        TensorScope modelScope = backend.newScope();
        try {
            for (Map.Entry<String, Linear> e : selected.entrySet()) {
                String path = e.getKey();
                Linear linear = e.getValue();
                QuantizedLoraLinear q = done.get(linear);
                if (q == null) {
                    WrappedLayer layer = build(modelScope, path, linear, specFor(path, linear));
                    q = layer.block();
                    done.put(linear, q);
                    layers.add(layer);
                }
                BlockRewriter.replace(root, path, q);
                replaced.add(e);
            }
        } catch (RuntimeException ex) {
            for (int i = replaced.size() - 1; i >= 0; i--) {
                BlockRewriter.replace(root, replaced.get(i).getKey(), replaced.get(i).getValue());
            }
            modelScope.close();
            throw ex;
        }
        if (freezeOthers) {
            freezeAllBut(root, layers);
        }
        LOG.debug("wrapped {} Linear layers of {}", layers.size(), root.getClass().getSimpleName());
        return new LoraModel(root, layers, modelScope);
    }

    private static void checkLayer(String path, Linear linear, LoraSpec s) {
        Parameter w = linear.getParameters().get("weight");
        if (w == null || !w.isInitialized()) {
            throw new IllegalArgumentException("Linear " + path + " has no initialized weight; "
                    + "initialize the model (or load its parameters) before wrapping");
        }
        long[] shape = w.getArray().getShape().getShape();
        Initializers.requireRank(path, (int) shape[0], (int) shape[1], s.rank());
    }

    private WrappedLayer build(TensorScope modelScope, String path, Linear linear,
            LoraSpec s) {
        TensorScope layerScope = modelScope.newChild();
        try {
            NDArray wArr = linear.getParameters().get("weight").getArray();
            Parameter biasParam = linear.getParameters().get("bias");
            Tensor w = float32(layerScope, wArr);
            LoraInitializer.Init init;
            try (TensorScope work = layerScope.newChild()) {
                init = initializer.initialize(work, w, path, s);
                init.quantized().keep(layerScope);
                layerScope.keep(init.loraA());
                layerScope.keep(init.loraB());
            }
            Tensor bias = biasParam == null ? null : float32(layerScope, biasParam.getArray());
            QuantizedLoraLinear q = QuantizedLoraLinear.loraBuilder().optName(path)
                    .setQuantized(layerScope, init.quantized())
                    .setLora(init.loraA(), init.loraB())
                    .setScaling(s.scaling()).optBias(bias).optDropout(dropout)
                    .optCacheDequantized(cacheDequantized).build();
            return new WrappedLayer(path, q.outFeatures(), q.inFeatures(),
                    q.quantized().format(), q.quantized().bits(),
                    q.quantized().bitsPerParameter(), q.rank(), s.alpha(), s.rsLora(), q.scaling(),
                    init.relativeError(), q);
        } catch (RuntimeException e) {
            layerScope.close();
            throw e;
        }
    }

    /** A FLOAT32 copy of {@code arr} owned by {@code scope}. */
    private static Tensor float32(TensorScope scope, NDArray arr) {
        NDArray copy = arr.toType(DataType.FLOAT32, true);
        copy.attach(DjlBackend.manager(scope));
        return DjlBackend.wrap(scope, copy);
    }

    private static void freezeAllBut(Block root, List<WrappedLayer> layers) {
        java.util.Set<Parameter> lora = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        for (WrappedLayer l : layers) {
            lora.add(l.block().loraA());
            lora.add(l.block().loraB());
        }
        for (Parameter p : root.getParameters().values()) {
            if (!lora.contains(p) && p.requiresGradient()) {
                p.freeze(true);
            }
        }
    }

    /** Builds a {@link LoraWrapper}. Required: {@link #setTargets}, {@link #setSpec}. */
    public static final class Builder {
        private final DjlBackend backend;
        private LayerSelector targets;
        private LoraSpec spec;
        private final List<Map.Entry<LayerSelector, LoraSpec>> rules = new ArrayList<>();
        private LoftqPolicy policy = LoftqPolicy.UNIFORM;
        private LoraInitializer initializer = LoraInitializer.qlora(0L);
        private float dropout;
        private boolean cacheDequantized;
        private boolean freezeOthers = true;

        private Builder(DjlBackend backend) {
            this.backend = Checks.notNull("backend", backend);
        }

        /** Which layers to wrap. */
        public Builder setTargets(LayerSelector targets) {
            this.targets = Checks.notNull("targets", targets);
            return this;
        }

        /** The default quantizer, rank and alpha. */
        public Builder setSpec(LoraSpec spec) {
            this.spec = Checks.notNull("spec", spec);
            return this;
        }

        /** Shorthand for {@code setSpec(new LoraSpec(quantizer, rank, alpha, false))}. */
        public Builder setSpec(Quantizer quantizer, int rank, float alpha) {
            return setSpec(new LoraSpec(quantizer, rank, alpha, false));
        }

        /** Layers {@code selector} matches get {@code layerSpec}; the first matching rule wins. */
        public Builder rule(LayerSelector selector, LoraSpec layerSpec) {
            rules.add(Map.entry(Checks.notNull("selector", selector),
                    Checks.notNull("layerSpec", layerSpec)));
            return this;
        }

        /**
         * Mixed precision by layer path, the same policy checkpoints use (e.g.
         * {@code LoftqPolicy.firstLayers(2, 4, 2)}): layers no {@link #rule} matches take the
         * quantizer and rank of the policy's first rule found in their path, keeping the default
         * spec's alpha and rsLoRA. Default: uniform.
         */
        public Builder optPolicy(LoftqPolicy policy) {
            this.policy = Checks.notNull("policy", policy);
            return this;
        }

        /** How Q, A and B start. Default {@link LoraInitializer#qlora qlora(0)}. */
        public Builder optInitializer(LoraInitializer initializer) {
            this.initializer = Checks.notNull("initializer", initializer);
            return this;
        }

        /** Dropout on the LoRA input while training, in [0, 1). Default 0. */
        public Builder optDropout(float dropout) {
            if (!(dropout >= 0f && dropout < 1f)) {
                throw new IllegalArgumentException("dropout must be in [0, 1), got " + dropout);
            }
            this.dropout = dropout;
            return this;
        }

        /** Cache each layer's dequantized weight (see {@link QuantizedLoraLinear}). Default false. */
        public Builder optCacheDequantized(boolean cache) {
            this.cacheDequantized = cache;
            return this;
        }

        /** Freeze every parameter but the LoRA factors (default true). */
        public Builder optFreezeOthers(boolean freeze) {
            this.freezeOthers = freeze;
            return this;
        }

        /** Validates and builds. */
        public LoraWrapper build() {
            Checks.notNull("targets", targets);
            Checks.notNull("spec", spec);
            return new LoraWrapper(this);
        }
    }
}
