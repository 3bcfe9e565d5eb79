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
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Records what blocks of a BERT tree see and produce, per sentence. Sentences run in padded
 * batches of up to {@value #BATCH} with the attention mask, and each sentence keeps only its own
 * token rows (padding never reaches a real token's activations, and its rows are dropped).
 * Memory: host float arrays of {@code tokens × width} per captured path and sentence, e.g. 128
 * sentences of 30 tokens into a 1536-wide layer take 24 MB, plus one batch's activations.
 */
final class Capture {
    /** Per captured path: the first input and the output of each sentence, [tokens, width] flat. */
    record Record(List<float[]> inputs, List<float[]> outputs, List<int[]> inputShapes,
            List<int[]> outputShapes) {}

    /** Sentences per forward pass. */
    static final int BATCH = 16;

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
            for (int start = 0; start < ids.size(); start += BATCH) {
                List<long[]> batch = ids.subList(start, Math.min(ids.size(), start + BATCH));
                int t = 0;
                int[] lengths = new int[batch.size()];
                for (int i = 0; i < lengths.length; i++) {
                    lengths[i] = batch.get(i).length;
                    t = Math.max(t, lengths[i]);
                }
                long[] flat = new long[batch.size() * t];
                long[] mask = new long[flat.length];
                for (int i = 0; i < lengths.length; i++) {
                    System.arraycopy(batch.get(i), 0, flat, i * t, lengths[i]);
                    Arrays.fill(mask, i * t, i * t + lengths[i], 1L);
                }
                for (Recorder r : recorders.values()) {
                    r.lengths = lengths;
                }
                seen[0] = 0;
                try (NDManager m = manager.newSubManager()) {
                    Shape shape = new Shape(lengths.length, t);
                    root.forward(new ParameterStore(m, false),
                            new NDList(m.create(flat, shape), m.create(mask, shape)), false);
                } catch (Stop stop) {
                    // every path recorded this batch
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
        private int[] lengths;

        Recorder(Block inner, boolean outputs) {
            this.inner = inner;
            this.outputs = outputs;
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training,
                PairList<String, Object> params) {
            NDArray x = inputs.head();
            split(x, record.inputs(), record.inputShapes());
            NDList y = inner.forward(ps, inputs, training, params);
            if (outputs) {
                split(y.head(), record.outputs(), record.outputShapes());
            }
            done.run();
            return y;
        }

        /** [B, T, w] → per sentence its first length rows [length, w]. */
        private void split(NDArray a, List<float[]> values, List<int[]> shapes) {
            long[] d = a.getShape().getShape();
            if (d.length != 3 || d[0] != lengths.length) {
                throw new IllegalStateException("expected [" + lengths.length + ", tokens, width], got "
                        + a.getShape());
            }
            int t = Math.toIntExact(d[1]);
            int w = Math.toIntExact(d[2]);
            float[] all = a.toFloatArray();
            for (int i = 0; i < lengths.length; i++) {
                values.add(Arrays.copyOfRange(all, i * t * w, (i * t + lengths[i]) * w));
                shapes.add(new int[] {lengths[i], w});
            }
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            return inner.getOutputShapes(inputShapes);
        }
    }
}
