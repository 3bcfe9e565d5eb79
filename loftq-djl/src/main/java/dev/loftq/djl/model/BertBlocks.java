package dev.loftq.djl.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Embedding;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.Initializer;
import ai.djl.util.PairList;
import dev.loftq.djl.backend.NdScalars;
import java.nio.FloatBuffer;

/**
 * The modules of HF's {@code BertModel} as DJL blocks, one class per module type, named and nested
 * as in torch: {@code embeddings.{word_embeddings, position_embeddings, token_type_embeddings,
 * LayerNorm}}, {@code encoder.layer.{i}.attention.self.{query, key, value}},
 * {@code encoder.layer.{i}.attention.output.{dense, LayerNorm}},
 * {@code encoder.layer.{i}.intermediate.dense}, {@code encoder.layer.{i}.output.{dense, LayerNorm}}.
 * Every Linear is a DJL {@link Linear} (weight [out, in], bias [out]) held in a swappable slot of
 * its {@link ModuleBlock} parent. Inference semantics only (no dropout).
 */
final class BertBlocks {
    private BertBlocks() {}

    /** A DJL Linear [out, in] + bias holding the given weights; initialized on {@code manager}. */
    static Linear linear(BertWeights.LinearWeights w, NDManager manager) {
        Linear l = Linear.builder().setUnits(w.outFeatures()).optBias(true).build();
        l.setInitializer(Initializer.ZEROS, Parameter.Type.WEIGHT);
        l.setInitializer(Initializer.ZEROS, Parameter.Type.BIAS);
        l.initialize(manager, DataType.FLOAT32, new Shape(1, w.inFeatures()));
        l.getParameters().get("weight").getArray().set(FloatBuffer.wrap(w.weight()));
        l.getParameters().get("bias").getArray().set(FloatBuffer.wrap(w.bias()));
        return l;
    }

    /** One array through a child: {@code child(x)}. */
    static NDArray call(Block child, ParameterStore ps, NDArray x, boolean training, PairList<String, Object> params) {
        return child.forward(ps, new NDList(x), training, params).singletonOrThrow();
    }

    /** A lookup table with HF's parameter name {@code weight} [rows, H]. Input int64 ids. */
    static final class EmbeddingTable extends AbstractBlock {
        private final Parameter weight;
        private final int cols;

        EmbeddingTable(BertWeights.EmbeddingWeights w, NDManager manager) {
            super((byte) 1);
            this.cols = w.cols();
            weight = addParameter(Parameter.builder().setName("weight").setType(Parameter.Type.WEIGHT).build());
            weight.setArray(manager.create(w.data(), new Shape(w.rows(), w.cols())));
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
            NDArray ids = inputs.singletonOrThrow();
            NDArray table = ps.getValue(weight, ids.getDevice(), training);
            return Embedding.embedding(ids, table, SparseFormat.DENSE);
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            return new Shape[] {inputShapes[0].add(cols)};
        }
    }

    /** LayerNorm over the last axis with HF's parameter names {@code weight} (γ) and {@code bias} (β). */
    static final class BertLayerNorm extends AbstractBlock {
        private final Parameter gamma;
        private final Parameter beta;
        private final Shape normalized;
        private final float eps;

        BertLayerNorm(BertWeights.LayerNormWeights w, float eps, NDManager manager) {
            super((byte) 1);
            this.eps = eps;
            this.normalized = new Shape(w.gamma().length);
            gamma = addParameter(Parameter.builder().setName("weight").setType(Parameter.Type.GAMMA).build());
            beta = addParameter(Parameter.builder().setName("bias").setType(Parameter.Type.BETA).build());
            gamma.setArray(manager.create(w.gamma(), normalized));
            beta.setArray(manager.create(w.beta(), normalized));
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
            NDArray x = inputs.singletonOrThrow();
            return LayerNorm.layerNorm(
                    x, normalized, ps.getValue(gamma, x.getDevice(), training), ps.getValue(beta, x.getDevice(), training), eps);
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            return new Shape[] {inputShapes[0]};
        }
    }

    /** {@code embeddings}: word + position + token type, then LayerNorm. In: ids, type ids [B, T]. */
    static final class Embeddings extends ModuleBlock {
        private static final int WORD = 0;
        private static final int POSITION = 1;
        private static final int TYPE = 2;
        private static final int NORM = 3;
        private final int hidden;

        Embeddings(BertWeights w, NDManager manager) {
            super((byte) 1);
            hidden = w.config().hiddenSize();
            Shape ids = new Shape(1, 1);
            addModule("word_embeddings", new EmbeddingTable(w.wordEmbeddings(), manager), ids);
            addModule("position_embeddings", new EmbeddingTable(w.positionEmbeddings(), manager), ids);
            addModule("token_type_embeddings", new EmbeddingTable(w.tokenTypeEmbeddings(), manager), ids);
            addModule(
                    "LayerNorm",
                    new BertLayerNorm(w.layerNorms().get(BertWeights.EMBEDDINGS_LAYER_NORM), w.config().layerNormEps(), manager),
                    new Shape(1, 1, hidden));
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
            NDArray ids = inputs.get(0);
            NDArray types = inputs.get(1);
            long t = ids.getShape().get(1);
            NDArray positions = ids.getManager().arange(0, (int) t, 1, DataType.INT64).expandDims(0);
            NDArray e = call(childAt(WORD), ps, ids, training, params)
                    .add(call(childAt(TYPE), ps, types, training, params))
                    .add(call(childAt(POSITION), ps, positions, training, params));
            return new NDList(call(childAt(NORM), ps, e, training, params));
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            return new Shape[] {inputShapes[0].add(hidden)};
        }
    }

    /** {@code attention.self}: multi-head scaled dot-product attention. In: x [B, T, H], additive mask [B, 1, 1, T]. */
    static final class SelfAttention extends ModuleBlock {
        private static final int QUERY = 0;
        private static final int KEY = 1;
        private static final int VALUE = 2;
        private final int heads;
        private final int headSize;

        SelfAttention(BertWeights w, String prefix, NDManager manager) {
            super((byte) 1);
            heads = w.config().numHeads();
            headSize = w.config().headSize();
            for (String name : new String[] {"query", "key", "value"}) {
                BertWeights.LinearWeights lw = w.linears().get(prefix + name);
                addModule(name, linear(lw, manager), new Shape(1, lw.inFeatures()));
            }
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
            NDArray x = inputs.get(0);
            NDArray mask = inputs.get(1);
            long b = x.getShape().get(0);
            long t = x.getShape().get(1);
            NDArray q = heads(call(childAt(QUERY), ps, x, training, params), b, t);
            NDArray k = heads(call(childAt(KEY), ps, x, training, params), b, t);
            NDArray v = heads(call(childAt(VALUE), ps, x, training, params), b, t);
            // float operands through NdScalars: autograd keeps them for the backward pass
            NDArray scores = NdScalars.div(q.matMul(k.transpose(0, 1, 3, 2)),
                    (float) Math.sqrt(headSize)).add(mask);
            NDArray context = scores.softmax(-1).matMul(v); // [B, heads, T, headSize]
            return new NDList(context.transpose(0, 2, 1, 3).reshape(b, t, (long) heads * headSize));
        }

        private NDArray heads(NDArray x, long b, long t) {
            return x.reshape(b, t, heads, headSize).transpose(0, 2, 1, 3);
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            return new Shape[] {inputShapes[0]};
        }
    }

    /**
     * {@code dense} then LayerNorm of (result + residual): HF's {@code BertSelfOutput} and
     * {@code BertOutput}. In: x [B, T, in], residual [B, T, H].
     */
    static final class DenseResidualNorm extends ModuleBlock {
        private static final int DENSE = 0;
        private static final int NORM = 1;

        DenseResidualNorm(BertWeights w, String prefix, NDManager manager) {
            super((byte) 1);
            BertWeights.LinearWeights lw = w.linears().get(prefix + "dense");
            addModule("dense", linear(lw, manager), new Shape(1, lw.inFeatures()));
            addModule(
                    "LayerNorm",
                    new BertLayerNorm(w.layerNorms().get(prefix + "LayerNorm"), w.config().layerNormEps(), manager),
                    new Shape(1, 1, lw.outFeatures()));
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
            NDArray h = call(childAt(DENSE), ps, inputs.get(0), training, params).add(inputs.get(1));
            return new NDList(call(childAt(NORM), ps, h, training, params));
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            return new Shape[] {inputShapes[1]};
        }
    }

    /** {@code attention}: self-attention then its output projection. In: x, additive mask. */
    static final class Attention extends ModuleBlock {
        Attention(BertWeights w, String prefix, NDManager manager) {
            super((byte) 1);
            int h = w.config().hiddenSize();
            addModule("self", new SelfAttention(w, prefix + "self.", manager), new Shape(1, 1, h), new Shape(1, 1, 1, 1));
            addModule("output", new DenseResidualNorm(w, prefix + "output.", manager), new Shape(1, 1, h), new Shape(1, 1, h));
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
            NDArray x = inputs.get(0);
            NDArray context = childAt(0).forward(ps, inputs, training, params).singletonOrThrow();
            return childAt(1).forward(ps, new NDList(context, x), training, params);
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            return new Shape[] {inputShapes[0]};
        }
    }

    /** {@code intermediate}: dense then GELU in BERT's exact erf form. */
    static final class Intermediate extends ModuleBlock {
        private final int width;

        Intermediate(BertWeights w, String prefix, NDManager manager) {
            super((byte) 1);
            BertWeights.LinearWeights lw = w.linears().get(prefix + "dense");
            width = lw.outFeatures();
            addModule("dense", linear(lw, manager), new Shape(1, lw.inFeatures()));
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
            NDArray h = call(childAt(0), ps, inputs.singletonOrThrow(), training, params);
            return new NDList(BertModelBlock.geluErf(h));
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            Shape in = inputShapes[0];
            return new Shape[] {in.slice(0, in.dimension() - 1).add(width)};
        }
    }


    /** {@code encoder.layer.{i}}. In: x [B, T, H], additive mask [B, 1, 1, T]. */
    static final class Layer extends ModuleBlock {
        Layer(BertWeights w, int index, NDManager manager) {
            super((byte) 1);
            String prefix = "encoder.layer." + index + ".";
            int h = w.config().hiddenSize();
            int inter = w.config().intermediateSize();
            addModule("attention", new Attention(w, prefix + "attention.", manager), new Shape(1, 1, h), new Shape(1, 1, 1, 1));
            addModule("intermediate", new Intermediate(w, prefix + "intermediate.", manager), new Shape(1, 1, h));
            addModule("output", new DenseResidualNorm(w, prefix + "output.", manager), new Shape(1, 1, inter), new Shape(1, 1, h));
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
            NDArray a = childAt(0).forward(ps, inputs, training, params).singletonOrThrow();
            NDArray i = call(childAt(1), ps, a, training, params);
            return childAt(2).forward(ps, new NDList(i, a), training, params);
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            return new Shape[] {inputShapes[0]};
        }
    }

    /** {@code encoder.layer}: the layers, children named 0 … L−1, applied in order. */
    static final class LayerList extends ModuleBlock {
        LayerList(BertWeights w, NDManager manager) {
            super((byte) 1);
            int h = w.config().hiddenSize();
            for (int i = 0; i < w.config().numLayers(); i++) {
                addModule(Integer.toString(i), new Layer(w, i, manager), new Shape(1, 1, h), new Shape(1, 1, 1, 1));
            }
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
            NDArray x = inputs.get(0);
            NDArray mask = inputs.get(1);
            for (int i = 0; i < children.size(); i++) {
                x = childAt(i).forward(ps, new NDList(x, mask), training, params).singletonOrThrow();
            }
            return new NDList(x);
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            return new Shape[] {inputShapes[0]};
        }
    }

    /** {@code encoder}: holds {@code layer}. */
    static final class Encoder extends ModuleBlock {
        Encoder(BertWeights w, NDManager manager) {
            super((byte) 1);
            int h = w.config().hiddenSize();
            addModule("layer", new LayerList(w, manager), new Shape(1, 1, h), new Shape(1, 1, 1, 1));
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
            return childAt(0).forward(ps, inputs, training, params);
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            return new Shape[] {inputShapes[0]};
        }
    }
}
