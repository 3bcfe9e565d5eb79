package dev.loftq.djl.apiq;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import dev.loftq.djl.model.BlockPaths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Records what blocks of a BERT tree see and produce, one sentence at a time (batch 1, so there
 * is no padding and every row is a real token). Memory: host float arrays of
 * {@code tokens × width} per captured path and sentence, e.g. 128 sentences of 30 tokens into a
 * 1536-wide layer take 24 MB; the drivers capture one block's paths at a time.
 */
final class Capture {
    /** Per captured path: the first input and the output of each sentence, [tokens, width] flat. */
    record Record(List<float[]> inputs, List<float[]> outputs, List<int[]> inputShapes,
            List<int[]> outputShapes) {}

    private Capture() {}

    /**
     * Runs {@code root} over each sentence with recorders installed at {@code paths}; the forward
     * of a sentence stops once every path has recorded (later blocks do not run).
     *
     * @param root a BertModelBlock tree (restored before returning)
     * @param ids token ids per sentence
     * @param paths blocks to record, each taking [1, T, width] (or [1, T, ...]) first inputs
     * @param outputs also record outputs
     */
    static Map<String, Record> run(Block root, NDManager manager, List<long[]> ids,
            List<String> paths, boolean outputs) {
        Map<String, Block> byPath = BlockPaths.byPath(root);
        Map<String, Recorder> recorders = new LinkedHashMap<>();
        for (String p : paths) {
            Block b = byPath.get(p);
            if (b == null) {
                throw new IllegalArgumentException("no block at path " + p);
            }
            recorders.put(p, new Recorder(b, outputs));
        }
        int[] seen = {0};
        for (Recorder r : recorders.values()) {
            r.done = () -> {
                if (++seen[0] == recorders.size()) {
                    throw new Stop();
                }
            };
        }
        try {
            recorders.forEach((p, r) -> BlockPaths.replace(root, p, r));
            for (long[] sentence : ids) {
                seen[0] = 0;
                try (NDManager m = manager.newSubManager()) {
                    NDArray idArr = m.create(sentence, new Shape(1, sentence.length));
                    NDArray mask = m.ones(new Shape(1, sentence.length), idArr.getDataType());
                    root.forward(new ParameterStore(m, false), new NDList(idArr, mask), false);
                } catch (Stop stop) {
                    // every path recorded this sentence
                }
            }
        } finally {
            recorders.forEach((p, r) -> BlockPaths.replace(root, p, r.inner));
        }
        Map<String, Record> out = new LinkedHashMap<>();
        recorders.forEach((p, r) -> out.put(p, r.record));
        return out;
    }

    /** Thrown (and caught in {@link #run}) to end a forward whose captures are complete. */
    private static final class Stop extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Stop() {
            super(null, null, false, false);
        }
    }

    /** Delegates to the recorded block and keeps its first input (and output) on the host. */
    private static final class Recorder extends AbstractBlock {
        private final Block inner;
        private final boolean outputs;
        private final Record record = new Record(new ArrayList<>(), new ArrayList<>(),
                new ArrayList<>(), new ArrayList<>());
        private Runnable done;

        Recorder(Block inner, boolean outputs) {
            this.inner = inner;
            this.outputs = outputs;
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training,
                PairList<String, Object> params) {
            NDArray x = inputs.head();
            record.inputs().add(x.toFloatArray());
            record.inputShapes().add(rows(x.getShape()));
            NDList y = inner.forward(ps, inputs, training, params);
            if (outputs) {
                record.outputs().add(y.head().toFloatArray());
                record.outputShapes().add(rows(y.head().getShape()));
            }
            done.run();
            return y;
        }

        /** [1, T, w] → [T, w]. */
        private static int[] rows(Shape s) {
            long[] d = s.getShape();
            if (d.length < 2 || d[0] != 1) {
                throw new IllegalStateException("expected a batch of one sentence, got " + s);
            }
            int[] out = new int[d.length - 1];
            for (int i = 1; i < d.length; i++) {
                out[i - 1] = Math.toIntExact(d[i]);
            }
            return out;
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            return inner.getOutputShapes(inputShapes);
        }
    }
}
