package dev.loftq.quant.apiq;

import dev.loftq.core.Checks;
import dev.loftq.core.tensor.Autograd;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * ApiQ's per-target optimisation (Liao &amp; Monz, 2024, arXiv:2402.05147), written once over the
 * tensor SPI and its {@link Autograd}: for every weight W of the target, learn the clipping logits
 * γ, β of a {@link LearnableClipQuantizer} (with {@link ApiqConfig#normalFloat()}: one logit γ
 * per block of a {@link LearnableClipCodebookQuantizer}) and LoRA factors A, B (B starts at 0, A
 * Gaussian with peft's variance 1/(3·in)) minimising the mean squared error between
 * {@code f(X_q; Q_{γ,β}(W) + s·B·A)} and the full-precision outputs {@code f_fp(X_fp)} (plus, with
 * {@link ApiqConfig#aug()}, the error to {@code f_fp(X_q)}), with {@link AdamW} in two parameter
 * groups. The parameters kept are those with the lowest held-out loss, checked every
 * {@link ApiqConfig#evalEvery()} steps; the target stops early after {@link ApiqConfig#patience()}
 * checks without improvement.
 *
 * <p>A {@link LinearTarget}'s loss on its fixed calibration batches is evaluated through their
 * sufficient statistics ({@link LinearGramError}) where that is cheaper than its tokens: the same
 * function, a few times fewer operations per step.
 */
public final class Apiq {
    private static final Logger LOG = LoggerFactory.getLogger(Apiq.class);

    private Apiq() {}

    /**
     * Optimises one target. The last {@code round(holdOut · n)} samples (at least one sample stays
     * for training) are held out for model selection.
     *
     * @param scope owns the result; its backend must have autograd
     * @param target the layer or block
     * @param samples calibration samples, at least one; not modified
     * @param config settings
     * @throws IllegalArgumentException if the backend has no autograd, there are no samples, or a
     *     sample's shapes do not fit the target
     * @throws ApiqDivergedException if a loss is NaN or infinite (naming the target and step; the
     *     best parameters so far are in the exception)
     */
    public static ApiqResult optimize(TensorScope scope, ApiqTarget target,
            List<ApiqSample> samples, ApiqConfig config) {
        Autograd ad = scope.backend().autograd().orElseThrow(() -> new IllegalArgumentException(
                "ApiQ needs a backend with autograd, got " + scope.backend().name()));
        Checks.notNull("target", target);
        Checks.notNull("config", config);
        if (samples == null || samples.isEmpty()) {
            throw new IllegalArgumentException("calibration samples for " + target.name()
                    + " must not be empty, got " + (samples == null ? "null" : "0 samples"));
        }
        for (int i = 0; i < samples.size(); i++) {
            ApiqSample s = samples.get(i);
            int[] expected = target.outputShape(s.input().shape());
            if (!Arrays.equals(expected, s.output().shape())) {
                throw new IllegalArgumentException("calibration sample " + i + " of "
                        + target.name() + ": input " + Arrays.toString(s.input().shape())
                        + " gives output " + Arrays.toString(expected) + ", but the sample's output is "
                        + Arrays.toString(s.output().shape()));
            }
        }
        int held = samples.size() < 2 ? 0
                : Math.min(samples.size() - 1, (int) Math.round(config.holdOut() * samples.size()));
        return new Run(scope, ad, target, samples.subList(0, samples.size() - held),
                samples.subList(samples.size() - held, samples.size()), config).run();
    }

    /** One target's optimisation state. */
    private static final class Run {
        private final TensorScope scope;
        private final Autograd ad;
        private final ApiqTarget target;
        private final ApiqConfig config;
        private final List<String> names;
        private final List<ClippedWeight> clipped = new ArrayList<>();
        /** Per weight: γ logits, out, in. */
        private final List<int[]> shapes = new ArrayList<>();
        private final float scaling;
        private final TensorScope data;
        private final List<Batch> fullTrain;
        private final List<Batch> heldOut;
        /** The loss of the full training set and of the held-out set, as the optimiser evaluates them. */
        private final SquaredError trainError;
        private final SquaredError heldOutError;
        private final List<ApiqSample> train;

        Run(TensorScope scope, Autograd ad, ApiqTarget target, List<ApiqSample> train,
                List<ApiqSample> heldOut, ApiqConfig config) {
            this.scope = scope;
            this.ad = ad;
            this.target = target;
            this.config = config;
            this.train = train;
            this.names = new ArrayList<>(target.weights().keySet());
            this.scaling = config.scaling();
            this.data = scope.newChild();
            for (String n : names) {
                clipped.add(clippedWeight(data, target.weights().get(n), target.name() + "." + n));
            }
            this.fullTrain = batches(data, train);
            this.heldOut = heldOut.isEmpty() ? List.of() : batches(data, heldOut);
            this.trainError = fixedError(data, fullTrain);
            this.heldOutError = this.heldOut.isEmpty() ? null : fixedError(data, this.heldOut);
        }

        /** {@code w}'s learnable quantizer: int-k with γ, β per group, or NF-k with γ per block. */
        private ClippedWeight clippedWeight(TensorScope owner, Tensor w, String name) {
            if (config.normalFloat()) {
                var nf = new LearnableClipCodebookQuantizer(config.codebookQuantizer());
                int blocks = nf.blocks(w, name);
                LearnableClipCodebookQuantizer.Blocked blocked = nf.block(owner, w, name);
                return new ClippedWeight() {
                    @Override
                    public int gammas() {
                        return blocks;
                    }

                    @Override
                    public boolean hasBeta() {
                        return false;
                    }

                    @Override
                    public Tensor fake(TensorScope s, Tensor gamma, Tensor beta, Autograd autograd) {
                        return nf.fakeQuantize(s, blocked, gamma, autograd);
                    }

                    @Override
                    public QuantizedTensor quantize(TensorScope s, Tensor gamma, Tensor beta) {
                        return nf.quantize(s, w, name, gamma);
                    }
                };
            }
            var lwc = new LearnableClipQuantizer(config.quantizer(), config.groupSize());
            int groups = lwc.groups(w, name);
            LearnableClipQuantizer.Grouped grouped = lwc.group(owner, w, name);
            return new ClippedWeight() {
                @Override
                public int gammas() {
                    return groups;
                }

                @Override
                public boolean hasBeta() {
                    return true;
                }

                @Override
                public Tensor fake(TensorScope s, Tensor gamma, Tensor beta, Autograd autograd) {
                    return lwc.fakeQuantize(s, grouped, gamma, beta, autograd);
                }

                @Override
                public QuantizedTensor quantize(TensorScope s, Tensor gamma, Tensor beta) {
                    return lwc.quantize(s, w, name, gamma, beta);
                }
            };
        }

        /**
         * The squared error of batches that stay fixed for the whole run: a Linear's sufficient
         * statistics where they are cheaper than its tokens ({@link LinearGramError}), else the
         * target's forward on the batches.
         */
        private SquaredError fixedError(TensorScope owner, List<Batch> batches) {
            if (target instanceof LinearTarget linear && batches.size() == 1
                    && LinearGramError.pays(batches.get(0).input())) {
                Batch b = batches.get(0);
                return new LinearGramError(owner, linear, b.input(), b.output(), config.aug());
            }
            return forwardError(batches);
        }

        /** The squared error of batches through the target's forward (plus the aug term). */
        private SquaredError forwardError(List<Batch> batches) {
            long count = 0;
            for (Batch b : batches) {
                count += b.output().numel();
            }
            long total = count;
            return new SquaredError() {
                @Override
                public Tensor sum(TensorScope s, Map<String, Tensor> w) {
                    Tensor sum = null;
                    for (Batch b : batches) {
                        Tensor y = target.forward(s, b.input(), w);
                        Tensor term = sumOfSquares(s, s.sub(y, b.output()));
                        if (b.aug() != null) {
                            term = s.add(term, sumOfSquares(s, s.sub(y, b.aug())));
                        }
                        sum = sum == null ? term : s.add(sum, term);
                    }
                    return sum;
                }

                @Override
                public long count() {
                    return total;
                }
            };
        }

        /** Samples as batches: stacked into one for a rowwise target, else one per sample. */
        private List<Batch> batches(TensorScope owner, List<ApiqSample> s) {
            List<Batch> out = new ArrayList<>();
            if (target.rowwise()) {
                Tensor[] in = new Tensor[s.size()];
                Tensor[] y = new Tensor[s.size()];
                for (int i = 0; i < in.length; i++) {
                    in[i] = s.get(i).input();
                    y[i] = s.get(i).output();
                }
                Tensor x = in.length == 1 ? in[0] : owner.concat(0, in);
                out.add(batch(owner, x, y.length == 1 ? y[0] : owner.concat(0, y)));
            } else {
                for (ApiqSample e : s) {
                    out.add(batch(owner, e.input(), e.output()));
                }
            }
            return out;
        }

        private Batch batch(TensorScope owner, Tensor x, Tensor y) {
            Tensor aug = config.aug() ? target.forward(owner, x, target.weights()) : null;
            return new Batch(x, y, aug);
        }

        ApiqResult run() {
            TensorScope gen = scope.newChild();
            TensorScope best = null;
            try {
                Tensor[] p = initial(gen);
                AdamW adam = new AdamW(groups());
                double[] trainLoss = new double[config.steps()];
                List<Double> evalLoss = new ArrayList<>();
                List<Integer> evalSteps = new ArrayList<>();
                Tensor[] bestParams = p;
                double bestLoss = Double.POSITIVE_INFINITY;
                int bestStep = 0;
                int sinceBest = 0;
                double startError;
                double heldStartError;
                try (TensorScope tmp = scope.newChild()) {
                    Map<String, Tensor> w = effective(tmp, p, null);
                    startError = relativeError(tmp, fullTrain, w);
                    heldStartError = heldOut.isEmpty() ? Double.NaN : relativeError(tmp, heldOut, w);
                }
                Random order = new Random(config.seed());
                List<Integer> perm = new ArrayList<>();
                int steps = 0;
                for (int t = 0; t <= config.steps(); t++) {
                    if (t % config.evalEvery() == 0 || t == config.steps()) {
                        double sel;
                        try (TensorScope tmp = scope.newChild()) {
                            sel = tmp.item(loss(tmp, heldOutError == null ? trainError : heldOutError,
                                    effective(tmp, p, null)));
                        }
                        evalLoss.add(sel);
                        evalSteps.add(t);
                        if (sel < bestLoss) {
                            bestLoss = sel;
                            bestStep = t;
                            sinceBest = 0;
                            if (best != null) {
                                best.close();
                            }
                            best = scope.newChild();
                            bestParams = copies(best, p);
                        } else if (config.patience() > 0 && ++sinceBest >= config.patience()) {
                            LOG.debug("{}: stopped at step {} (best {} at step {})", target.name(),
                                    t, bestLoss, bestStep);
                            break;
                        }
                    }
                    if (t == config.steps()) {
                        break;
                    }
                    for (Tensor x : p) {
                        ad.requireGradient(x);
                    }
                    Tensor[] grads = new Tensor[p.length];
                    try (TensorScope step = scope.newChild()) {
                        SquaredError batch = nextBatch(step, order, perm);
                        Tensor l;
                        try (Autograd.Tape tape = ad.record()) {
                            l = loss(step, batch, effective(step, p, ad));
                            tape.backward(l);
                        }
                        float lv = step.item(l);
                        if (!Float.isFinite(lv)) {
                            ApiqResult kept = result(bestParams, trainLoss, steps,
                                    evalLoss, evalSteps, bestStep, startError, heldStartError);
                            throw new ApiqDivergedException("ApiQ target " + target.name()
                                    + ": loss is " + lv + " at step " + t + "; kept the best "
                                    + "parameters (step " + bestStep + ")", kept);
                        }
                        trainLoss[t] = lv;
                        steps = t + 1;
                        for (int i = 0; i < p.length; i++) {
                            grads[i] = ad.gradient(p[i]);
                        }
                        TensorScope next = scope.newChild();
                        p = adam.step(next, p, grads);
                        gen.close();
                        gen = next;
                    }
                }
                return result(bestParams, trainLoss, steps, evalLoss, evalSteps,
                        bestStep, startError, heldStartError);
            } finally {
                gen.close();
                if (best != null) {
                    best.close();
                }
                data.close();
            }
        }

        /** Copies of {@code p} in {@code owner}, cut from the graph. */
        private Tensor[] copies(TensorScope owner, Tensor[] p) {
            Tensor[] out = new Tensor[p.length];
            for (int i = 0; i < p.length; i++) {
                out[i] = owner.mul(ad.stopGradient(owner, p[i]), 1f);
            }
            return out;
        }

        /** The next mini-batch (samples drawn without replacement, reshuffled each epoch). */
        private SquaredError nextBatch(TensorScope step, Random order, List<Integer> perm) {
            if (config.batchSize() == 0 || config.batchSize() >= train.size()) {
                return trainError;
            }
            List<ApiqSample> picked = new ArrayList<>();
            for (int k = 0; k < config.batchSize(); k++) {
                if (perm.isEmpty()) {
                    for (int i = 0; i < train.size(); i++) {
                        perm.add(i);
                    }
                    Collections.shuffle(perm, order);
                }
                picked.add(train.get(perm.remove(perm.size() - 1)));
            }
            return forwardError(batches(step, picked));
        }

        /**
         * γ = β = clip init, A ~ N(0, 1/(3·in)) seeded per weight, B = 0. The optimiser sees two
         * flat leaves, all clipping logits [γ0, β0, γ1, β1, ...] (no β for NF-k) and all factors
         * [A0, B0, A1, ...]
         * (one AdamW group each), so a step costs a few operations however many weights the
         * target has; {@link #unpack} slices them into per-weight views inside the recording.
         */
        private Tensor[] initial(TensorScope gen) {
            Map<String, Tensor> w = target.weights();
            List<Tensor> clip = new ArrayList<>();
            List<Tensor> lora = new ArrayList<>();
            try (TensorScope tmp = gen.newChild()) {
                for (int k = 0; k < names.size(); k++) {
                    Tensor wk = w.get(names.get(k));
                    int groups = clipped.get(k).gammas();
                    int out = wk.dim(0);
                    int in = wk.dim(1);
                    if (config.rank() > Math.min(out, in)) {
                        throw new IllegalArgumentException("rank must be in [1, min(out, in) = "
                                + Math.min(out, in) + "] for " + target.name() + "."
                                + names.get(k) + ", got " + config.rank());
                    }
                    shapes.add(new int[] {groups, out, in});
                    clip.add(tmp.full(config.clipInit(), groups));
                    if (clipped.get(k).hasBeta()) {
                        clip.add(tmp.full(config.clipInit(), groups));
                    }
                    long seed = config.seed() ^ ((target.name() + "." + names.get(k)).hashCode()
                            * 0x9E3779B97F4A7C15L);
                    lora.add(tmp.randomNormal(seed, 0f, (float) (1 / Math.sqrt(3.0 * in)),
                            config.rank() * in));
                    lora.add(tmp.full(0f, out * config.rank()));
                }
                return new Tensor[] {gen.keep(flat(tmp, clip)), gen.keep(flat(tmp, lora))};
            }
        }

        private static Tensor flat(TensorScope s, List<Tensor> parts) {
            return parts.size() == 1 ? s.add(parts.get(0), 0f)
                    : s.concat(0, parts.toArray(new Tensor[0]));
        }

        /** Per weight k: [γ_k, β_k (null for NF-k), A_k, B_k], views of the two flat parameters. */
        private Tensor[] unpack(TensorScope s, Tensor[] p) {
            Tensor[] u = new Tensor[4 * shapes.size()];
            int c = 0;
            int l = 0;
            int r = config.rank();
            for (int k = 0; k < shapes.size(); k++) {
                int groups = shapes.get(k)[0];
                int out = shapes.get(k)[1];
                int in = shapes.get(k)[2];
                u[4 * k] = s.sliceRows(p[0], c, c + groups);
                c += groups;
                if (clipped.get(k).hasBeta()) {
                    u[4 * k + 1] = s.sliceRows(p[0], c, c + groups);
                    c += groups;
                }
                u[4 * k + 2] = s.reshape(s.sliceRows(p[1], l, l + r * in), r, in);
                l += r * in;
                u[4 * k + 3] = s.reshape(s.sliceRows(p[1], l, l + out * r), out, r);
                l += out * r;
            }
            return u;
        }

        private AdamW.Group[] groups() {
            return new AdamW.Group[] {new AdamW.Group(config.clipLr(), config.clipWeightDecay()),
                new AdamW.Group(config.loraLr(), config.loraWeightDecay())};
        }

        /** Q_{γ,β}(W) + s·B·A per weight; straight-through rounding when {@code ad} is given. */
        private Map<String, Tensor> effective(TensorScope s, Tensor[] flat, Autograd autograd) {
            Tensor[] p = unpack(s, flat);
            Map<String, Tensor> out = new LinkedHashMap<>();
            for (int k = 0; k < names.size(); k++) {
                Tensor q = clipped.get(k).fake(s, p[4 * k], p[4 * k + 1], autograd);
                out.put(names.get(k), s.add(q, loraTerm(s, p[4 * k + 3], p[4 * k + 2])));
            }
            return out;
        }

        /**
         * s·B·A; for s = 1 (lora_alpha = r) the product itself: the same values, and a pass over
         * the weight fewer each way of every step.
         */
        private Tensor loraTerm(TensorScope s, Tensor b, Tensor a) {
            Tensor ba = s.matmul(b, a);
            return scaling == 1f ? ba : s.mul(ba, scaling);
        }

        /** Mean squared error (plus the aug term), a one-element tensor. */
        private static Tensor loss(TensorScope s, SquaredError error, Map<String, Tensor> w) {
            return s.div(error.sum(s, w), (float) error.count());
        }

        private static Tensor sumOfSquares(TensorScope s, Tensor d) {
            Tensor flat = s.reshape(d, (int) d.numel());
            return s.sumLast(s.mul(flat, flat));
        }

        private double relativeError(TensorScope s, List<Batch> batch, Map<String, Tensor> w) {
            double num = 0;
            double den = 0;
            for (Batch b : batch) {
                try (TensorScope tmp = s.newChild()) {
                    num += tmp.sumOfSquares(tmp.sub(target.forward(tmp, b.input(), w), b.output()));
                    den += tmp.sumOfSquares(b.output());
                }
            }
            return den == 0 ? num : num / den;
        }

        private ApiqResult result(Tensor[] flat, double[] trainLoss, int steps, List<Double> evalLoss,
                List<Integer> evalSteps, int bestStep, double startError, double heldStartError) {
            Map<String, ApiqResult.Weight> weights = new LinkedHashMap<>();
            Map<String, Tensor> stored = new LinkedHashMap<>();
            Map<String, Tensor> w = target.weights();
            try (TensorScope views = scope.newChild()) {
                Tensor[] p = unpack(views, flat);
                for (int k = 0; k < names.size(); k++) {
                    String n = names.get(k);
                    QuantizedTensor q = clipped.get(k).quantize(scope, p[4 * k], p[4 * k + 1]);
                    Tensor a = copy(p[4 * k + 2]);
                    Tensor b = copy(p[4 * k + 3]);
                    Tensor beta = p[4 * k + 1] == null ? null : copy(p[4 * k + 1]);
                    weights.put(n, new ApiqResult.Weight(q, a, b, copy(p[4 * k]), beta));
                }
            }
            double calib;
            double held;
            try (TensorScope tmp = scope.newChild()) {
                for (Map.Entry<String, ApiqResult.Weight> e : weights.entrySet()) {
                    ApiqResult.Weight x = e.getValue();
                    stored.put(e.getKey(), tmp.add(x.quantized().dequantize(tmp),
                            loraTerm(tmp, x.loraB(), x.loraA())));
                }
                calib = relativeError(tmp, fullTrain, stored);
                held = heldOut.isEmpty() ? Double.NaN : relativeError(tmp, heldOut, stored);
            }
            double[] ev = new double[evalLoss.size()];
            int[] es = new int[evalSteps.size()];
            for (int i = 0; i < ev.length; i++) {
                ev[i] = evalLoss.get(i);
                es[i] = evalSteps.get(i);
            }
            LOG.debug("{}: relative error {} -> {} (held-out {} -> {}), best step {}",
                    target.name(), startError, calib, heldStartError, held, bestStep);
            return new ApiqResult(target.name(), weights, scaling,
                    Arrays.copyOf(trainLoss, steps), ev, es, bestStep, startError, calib,
                    heldStartError, held);
        }

        private Tensor copy(Tensor t) {
            return scope.mul(ad.stopGradient(scope, t), 1f);
        }
    }

    /** One weight's learnable quantizer, prepared for repeated fake quantization. */
    private interface ClippedWeight {
        /** Clipping logits γ (and as many β where {@link #hasBeta}). */
        int gammas();

        /** Whether the group minima have logits β of their own (int-k). */
        boolean hasBeta();

        /** deq(Q_{γ,β}(W)), straight-through where {@code autograd} is given; β null for NF-k. */
        Tensor fake(TensorScope s, Tensor gamma, Tensor beta, Autograd autograd);

        /** The stored Q; β null for NF-k. */
        QuantizedTensor quantize(TensorScope s, Tensor gamma, Tensor beta);
    }

    /** Stacked inputs, outputs and (with aug) full-precision outputs on the inputs. */
    private record Batch(Tensor input, Tensor output, Tensor aug) {}
}
