package dev.loftq.djl.wrap;

import ai.djl.nn.AbstractBaseBlock;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import dev.loftq.djl.model.BlockPaths;
import java.lang.reflect.Field;
import java.lang.reflect.InaccessibleObjectException;
import java.lang.reflect.Modifier;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Replaces one block of a DJL block tree by another, everywhere the tree refers to it.
 *
 * <p>A DJL block refers to a child in two places that can differ: its children list
 * ({@code AbstractBlock.children}, which {@link Block#getChildren()} copies, and which
 * {@code SequentialBlock}, {@code ParallelBlock} and {@link dev.loftq.djl.model.ModuleBlock}
 * iterate in forward) and, in blocks written the usual DJL way (DJL's
 * {@code ScaledDotProductAttentionBlock}, a user's attention block), Java fields that forward
 * calls. Replacing only the list entry would leave forward calling the old block. So
 * {@link #replace}:
 * <ol>
 *   <li>swaps the entry in the parent's children list (same key, same position, so parameter
 *       names and the DJL save order stay);</li>
 *   <li>for every block of the tree, sets each instance field (declared in the block's class and
 *       its superclasses below {@code AbstractBlock}) that holds the old block to the new one, and
 *       replaces it inside mutable {@link List}s, {@link Map} values and arrays held by such
 *       fields;</li>
 *   <li>refuses, with an {@link IllegalArgumentException} naming the path, what it cannot rewrite
 *       instead of skipping it: a parent that is not an {@code AbstractBlock}, a field whose
 *       declared type cannot hold the new block, an immutable collection holding the old block, a
 *       field the module system keeps closed, or a lambda (e.g. in a {@code LambdaBlock}) that
 *       captured the old block.</li>
 * </ol>
 * References from outside the tree (a variable in user code) are not seen and keep the old block.
 * Nothing is changed when a check fails: every location is collected and checked before the
 * first write.
 */
public final class BlockRewriter {
    private static final Field CHILDREN = childrenField();

    private BlockRewriter() {}

    private static Field childrenField() {
        try {
            Field f = AbstractBlock.class.getDeclaredField("children");
            f.setAccessible(true);
            return f;
        } catch (NoSuchFieldException | RuntimeException e) {
            throw new IllegalStateException("this DJL version has no accessible "
                    + "AbstractBlock.children field: " + e, e);
        }
    }

    /**
     * Replaces the block at {@code path} (not the root) by {@code replacement} in the tree of
     * {@code root}.
     *
     * @return the replaced block
     * @throws IllegalArgumentException if {@code path} names no block, or the tree holds the block
     *     somewhere this class cannot rewrite (the message names the path and the place)
     */
    public static Block replace(Block root, String path, Block replacement) {
        if (path == null || path.isEmpty()) {
            throw new IllegalArgumentException("path must name a child block, got the root (\"\")");
        }
        Map<String, Block> tree = BlockPaths.byPath(root);
        Block old = tree.get(path);
        if (old == null) {
            throw new IllegalArgumentException("no block at path " + path);
        }
        int dot = path.lastIndexOf('.');
        Block parent = tree.get(dot < 0 ? "" : path.substring(0, dot));
        if (!(parent instanceof AbstractBlock)) {
            throw new IllegalArgumentException("cannot rewrite " + path + ": its parent is a "
                    + parent.getClass().getName() + ", not an ai.djl.nn.AbstractBlock, so its "
                    + "children cannot be swapped");
        }
        BlockList children = childrenOf(path, (AbstractBlock) parent);
        int index = children.values().indexOf(old);
        if (index < 0) {
            throw new IllegalArgumentException("cannot rewrite " + path + ": the children list of "
                    + parent.getClass().getName() + " is not the one getChildren() reports");
        }
        Set<Block> blocks = Collections.newSetFromMap(new IdentityHashMap<>());
        blocks.addAll(tree.values());
        List<Runnable> writes = new java.util.ArrayList<>();
        for (Block b : blocks) {
            collectFieldWrites(path, b, old, replacement, writes);
        }
        for (Block b : blocks) {
            if (b instanceof AbstractBlock && b != parent) {
                BlockList other = childrenOf(path, (AbstractBlock) b);
                for (int i = 0; i < other.size(); i++) {
                    if (other.valueAt(i) == old) {
                        writes.add(swapEntry(other, i, replacement));
                    }
                }
            }
        }
        writes.add(swapEntry(children, index, replacement));
        for (Runnable w : writes) {
            w.run();
        }
        return old;
    }

    private static Runnable swapEntry(BlockList list, int index, Block replacement) {
        String key = list.keyAt(index);
        return () -> {
            list.remove(index);
            list.add(index, key, replacement);
        };
    }

    private static BlockList childrenOf(String path, AbstractBlock block) {
        try {
            return (BlockList) CHILDREN.get(block);
        } catch (IllegalAccessException e) {
            throw new IllegalArgumentException("cannot rewrite " + path + ": cannot read the "
                    + "children of " + block.getClass().getName() + ": " + e.getMessage(), e);
        }
    }

    private static void collectFieldWrites(String path, Block holder, Block old, Block replacement,
            List<Runnable> writes) {
        for (Class<?> c = holder.getClass(); c != null && c != AbstractBlock.class
                && c != AbstractBaseBlock.class && c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                if (Modifier.isStatic(f.getModifiers()) || f.getType().isPrimitive()) {
                    continue;
                }
                Object value = read(path, holder, f);
                if (value == old) {
                    writes.add(fieldWrite(path, holder, f, replacement));
                } else if (value instanceof List) {
                    collectListWrites(path, holder, f, (List<?>) value, old, replacement, writes);
                } else if (value instanceof Map) {
                    collectMapWrites(path, holder, f, (Map<?, ?>) value, old, replacement, writes);
                } else if (value instanceof Object[]) {
                    collectArrayWrites(path, holder, f, (Object[]) value, old, replacement, writes);
                } else if (value != null && !(value instanceof Block) && captures(value, old)) {
                    throw new IllegalArgumentException("cannot rewrite " + path + ": "
                            + where(holder, f) + " is a lambda or synthetic object that captured "
                            + "the block; rebuild that block with the replacement instead");
                }
            }
        }
    }

    private static Object read(String path, Object holder, Field f) {
        try {
            f.setAccessible(true);
            return f.get(holder);
        } catch (InaccessibleObjectException | IllegalAccessException e) {
            throw new IllegalArgumentException("cannot rewrite " + path + ": "
                    + where(holder, f) + " is not accessible (" + e.getMessage() + "); open the "
                    + "package to dev.loftq.djl (--add-opens)", e);
        }
    }

    private static Runnable fieldWrite(String path, Object holder, Field f, Block replacement) {
        if (!f.getType().isInstance(replacement)) {
            throw new IllegalArgumentException("cannot rewrite " + path + ": " + where(holder, f)
                    + " is declared " + f.getType().getName() + ", which cannot hold a "
                    + replacement.getClass().getName());
        }
        if (Modifier.isFinal(f.getModifiers())
                && (holder.getClass().isRecord() || holder.getClass().isHidden())) {
            throw new IllegalArgumentException("cannot rewrite " + path + ": " + where(holder, f)
                    + " is a final field of a record or hidden class");
        }
        return () -> {
            try {
                f.set(holder, replacement);
            } catch (IllegalAccessException e) {
                throw new IllegalArgumentException("cannot rewrite " + path + ": "
                        + where(holder, f) + " cannot be set: " + e.getMessage(), e);
            }
        };
    }

    @SuppressWarnings("unchecked")
    private static void collectListWrites(String path, Object holder, Field f, List<?> list,
            Block old, Block replacement, List<Runnable> writes) {
        for (int i = 0; i < list.size(); i++) {
            if (list.get(i) == old) {
                int index = i;
                List<Object> target = (List<Object>) list;
                requireMutable(path, holder, f, () -> target.set(index, old));
                writes.add(() -> target.set(index, replacement));
            }
        }
    }

    @SuppressWarnings("unchecked")
    private static void collectMapWrites(String path, Object holder, Field f, Map<?, ?> map,
            Block old, Block replacement, List<Runnable> writes) {
        for (Map.Entry<?, ?> e : map.entrySet()) {
            if (e.getValue() == old) {
                Object key = e.getKey();
                Map<Object, Object> target = (Map<Object, Object>) map;
                requireMutable(path, holder, f, () -> target.put(key, old));
                writes.add(() -> target.put(key, replacement));
            }
        }
    }

    private static void collectArrayWrites(String path, Object holder, Field f, Object[] array,
            Block old, Block replacement, List<Runnable> writes) {
        for (int i = 0; i < array.length; i++) {
            if (array[i] == old) {
                if (!array.getClass().getComponentType().isInstance(replacement)) {
                    throw new IllegalArgumentException("cannot rewrite " + path + ": "
                            + where(holder, f) + " is an array of "
                            + array.getClass().getComponentType().getName());
                }
                int index = i;
                writes.add(() -> array[index] = replacement);
            }
        }
    }

    /** Tries a no-op write (the same value) to find immutable collections before changing any. */
    private static void requireMutable(String path, Object holder, Field f, Runnable noOpWrite) {
        try {
            noOpWrite.run();
        } catch (UnsupportedOperationException e) {
            throw new IllegalArgumentException("cannot rewrite " + path + ": " + where(holder, f)
                    + " is an immutable collection that holds the block", e);
        }
    }

    /** Whether a lambda or other synthetic object held by a block has captured {@code old}. */
    private static boolean captures(Object value, Block old) {
        Class<?> c = value.getClass();
        if (!c.isSynthetic() && !c.isHidden() && !c.isAnonymousClass()) {
            return false;
        }
        for (Field f : c.getDeclaredFields()) {
            if (Modifier.isStatic(f.getModifiers()) || f.getType().isPrimitive()) {
                continue;
            }
            try {
                f.setAccessible(true);
                if (f.get(value) == old) {
                    return true;
                }
            } catch (InaccessibleObjectException | IllegalAccessException e) {
                return false; // cannot look inside: nothing provable
            }
        }
        return false;
    }

    private static String where(Object holder, Field f) {
        return "field " + f.getDeclaringClass().getName() + "." + f.getName() + " of a "
                + holder.getClass().getSimpleName();
    }
}
