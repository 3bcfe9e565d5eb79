package dev.loftq.demo;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import dev.loftq.core.Checks;
import dev.loftq.djl.model.MiniLmModel;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.IntConsumer;

/**
 * Pulls a LoRA-wrapped model's sentence embeddings toward the fp32 model's by training only the
 * adapters (the wrapper froze everything else) with DJL's {@link Trainer}: loss = mean over the
 * batch of 1 − cos(student, teacher), Adam with clipped gradients, shuffled mini-batches drawn
 * epoch by epoch. A non-finite loss stops training with an {@link IllegalStateException}.
 *
 * @param steps optimizer steps, in [1, 100000]
 * @param batchSize sentences per step, in [1, 4096]
 * @param learningRate Adam's learning rate, &gt; 0
 * @param seed seed of the batch order
 */
public record Distillation(int steps, int batchSize, float learningRate, long seed) {
    /** Each gradient element is clipped to ±this before Adam sees it (a 2-bit start has spiky gradients). */
    static final float CLIP_GRADIENT = 1f;

    /** Validates. */
    public Distillation {
        Checks.inRange("steps", steps, 1, 100_000);
        Checks.inRange("batchSize", batchSize, 1, 4096);
        Checks.positive("learningRate", learningRate);
    }

    /**
     * Trains the trainable parameters of {@code student.block()}.
     *
     * @param student the wrapped model; its adapters are updated in place
     * @param ids token ids of the training sentences ({@link MiniLmModel#tokenize}); not modified
     * @param teacher fp32 unit embeddings of the same sentences, [ids.size()][H]; not modified
     * @param onStep called with the step number after each step
     * @return the loss of each step's mini-batch, before its update
     * @throws IllegalArgumentException if ids is empty or teacher does not match it
     */
    public float[] train(MiniLmModel student, List<long[]> ids, float[][] teacher, IntConsumer onStep) {
        if (ids == null || ids.isEmpty() || teacher == null || teacher.length != ids.size()) {
            throw new IllegalArgumentException("ids and teacher must be non-empty and of the same length, got "
                    + (ids == null ? "null" : ids.size()) + " and " + (teacher == null ? "null" : teacher.length));
        }
        int h = student.config().hiddenSize();
        float[] losses = new float[steps];
        DefaultTrainingConfig config = new DefaultTrainingConfig(new CosineDistance())
                .optDevices(new Device[] {Device.cpu()})
                .optOptimizer(Optimizer.adam().optLearningRateTracker(Tracker.fixed(learningRate))
                        .optClipGrad(CLIP_GRADIENT).build());
        try (Model model = Model.newInstance("minilm-distillation", Device.cpu());
                Trainer trainer = newTrainer(model, student, config)) {
            Random random = new Random(seed);
            int[] order = new int[0];
            int next = 0;
            for (int step = 0; step < steps; step++) {
                if (next + Math.min(batchSize, ids.size()) > order.length) {
                    order = shuffled(ids.size(), random); // a new epoch
                    next = 0;
                }
                int b = Math.min(batchSize, ids.size());
                int[] batch = Arrays.copyOfRange(order, next, next + b);
                next += b;
                try (NDManager scope = trainer.getManager().newSubManager()) {
                    NDList inputs = inputs(scope, ids, batch);
                    float[] target = new float[b * h];
                    for (int i = 0; i < b; i++) {
                        System.arraycopy(teacher[batch[i]], 0, target, i * h, h);
                    }
                    NDArray labels = scope.create(target, new Shape(b, h));
                    try (GradientCollector gc = trainer.newGradientCollector()) {
                        NDArray embeddings = trainer.forward(inputs).get(1);
                        NDArray loss = trainer.getLoss().evaluate(new NDList(labels), new NDList(embeddings));
                        losses[step] = loss.getFloat();
                        if (!Float.isFinite(losses[step])) {
                            throw new IllegalStateException("fine-tuning diverged at step " + (step + 1) + ": loss "
                                    + losses[step] + "; use a smaller learning rate than " + learningRate);
                        }
                        gc.backward(loss);
                    }
                    trainer.step();
                }
                onStep.accept(step + 1);
            }
        }
        return losses;
    }

    private static Trainer newTrainer(Model model, MiniLmModel student, DefaultTrainingConfig config) {
        model.setBlock(student.block());
        return model.newTrainer(config);
    }

    /** input_ids and attention_mask [b, longest], padded with 0 and masked out. */
    private static NDList inputs(NDManager scope, List<long[]> ids, int[] batch) {
        int t = 0;
        for (int i : batch) {
            t = Math.max(t, ids.get(i).length);
        }
        long[] tokens = new long[batch.length * t];
        long[] mask = new long[batch.length * t];
        for (int k = 0; k < batch.length; k++) {
            long[] s = ids.get(batch[k]);
            System.arraycopy(s, 0, tokens, k * t, s.length);
            Arrays.fill(mask, k * t, k * t + s.length, 1L);
        }
        Shape shape = new Shape(batch.length, t);
        return new NDList(scope.create(tokens, shape), scope.create(mask, shape));
    }

    private static int[] shuffled(int n, Random random) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) {
            a[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int tmp = a[i];
            a[i] = a[j];
            a[j] = tmp;
        }
        return a;
    }

    /** Mean over rows of 1 − ⟨label, prediction⟩ / (‖label‖‖prediction‖). */
    static final class CosineDistance extends Loss {
        CosineDistance() {
            super("cosine-distance");
        }

        @Override
        public NDArray evaluate(NDList labels, NDList predictions) {
            NDArray t = labels.singletonOrThrow().normalize(2, 1, 1e-12);
            NDArray p = predictions.singletonOrThrow().normalize(2, 1, 1e-12);
            return t.mul(p).sum(new int[] {1}).neg().add(1f).mean();
        }
    }
}
