package dev.loftq.djl.model;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/**
 * A DJL block whose children are named modules that can be swapped, as in a torch
 * {@code nn.Module}: each child is registered with {@link #addModule} (DJL's
 * {@code addChildBlock}, so DJL stores it under {@code "%02d" + name}, e.g. {@code 01query}) and
 * the block's forward always calls the child currently in the slot, never a cached reference.
 *
 * <p>{@link #replaceChild} puts another block in a slot (keeping its DJL key, hence parameter names
 * and save order): the LoRA wrapper uses it to replace a {@code Linear} by a quantized LoRA linear.
 * A replacement must take and return what the replaced child does (for a Linear: one array
 * [..., in] → one array [..., out]). When the tree is initialized ({@link #initialize}), each slot's
 * child is initialized with the input shapes recorded for the slot (for a Linear: [1, in]), so a
 * replacement with fresh parameters gets initialized there too; children already initialized
 * keep their values.
 *
 * <p>Not thread-safe for replacement; forward is as thread-safe as the children.
 */
public abstract class ModuleBlock extends AbstractBlock {
    private final List<String> names = new ArrayList<>();
    private final List<Shape[]> slotShapes = new ArrayList<>();

    /** A block of the given (DJL save-format) version. */
    protected ModuleBlock(byte version) {
        super(version);
    }

    /**
     * Registers {@code block} as child module {@code name}.
     *
     * @param name module name (the path segment), unique within this block
     * @param block the child
     * @param inputShapes the shapes the child is initialized with when this block is
     * @return {@code block}
     */
    protected final <B extends Block> B addModule(String name, B block, Shape... inputShapes) {
        if (names.contains(name)) {
            throw new IllegalArgumentException("module name " + name + " is already used in " + getClass().getSimpleName());
        }
        names.add(name);
        slotShapes.add(inputShapes.clone());
        return addChildBlock(name, block);
    }

    /** The child in slot {@code index} (registration order); what forward calls. */
    protected final Block childAt(int index) {
        return children.valueAt(index);
    }

    /** Module names of the children, in registration order. */
    public final List<String> childNames() {
        return Collections.unmodifiableList(names);
    }

    /**
     * The child module {@code name}.
     *
     * @throws IllegalArgumentException if there is none
     */
    public final Block child(String name) {
        return children.valueAt(indexOf(name));
    }

    /** The shapes the slot's child is initialized with (copies). */
    public final Shape[] slotInputShapes(String name) {
        return slotShapes.get(indexOf(name)).clone();
    }

    /**
     * Replaces child module {@code name} by {@code replacement}, which forward uses from now on.
     * Closes nothing: the replaced block (returned) and its parameters stay with their manager.
     *
     * @param name the module name, e.g. {@code query}
     * @param replacement a block with the same input and output contract; not null, not this
     * @return the block that was in the slot
     * @throws IllegalArgumentException if there is no such child or the replacement is null
     */
    public final Block replaceChild(String name, Block replacement) {
        Objects.requireNonNull(name, "name");
        if (replacement == null || replacement == this) {
            throw new IllegalArgumentException("replacement for module " + name + " must be a block other than its parent, got " + replacement);
        }
        int i = indexOf(name);
        String key = children.keyAt(i);
        Block old = children.valueAt(i);
        children.remove(i);
        children.add(i, key, replacement);
        return old;
    }

    private int indexOf(String name) {
        int i = names.indexOf(name);
        if (i < 0) {
            throw new IllegalArgumentException(
                    "module " + name + " is not a child of " + getClass().getSimpleName() + " (children: " + names + ")");
        }
        return i;
    }

    /** Initializes each slot's child with the slot's recorded shapes. */
    @Override
    protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
        for (int i = 0; i < names.size(); i++) {
            children.valueAt(i).initialize(manager, dataType, slotShapes.get(i));
        }
    }
}
