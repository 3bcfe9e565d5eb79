package dev.loftq.djl.model;

import ai.djl.nn.Block;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.util.Pair;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Dotted module paths over any DJL block tree, as torch's {@code named_modules()} gives them:
 * {@code encoder.layer.0.attention.self.query}. A child's path segment is its DJL child key
 * without the ordinal prefix DJL's {@code addChildBlock} adds ({@code "%02d"} of its 1-based
 * position: {@code 01query} → {@code query}, {@code 010} → {@code 0}). The root's path is "".
 */
public final class BlockPaths {
    private BlockPaths() {}

    /** Every block of the tree by path, pre-order (root first, children in order). */
    public static Map<String, Block> byPath(Block root) {
        Map<String, Block> out = new LinkedHashMap<>();
        walk("", root, out);
        return out;
    }

    /**
     * The children of a {@link SequentialBlock} or {@link ParallelBlock} (whose DJL keys are only
     * class names), and of any block where two stripped keys would collide or contain a dot, are
     * named by their 0-based position, as torch names the children of {@code nn.Sequential}.
     */
    private static void walk(String path, Block block, Map<String, Block> out) {
        out.put(path, block);
        List<Pair<String, Block>> kids = new ArrayList<>();
        block.getChildren().forEach(kids::add);
        List<String> segments = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        boolean byIndex = block instanceof SequentialBlock || block instanceof ParallelBlock;
        for (int i = 0; i < kids.size() && !byIndex; i++) {
            String seg = segment(kids.get(i).getKey(), i);
            byIndex = !seen.add(seg) || seg.contains(".");
            segments.add(seg);
        }
        for (int i = 0; i < kids.size(); i++) {
            String seg = byIndex ? Integer.toString(i) : segments.get(i);
            walk(path.isEmpty() ? seg : path + "." + seg, kids.get(i).getValue(), out);
        }
    }

    /** The path segment of the child stored under DJL key {@code key} at position {@code index}. */
    public static String segment(String key, int index) {
        String prefix = String.format(Locale.ROOT, "%02d", index + 1);
        return key.startsWith(prefix) && key.length() > prefix.length() ? key.substring(prefix.length()) : key;
    }

    /**
     * The blocks whose path matches {@code pattern}, where {@code *} matches one whole segment:
     * {@code encoder.layer.*.attention.self.query}. In tree order.
     */
    public static Map<String, Block> matching(Block root, String pattern) {
        StringBuilder re = new StringBuilder();
        for (String part : pattern.split("\\.", -1)) {
            if (re.length() > 0) {
                re.append("\\.");
            }
            re.append(part.equals("*") ? "[^.]+" : Pattern.quote(part));
        }
        Pattern p = Pattern.compile(re.toString());
        Map<String, Block> out = new LinkedHashMap<>();
        byPath(root).forEach((path, b) -> {
            if (p.matcher(path).matches()) {
                out.put(path, b);
            }
        });
        return out;
    }

    /**
     * Replaces the block at {@code path} by {@code replacement}; its parent must be a
     * {@link ModuleBlock}.
     *
     * @return the replaced block (not closed)
     * @throws IllegalArgumentException if the path does not exist, is the root, or its parent
     *     cannot swap children
     */
    public static Block replace(Block root, String path, Block replacement) {
        int dot = path.lastIndexOf('.');
        String parentPath = dot < 0 ? "" : path.substring(0, dot);
        String name = path.substring(dot + 1);
        if (path.isEmpty()) {
            throw new IllegalArgumentException("path must name a child block, got the root (\"\")");
        }
        Block parent = byPath(root).get(parentPath);
        if (parent == null) {
            throw new IllegalArgumentException("path " + path + " does not exist: no block at " + parentPath);
        }
        if (!(parent instanceof ModuleBlock)) {
            throw new IllegalArgumentException(
                    "block at " + parentPath + " is a " + parent.getClass().getSimpleName()
                            + ", which cannot swap children (expected a ModuleBlock)");
        }
        return ((ModuleBlock) parent).replaceChild(name, replacement);
    }
}
