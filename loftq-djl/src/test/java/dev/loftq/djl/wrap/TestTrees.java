package dev.loftq.djl.wrap;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.transformer.TransformerEncoderBlock;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import java.util.List;
import java.util.Random;
import java.util.function.Function;

/** Small block trees of the three kinds the wrapper must handle. */
final class TestTrees {
    private TestTrees() {}

    static float[] gaussian(long seed, int n, float std) {
        Random r = new Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) r.nextGaussian() * std;
        }
        return v;
    }

    static Linear linear(int units) {
        return Linear.builder().setUnits(units).build();
    }

    /** Sequential(Linear 16→64, relu, Parallel(Linear 64→32, Linear 64→32; concat), Linear 64→8). */
    static SequentialBlock sequentialParallel(NDManager m) {
        SequentialBlock net = new SequentialBlock();
        net.add(linear(64));
        net.add(Activation::relu);
        net.add(new ParallelBlock(list -> new NDList(NDArrays.concat(
                new NDList(list.get(0).head(), list.get(1).head()), -1)),
                List.of(linear(32), linear(32))));
        net.add(linear(8));
        net.initialize(m, DataType.FLOAT32, new Shape(1, 16));
        return net;
    }

    /**
     * A BERT-style self-attention written the usual DJL way: the Linear children are fields that
     * forward calls directly (the children list is only for DJL's bookkeeping).
     */
    static class FieldAttention extends AbstractBlock {
        private final int hidden;
        private final Linear query;
        private final Linear key;
        private final Linear value;
        private final Linear output;

        FieldAttention(int hidden) {
            this.hidden = hidden;
            this.query = addChildBlock("query", linear(hidden));
            this.key = addChildBlock("key", linear(hidden));
            this.value = addChildBlock("value", linear(hidden));
            this.output = addChildBlock("output", linear(hidden));
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training,
                PairList<String, Object> params) {
            NDArray x = inputs.head(); // [B, T, H]
            NDArray q = query.forward(ps, new NDList(x), training).head();
            NDArray k = key.forward(ps, new NDList(x), training).head();
            NDArray v = value.forward(ps, new NDList(x), training).head();
            NDArray att = q.batchMatMul(k.transpose(0, 2, 1)).div((float) Math.sqrt(hidden))
                    .softmax(-1);
            NDArray ctx = att.batchMatMul(v);
            return output.forward(ps, new NDList(ctx), training);
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            return new Shape[] {inputShapes[0]};
        }

        @Override
        protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... shapes) {
            for (Block b : getChildren().values()) {
                b.initialize(manager, dataType, shapes[0]);
            }
        }
    }

    static FieldAttention fieldAttention(NDManager m, int hidden) {
        FieldAttention a = new FieldAttention(hidden);
        a.initialize(m, DataType.FLOAT32, new Shape(1, 4, hidden));
        return a;
    }

    /** DJL's own transformer encoder block (embedding 32, 2 heads, hidden 64, no dropout). */
    static TransformerEncoderBlock djlTransformer(NDManager m) {
        Function<NDList, NDList> gelu = Activation::gelu;
        TransformerEncoderBlock t = new TransformerEncoderBlock(32, 2, 64, 0f, gelu);
        t.initialize(m, DataType.FLOAT32, new Shape(2, 5, 32));
        return t;
    }

    static NDArray run(Block b, NDManager m, NDArray x) {
        return b.forward(new ParameterStore(m, false), new NDList(x), false).head();
    }
}
