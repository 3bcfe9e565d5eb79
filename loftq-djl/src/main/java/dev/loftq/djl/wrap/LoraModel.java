package dev.loftq.djl.wrap;

import ai.djl.ndarray.NDManager;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import dev.loftq.core.Checks;
import dev.loftq.core.tensor.TensorScope;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A block tree wrapped by {@link LoraWrapper}: the tree itself (modified in place), the wrapped
 * layers with their report, and the scope that owns every quantized weight, bias and LoRA array.
 *
 * <p>{@link #merge} swaps each {@link dev.loftq.djl.block.QuantizedLoraLinear} for a plain fp32
 * {@link Linear} with {@code W = deq(Q) + s·B·A} (for export or inference); {@link #unmerge} puts
 * the quantized layers back, with the adapters as they were, to continue training.
 *
 * <p>{@link #close()} frees the quantized layers (the tree must not run afterwards unless merged;
 * merged Linears live in the manager given to {@code merge}). Not thread-safe.
 */
public final class LoraModel implements AutoCloseable {
    private final Block root;
    private final List<WrappedLayer> layers;
    private final TensorScope scope;
    private final AtomicBoolean closed = new AtomicBoolean();
    private Map<String, Linear> merged;

    LoraModel(Block root, List<WrappedLayer> layers, TensorScope scope) {
        this.root = root;
        this.layers = List.copyOf(layers);
        this.scope = scope;
    }

    /** The wrapped tree. */
    public Block root() {
        return root;
    }

    /** The wrapped layers in tree order. */
    public List<WrappedLayer> layers() {
        return layers;
    }

    /**
     * The wrapped layer at {@code path}.
     *
     * @throws IllegalArgumentException if no wrapped layer has that path
     */
    public WrappedLayer layer(String path) {
        for (WrappedLayer l : layers) {
            if (l.path().equals(path)) {
                return l;
            }
        }
        throw new IllegalArgumentException("no wrapped layer at " + path + "; wrapped: "
                + paths());
    }

    /** The wrapped paths in tree order. */
    public List<String> paths() {
        List<String> out = new ArrayList<>();
        for (WrappedLayer l : layers) {
            out.add(l.path());
        }
        return out;
    }

    /** The trainable parameters, {@code <path>.lora_A} and {@code <path>.lora_B}, in tree order. */
    public Map<String, Parameter> trainableParameters() {
        Map<String, Parameter> out = new LinkedHashMap<>();
        for (WrappedLayer l : layers) {
            out.put(l.path() + ".lora_A", l.block().loraA());
            out.put(l.path() + ".lora_B", l.block().loraB());
        }
        return out;
    }

    /** Number of trainable weights: the sum of r·(in + out). */
    public long trainableParameterCount() {
        long n = 0;
        for (WrappedLayer l : layers) {
            n += (long) l.rank() * (l.in() + l.out());
        }
        return n;
    }

    /** A table of the wrapped layers: path, shape, format, bits, rank and initial error. */
    public String report() {
        StringBuilder sb = new StringBuilder();
        sb.append(layers.size()).append(" layers wrapped, ").append(trainableParameterCount())
                .append(" trainable weights\n");
        for (WrappedLayer l : layers) {
            sb.append("  ").append(l).append('\n');
        }
        return sb.toString();
    }

    /**
     * Replaces every wrapped layer in the tree by its merged fp32 Linear
     * ({@code QuantizedLoraLinear.merge}), created in {@code manager}.
     *
     * @throws IllegalStateException if already merged or closed
     */
    public void merge(NDManager manager) {
        requireOpen();
        Checks.notNull("manager", manager);
        if (merged != null) {
            throw new IllegalStateException("the model is already merged; unmerge first");
        }
        Map<String, Linear> out = new LinkedHashMap<>();
        for (WrappedLayer l : layers) {
            out.put(l.path(), l.block().merge(manager));
        }
        for (Map.Entry<String, Linear> e : out.entrySet()) {
            BlockRewriter.replace(root, e.getKey(), e.getValue());
        }
        merged = out;
    }

    /**
     * Puts the quantized layers back after {@link #merge}; the merged Linears are dropped (their
     * arrays stay with the manager given to {@code merge}).
     *
     * @throws IllegalStateException if not merged or closed
     */
    public void unmerge() {
        requireOpen();
        if (merged == null) {
            throw new IllegalStateException("the model is not merged");
        }
        for (WrappedLayer l : layers) {
            BlockRewriter.replace(root, l.path(), l.block());
        }
        merged = null;
    }

    /** Whether the tree currently holds merged Linears. */
    public boolean isMerged() {
        return merged != null;
    }

    private void requireOpen() {
        if (closed.get()) {
            throw new IllegalStateException("the LoRA model is closed");
        }
    }

    /** Frees every quantized layer (Q, bias, caches, LoRA arrays). Idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            for (WrappedLayer l : layers) {
                l.block().close();
            }
            scope.close();
        }
    }
}
