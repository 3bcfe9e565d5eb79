package dev.loftq.djl.apiq;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.LayerNorm;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.backend.NdScalars;
import dev.loftq.djl.model.BertConfig;
import dev.loftq.djl.model.BertModelBlock;
import dev.loftq.djl.model.BlockPaths;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One BERT encoder layer ({@code encoder.layer.i}: self-attention, output projection + residual +
 * LayerNorm, intermediate + GELU, output + residual + LayerNorm) as an {@link
 * dev.loftq.quant.apiq.ApiqTarget} for ApiQ-bw: its six Linear weights are the weights to learn
 * (named by their path inside the layer, {@link #LINEARS}); biases and LayerNorms stay at their
 * full-precision values. Input and output: one sentence's hidden states FLOAT32 [tokens, H],
 * without padding (so no attention mask). The forward is written with DJL NDArray operations
 * (the same ones the model's blocks use), so PyTorch autograd differentiates it.
 */
final class BertLayerTarget implements dev.loftq.quant.apiq.ApiqTarget {
    /** The Linears of a layer, in model order, as paths relative to the layer. */
    static final String[] LINEARS = {"attention.self.query", "attention.self.key",
        "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"};

    private final String path;
    private final BertConfig config;
    private final Map<String, Tensor> weights = new LinkedHashMap<>();
    private final Map<String, NDArray> biases = new LinkedHashMap<>();
    private final NDArray[] norm1;
    private final NDArray[] norm2;

    /**
     * @param fp the full-precision tree (its parameters are read, not copied; keep it open)
     * @param path the layer's path, {@code encoder.layer.i}
     * @param scope owns the weight views
     */
    BertLayerTarget(Block fp, String path, BertConfig config, TensorScope scope) {
        this.path = path;
        this.config = config;
        Map<String, Block> byPath = BlockPaths.byPath(fp);
        for (String l : LINEARS) {
            Block b = byPath.get(path + "." + l);
            if (!(b instanceof Linear)) {
                throw new IllegalArgumentException("expected a full-precision Linear at " + path
                        + "." + l + ", got " + (b == null ? "nothing" : b.getClass().getSimpleName()));
            }
            weights.put(l, frozen(scope, b, "weight"));
            biases.put(l, DjlBackend.ndArray(frozen(scope, b, "bias")));
        }
        norm1 = norm(scope, byPath.get(path + ".attention.output.LayerNorm"));
        norm2 = norm(scope, byPath.get(path + ".output.LayerNorm"));
    }

    /** A view of a parameter, owned by scope and cut from the graph (the model is not trained). */
    static Tensor frozen(TensorScope scope, Block b, String name) {
        Tensor view = DjlBackend.wrap(scope, b.getParameters().get(name).getArray());
        return scope.backend().autograd().orElseThrow().stopGradient(scope, view);
    }

    private static NDArray[] norm(TensorScope scope, Block b) {
        return new NDArray[] {DjlBackend.ndArray(frozen(scope, b, "weight")),
            DjlBackend.ndArray(frozen(scope, b, "bias"))};
    }

    @Override
    public String name() {
        return path;
    }

    @Override
    public Map<String, Tensor> weights() {
        return Collections.unmodifiableMap(weights);
    }

    @Override
    public int[] outputShape(int[] inputShape) {
        if (inputShape.length != 2 || inputShape[1] != config.hiddenSize() || inputShape[0] < 1) {
            throw new IllegalArgumentException("encoder layer " + path + " takes one sentence's "
                    + "hidden states [tokens, " + config.hiddenSize() + "], got "
                    + Arrays.toString(inputShape));
        }
        return inputShape.clone();
    }

    @Override
    public Tensor forward(TensorScope scope, Tensor input, Map<String, Tensor> w) {
        // a view owned by scope: every result below is made in scope's manager
        NDArray x = DjlBackend.ndArray(DjlBackend.wrap(scope, DjlBackend.ndArray(input)));
        long t = x.getShape().get(0);
        int heads = config.numHeads();
        int hs = config.headSize();
        NDArray q = heads(linear(x, w, "attention.self.query"), t, heads, hs);
        NDArray k = heads(linear(x, w, "attention.self.key"), t, heads, hs);
        NDArray v = heads(linear(x, w, "attention.self.value"), t, heads, hs);
        // float operands through NdScalars: autograd keeps them for the backward pass
        NDArray scores = NdScalars.div(q.matMul(k.transpose(0, 2, 1)), (float) Math.sqrt(hs));
        NDArray context = scores.softmax(-1).matMul(v).transpose(1, 0, 2).reshape(t, (long) heads * hs);
        NDArray a = layerNorm(linear(context, w, "attention.output.dense").add(x), norm1);
        NDArray h = linear(a, w, "intermediate.dense");
        NDArray out = layerNorm(linear(BertModelBlock.geluErf(h), w, "output.dense").add(a), norm2);
        return DjlBackend.wrap(scope, out);
    }

    private NDArray linear(NDArray x, Map<String, Tensor> w, String name) {
        return Linear.linear(x, DjlBackend.ndArray(w.get(name)), biases.get(name)).head();
    }

    private static NDArray heads(NDArray x, long t, int heads, int hs) {
        return x.reshape(t, heads, hs).transpose(1, 0, 2);
    }

    private NDArray layerNorm(NDArray x, NDArray[] gammaBeta) {
        return LayerNorm.layerNorm(x, new Shape(config.hiddenSize()), gammaBeta[0], gammaBeta[1],
                config.layerNormEps()).head();
    }
}
