package dev.loftq.djl.wrap;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.util.Pair;
import dev.loftq.core.Checks;
import dev.loftq.core.io.Safetensors;
import dev.loftq.core.io.SafetensorsDType;
import dev.loftq.core.io.SafetensorsFile;
import dev.loftq.core.io.TensorData;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.block.QuantizedLoraLinear;
import dev.loftq.djl.io.Bnb4bitWeight;
import dev.loftq.djl.io.BnbCheckpointReader;
import dev.loftq.djl.io.BnbCheckpointWriter;
import dev.loftq.djl.io.BnbQuantizationConfig;
import dev.loftq.djl.io.LoraWeights;
import dev.loftq.djl.io.PeftAdapter;
import dev.loftq.djl.io.PeftAdapterConfig;
import dev.loftq.djl.io.PeftAdapterReader;
import dev.loftq.djl.io.PeftAdapterWriter;
import dev.loftq.djl.model.BlockPaths;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Saves and loads a {@link LoraModel} in the formats Python reads (FORMATS.md §3–§4):
 * <ul>
 *   <li>the adapters as a peft adapter directory ({@code adapter_model.safetensors} with
 *       {@code base_model.model.<path>.lora_A.weight} / {@code lora_B.weight}, and
 *       {@code adapter_config.json} with r, lora_alpha, target_modules (the full paths),
 *       rank_pattern/alpha_pattern for layers that differ from the first, use_rslora,
 *       lora_dropout and {@code init_lora_weights: true});</li>
 *   <li>the backbone as a transformers + bitsandbytes 4-bit checkpoint directory
 *       ({@code model.safetensors} + {@code config.json}): each wrapped layer's Q under
 *       bitsandbytes' keys ({@code <path>.weight}, {@code .weight.absmax}, …) and its bias as
 *       {@code <path>.bias}; every other parameter of the tree as {@code <path>.<DJL parameter
 *       name>} in float32. Only bitsandbytes NF4/FP4 layers can be written so.</li>
 * </ul>
 * {@link #load} rebuilds the wrapped model from both on a tree of the same architecture (freshly
 * built; its own values are replaced): the outputs are bit for bit those of the saved model.
 *
 * <p>Module paths are those of {@link BlockPaths}; for the BERT tree of
 * {@link dev.loftq.djl.model} they are Hugging Face's, so peft and transformers load the files on
 * a {@code BertModel}. Stateless and thread-safe.
 */
public final class LoraCheckpoint {
    private LoraCheckpoint() {}

    /**
     * Writes the adapters of {@code lora} into the peft directory {@code dir}.
     *
     * @param taskType peft's {@code task_type} (e.g. {@code FEATURE_EXTRACTION}), or null
     * @param baseModel {@code base_model_name_or_path}, or null
     * @throws IllegalArgumentException if the layers mix rsLoRA and plain scaling, or dropouts
     *     (one peft config holds one of each)
     * @throws IOException if the files cannot be written; nothing partial is left
     */
    public static void saveAdapter(LoraModel lora, Path dir, String taskType, String baseModel)
            throws IOException {
        Checks.notNull("lora", lora);
        Checks.notNull("dir", dir);
        WrappedLayer first = lora.layers().get(0);
        PeftAdapterConfig.Builder config = PeftAdapterConfig.builder(first.rank(), first.alpha())
                .taskType(taskType).baseModelNameOrPath(baseModel).useRslora(first.rsLora())
                .loraDropout(first.block().dropout()).inferenceMode(false)
                .targetModules(lora.paths());
        Map<String, LoraWeights> modules = new LinkedHashMap<>();
        for (WrappedLayer l : lora.layers()) {
            if (l.rsLora() != first.rsLora() || l.block().dropout() != first.block().dropout()) {
                throw new IllegalArgumentException("layer " + l.path() + " has rsLoRA "
                        + l.rsLora() + " and dropout " + l.block().dropout() + " but layer "
                        + first.path() + " has " + first.rsLora() + " and "
                        + first.block().dropout() + "; a peft config holds one of each");
            }
            if (l.rank() != first.rank()) {
                config.rankPattern(pythonLiteral(l.path()), l.rank());
            }
            if (l.alpha() != first.alpha()) {
                config.alphaPattern(pythonLiteral(l.path()), l.alpha());
            }
            modules.put(l.path(), new LoraWeights(
                    TensorData.ofFloats(l.block().loraA().getArray().toFloatArray(), l.rank(), l.in()),
                    TensorData.ofFloats(l.block().loraB().getArray().toFloatArray(), l.out(), l.rank())));
        }
        PeftAdapterWriter.write(dir, new PeftAdapter(config.build(), modules));
    }

    /**
     * Writes the backbone of {@code lora} as a bitsandbytes 4-bit checkpoint into {@code dir}
     * (created if absent).
     *
     * @param baseConfig the model's {@code config.json} fields (may be empty); the
     *     {@code quantization_config} is added
     * @throws IllegalArgumentException if a wrapped layer is not bitsandbytes NF4/FP4, or the
     *     layers mix NF4 and FP4 or double quantization
     * @throws IOException if a file cannot be written
     */
    public static void saveBackbone(LoraModel lora, Path dir, Map<String, Object> baseConfig)
            throws IOException {
        Checks.notNull("lora", lora);
        Checks.notNull("baseConfig", baseConfig);
        Files.createDirectories(dir);
        Set<Object> wrappedBlocks = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        List<Bnb4bitWeight> weights = new ArrayList<>();
        Map<String, TensorData> others = new LinkedHashMap<>();
        String quantType = null;
        Boolean nested = null;
        for (WrappedLayer l : lora.layers()) {
            QuantizedTensor q = l.block().quantized();
            String type = q.format().endsWith("fp4") ? "fp4" : "nf4";
            boolean dq = q.nestedScales().isPresent();
            if (quantType != null && (!quantType.equals(type) || nested != dq)) {
                throw new IllegalArgumentException("layer " + l.path() + " is " + type
                        + (dq ? " with" : " without") + " double quantization, unlike the layers "
                        + "before it; a bitsandbytes checkpoint has one quantization config");
            }
            quantType = type;
            nested = dq;
            weights.add(new Bnb4bitWeight(l.path(), q, "float32"));
            if (l.block().bias() != null) {
                others.put(l.path() + ".bias", TensorData.ofFloats(l.block().bias().toFloatArray(),
                        l.out()));
            }
            wrappedBlocks.add(l.block());
        }
        for (Map.Entry<String, Block> e : BlockPaths.byPath(lora.root()).entrySet()) {
            if (wrappedBlocks.contains(e.getValue())) {
                continue;
            }
            for (Pair<String, Parameter> p : e.getValue().getDirectParameters()) {
                NDArray a = p.getValue().getArray();
                int[] shape = Arrays.stream(a.getShape().getShape()).mapToInt(x -> (int) x).toArray();
                String key = e.getKey().isEmpty() ? p.getKey() : e.getKey() + "." + p.getKey();
                others.put(key, TensorData.ofFloats(float32(a), shape));
            }
        }
        TensorScope scope = lora.layers().get(0).block().scope();
        BnbCheckpointWriter.write(dir, scope, weights, others, baseConfig,
                new BnbQuantizationConfig(quantType, nested, "float32"));
    }

    /**
     * Rebuilds a saved wrapped model on {@code root}, a tree of the same architecture: every
     * 4-bit module of {@code backboneDir/model.safetensors} replaces the Linear at its path by a
     * {@link QuantizedLoraLinear} with that Q, its bias and the adapter's A and B and scaling from
     * {@code adapterDir}; every other tensor is copied into the parameter of that name. All other
     * parameters are frozen, as {@link LoraWrapper} does.
     *
     * @param backend owns the loaded layers' tensors (through the returned model)
     * @throws IOException for unreadable or malformed files (naming the file and key)
     * @throws IllegalArgumentException if a path of the files is not in the tree, is not a
     *     Linear, has another shape, or the adapter's modules differ from the backbone's 4-bit
     *     ones (naming the path and the shapes); the tree is then left as it was
     */
    public static LoraModel load(DjlBackend backend, Block root, Path backboneDir,
            Path adapterDir) throws IOException {
        Checks.notNull("backend", backend);
        Checks.notNull("root", root);
        PeftAdapter adapter = PeftAdapterReader.read(adapterDir);
        Path weightsFile = backboneDir.resolve("model.safetensors");
        TensorScope modelScope = backend.newScope();
        List<WrappedLayer> layers = new ArrayList<>();
        List<Pair<String, Block>> replaced = new ArrayList<>();
        try {
            Map<String, Bnb4bitWeight> quantized = BnbCheckpointReader.readAll(modelScope,
                    weightsFile);
            Set<String> missing = new TreeSet<>(quantized.keySet());
            missing.removeAll(adapter.modules().keySet());
            Set<String> extra = new TreeSet<>(adapter.modules().keySet());
            extra.removeAll(quantized.keySet());
            if (!missing.isEmpty() || !extra.isEmpty()) {
                throw new IllegalArgumentException("adapter " + adapterDir + " does not fit "
                        + "backbone " + weightsFile + ": 4-bit modules without adapters "
                        + missing + ", adapters without a 4-bit module " + extra);
            }
            SafetensorsFile file = Safetensors.read(weightsFile);
            Map<String, Block> tree = BlockPaths.byPath(root);
            Map<String, QuantizedLoraLinear> built = new LinkedHashMap<>();
            for (Map.Entry<String, Bnb4bitWeight> e : quantized.entrySet()) {
                String path = e.getKey();
                QuantizedTensor q = e.getValue().weight();
                LoraWeights ab = adapter.modules().get(path);
                int[] shape = q.shape();
                Block target = tree.get(path);
                if (!(target instanceof Linear)) {
                    throw new IllegalArgumentException("module " + path + " of " + weightsFile
                            + " is " + (target == null ? "not in the model" : "a "
                            + target.getClass().getName() + ", not a Linear"));
                }
                checkLinearShape(path, target, shape[0], shape[1]);
                if (ab.inFeatures() != shape[1] || ab.outFeatures() != shape[0]) {
                    throw new IllegalArgumentException("adapter for " + path + " has A "
                            + Arrays.toString(ab.loraA().shape()) + " and B "
                            + Arrays.toString(ab.loraB().shape()) + ", which do not fit the "
                            + "weight [" + shape[0] + ", " + shape[1] + "]");
                }
                TensorScope layerScope = modelScope.newChild();
                q.keep(layerScope);
                Tensor bias = null;
                if (file.contains(path + ".bias")) {
                    bias = layerScope.fromHost(file.tensor(path + ".bias").floats(), shape[0]);
                }
                float scaling = (float) adapter.config().scalingFor(path);
                QuantizedLoraLinear layer = QuantizedLoraLinear.loraBuilder().optName(path)
                        .setQuantized(layerScope, q)
                        .setLora(ab.loraA(layerScope), ab.loraB(layerScope))
                        .setScaling(scaling).optBias(bias)
                        .optDropout((float) adapter.config().loraDropout()).build();
                built.put(path, layer);
                layers.add(new WrappedLayer(path, shape[0], shape[1], q.format(), q.bits(),
                        q.bitsPerParameter(), ab.rank(), (float) adapter.config().alphaFor(path),
                        adapter.config().useRslora(), scaling, Double.NaN, layer));
            }
            loadOthers(root, tree, file, quantized.keySet());
            for (Map.Entry<String, QuantizedLoraLinear> e : built.entrySet()) {
                Block old = BlockRewriter.replace(root, e.getKey(), e.getValue());
                replaced.add(new Pair<>(e.getKey(), old));
            }
        } catch (IOException | RuntimeException ex) {
            for (int i = replaced.size() - 1; i >= 0; i--) {
                BlockRewriter.replace(root, replaced.get(i).getKey(), replaced.get(i).getValue());
            }
            modelScope.close();
            throw ex;
        }
        LoraModel model = new LoraModel(root, layers, modelScope);
        freezeAllBut(root, layers);
        return model;
    }

    private static float[] float32(NDArray a) {
        if (a.getDataType() == DataType.FLOAT32) {
            return a.toFloatArray();
        }
        try (NDArray copy = a.toType(DataType.FLOAT32, true)) {
            return copy.toFloatArray();
        }
    }

    private static void checkLinearShape(String path, Block linear, int out, int in) {
        Parameter w = linear.getParameters().get("weight");
        Shape have = w == null || !w.isInitialized() ? null : w.getArray().getShape();
        if (have == null || have.get(0) != out || have.get(1) != in) {
            throw new IllegalArgumentException("module " + path + ": the checkpoint's weight is ["
                    + out + ", " + in + "] but the model's Linear has " + (have == null
                    ? "no initialized weight" : "weight " + have));
        }
    }

    /** Copies every non-4-bit tensor into the parameter {@code <path>.<name>}, checking shapes. */
    private static void loadOthers(Block root, Map<String, Block> tree, SafetensorsFile file,
            Set<String> quantizedModules) {
        Map<String, Parameter> params = new LinkedHashMap<>();
        for (Map.Entry<String, Block> e : tree.entrySet()) {
            if (quantizedModules.contains(e.getKey())) {
                continue;
            }
            for (Pair<String, Parameter> p : e.getValue().getDirectParameters()) {
                params.put(e.getKey().isEmpty() ? p.getKey() : e.getKey() + "." + p.getKey(),
                        p.getValue());
            }
        }
        List<Runnable> writes = new ArrayList<>();
        for (String name : file.names()) {
            String module = moduleOf(name, quantizedModules);
            if (module != null) {
                continue;
            }
            Parameter p = params.get(name);
            if (p == null) {
                throw new IllegalArgumentException("tensor " + name + " of " + file.source()
                        + " names no parameter of the model");
            }
            TensorData t = file.tensor(name);
            long[] want = p.getArray().getShape().getShape();
            if (!Arrays.equals(want, Arrays.stream(t.shape()).asLongStream().toArray())
                    || t.dtype() != SafetensorsDType.F32) {
                throw new IllegalArgumentException("tensor " + name + " is " + t.dtype() + " "
                        + Arrays.toString(t.shape()) + " but the model's parameter is "
                        + p.getArray().getDataType() + " " + Arrays.toString(want));
            }
            float[] values = t.floats();
            writes.add(() -> p.getArray().set(values));
        }
        Set<String> absent = new TreeSet<>(params.keySet());
        absent.removeAll(file.names());
        if (!absent.isEmpty()) {
            throw new IllegalArgumentException(file.source() + " has no tensor for the model's "
                    + "parameters " + absent);
        }
        writes.forEach(Runnable::run);
    }

    private static String moduleOf(String tensorName, Set<String> modules) {
        for (String m : modules) {
            if (tensorName.startsWith(m + ".weight") || tensorName.equals(m + ".bias")) {
                return m;
            }
        }
        return null;
    }

    private static void freezeAllBut(Block root, List<WrappedLayer> layers) {
        Set<Parameter> lora = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        for (WrappedLayer l : layers) {
            lora.add(l.block().loraA());
            lora.add(l.block().loraB());
        }
        for (Pair<String, Parameter> p : root.getParameters()) {
            if (!lora.contains(p.getValue()) && p.getValue().requiresGradient()) {
                p.getValue().freeze(true);
            }
        }
    }

    /** A Python regex matching exactly {@code path} (paths hold letters, digits, _ and .). */
    private static String pythonLiteral(String path) {
        return path.replace(".", "\\.");
    }
}
