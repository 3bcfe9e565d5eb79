package dev.loftq.djl.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import dev.loftq.djl.backend.NdScalars;

/**
 * HF's {@code BertModel} (without the pooler) as a DJL block tree, followed by sentence-transformers'
 * mean pooling and L2 normalisation.
 *
 * <h2>Block tree</h2>
 *
 * Module paths ({@link BlockPaths}) read like torch's {@code named_modules()}:
 *
 * <pre>
 * embeddings                      word_embeddings, position_embeddings, token_type_embeddings, LayerNorm
 * encoder.layer.{i}.attention.self.query | key | value        DJL Linear [H, H] + bias
 * encoder.layer.{i}.attention.output.dense                    DJL Linear [H, H] + bias
 * encoder.layer.{i}.attention.output.LayerNorm
 * encoder.layer.{i}.intermediate.dense                        DJL Linear [I, H] + bias, then GELU (erf)
 * encoder.layer.{i}.output.dense                              DJL Linear [H, I] + bias
 * encoder.layer.{i}.output.LayerNorm
 * </pre>
 *
 * Each Linear sits in a named slot of a {@link ModuleBlock} parent, registered with DJL's
 * {@code addChildBlock}; forward calls whatever block is in the slot. Swap one with
 * {@link BlockPaths#replace(ai.djl.nn.Block, String, ai.djl.nn.Block)} or
 * {@link ModuleBlock#replaceChild}: the replacement takes one array [..., in] and returns one
 * array [..., out]. Parameter names follow HF where DJL lets them ({@code weight}, {@code bias}).
 *
 * <h2>Forward</h2>
 *
 * In: {@code input_ids} [B, T] int64, {@code attention_mask} [B, T] int64 (1 = token, 0 = padding)
 * and optionally {@code token_type_ids} [B, T] int64 (zeros if absent); T ≤ max positions.
 * Out: {@code last_hidden_state} [B, T, H] float32 and the sentence embedding [B, H]: the mean of
 * the hidden states over tokens with mask 1, divided by its L2 norm (eps 1e-12), as
 * sentence-transformers' {@code Pooling(mean)} + {@code Normalize} do. Padded positions are
 * excluded from attention by adding the float32 minimum to their scores, as HF does. Inference
 * semantics (no dropout). Results belong to the manager of {@code input_ids}.
 */
public final class BertModelBlock extends ModuleBlock {
    private static final byte VERSION = 1;
    private static final float INV_SQRT2 = (float) (1 / Math.sqrt(2));
    private final BertConfig config;

    /**
     * Builds the tree with the given weights; every parameter is created on {@code manager}, which
     * owns them (close it to free the model).
     *
     * @param weights the BERT weights; not modified, not retained
     * @param manager owner of the parameters
     */
    public BertModelBlock(BertWeights weights, NDManager manager) {
        super(VERSION);
        this.config = weights.config();
        int h = config.hiddenSize();
        addModule("embeddings", new BertBlocks.Embeddings(weights, manager), new Shape(1, 1), new Shape(1, 1));
        addModule("encoder", new BertBlocks.Encoder(weights, manager), new Shape(1, 1, h), new Shape(1, 1, 1, 1));
        initialize(manager, DataType.FLOAT32, new Shape(1, 1), new Shape(1, 1), new Shape(1, 1));
    }

    /** The encoder's shape. */
    public BertConfig config() {
        return config;
    }

    @Override
    protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        if (inputs.size() < 2 || inputs.size() > 3) {
            throw new IllegalArgumentException(
                    "inputs must be (input_ids, attention_mask[, token_type_ids]), got " + inputs.size() + " arrays");
        }
        NDArray ids = inputs.get(0);
        NDArray mask = inputs.get(1);
        Shape shape = ids.getShape();
        if (shape.dimension() != 2 || !mask.getShape().equals(shape)) {
            throw new IllegalArgumentException(
                    "input_ids and attention_mask must both be [batch, tokens], got " + shape + " and " + mask.getShape());
        }
        if (shape.get(1) < 1 || shape.get(1) > config.maxPositions()) {
            throw new IllegalArgumentException(
                    "tokens per sequence must be in [1, " + config.maxPositions() + "], got " + shape.get(1));
        }
        NDArray types = inputs.size() == 3 ? inputs.get(2) : ids.zerosLike();
        NDArray embedded = childAt(0).forward(ps, new NDList(ids, types), training, params).singletonOrThrow();
        NDArray maskF = mask.toType(DataType.FLOAT32, false);
        // [B, 1, 1, T]: 0 for tokens, float32 min for padding
        NDArray additive = maskF.neg().add(1f).mul(-Float.MAX_VALUE).expandDims(1).expandDims(1);
        NDArray hidden = childAt(1).forward(ps, new NDList(embedded, additive), training, params).singletonOrThrow();
        return new NDList(hidden, meanPoolNormalize(hidden, maskF));
    }

    /**
     * Mean over the tokens with mask 1, then L2 normalisation (sentence-transformers).
     *
     * @param hidden [B, T, H]
     * @param mask [B, T] float, 1 = token
     * @return [B, H], unit rows
     */
    static NDArray meanPoolNormalize(NDArray hidden, NDArray mask) {
        NDArray m = mask.expandDims(-1);
        NDArray sum = hidden.mul(m).sum(new int[] {1});
        NDArray count = m.sum(new int[] {1}).clip(1e-9f, Float.MAX_VALUE);
        return sum.div(count).normalize(2, 1, 1e-12);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        Shape ids = inputShapes[0];
        return new Shape[] {ids.add(config.hiddenSize()), new Shape(ids.get(0), config.hiddenSize())};
    }

    /**
     * GELU(x) = x · ½ · (1 + erf(x / √2)), the exact form BERT uses (not the tanh approximation):
     * the model's intermediate blocks and ApiQ's differentiable BERT layer share it.
     */
    public static NDArray geluErf(NDArray x) {
        // float operands through NdScalars: autograd keeps them for the backward pass
        return NdScalars.mul(x.mul(NdScalars.add(NdScalars.mul(x, INV_SQRT2).erf(), 1f)), 0.5f);
    }
}
