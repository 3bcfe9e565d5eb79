package dev.loftq.djl.wrap;

import ai.djl.nn.Block;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
import ai.djl.util.Pair;
import dev.loftq.djl.model.BlockPaths;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Dotted module paths of a DJL block tree, as torch's {@code named_modules()} would give them, and
 * the names {@link LoraWrapper} selects by and the peft files use.
 *
 * <p>A child's segment is its DJL key without the ordinal prefix that {@code addChildBlock} adds
 * ({@link BlockPaths#segment}: {@code 01query} → {@code query}), except that the children of a
 * {@link SequentialBlock} or {@link ParallelBlock} (whose DJL keys are only class names) and the
 * children of any block where two stripped keys would collide are named by their 0-based position,
 * as torch names the children of {@code nn.Sequential}: {@code 0}, {@code 1}, ... For the trees of
 * {@link dev.loftq.djl.model} this is exactly {@link BlockPaths#byPath}. The root's path is "".
 */
public final class ModulePaths {
    private ModulePaths() {}

    /** Every block of the tree by path, pre-order (root first, children in order). */
    public static Map<String, Block> byPath(Block root) {
        Map<String, Block> out = new LinkedHashMap<>();
        walk("", root, out);
        return out;
    }

    private static void walk(String path, Block block, Map<String, Block> out) {
        out.put(path, block);
        List<Pair<String, Block>> kids = new ArrayList<>();
        block.getChildren().forEach(kids::add);
        List<String> segments = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        boolean byIndex = block instanceof SequentialBlock || block instanceof ParallelBlock;
        for (int i = 0; i < kids.size() && !byIndex; i++) {
            String seg = BlockPaths.segment(kids.get(i).getKey(), i);
            byIndex = !seen.add(seg) || seg.contains(".");
            segments.add(seg);
        }
        for (int i = 0; i < kids.size(); i++) {
            String seg = byIndex ? Integer.toString(i) : segments.get(i);
            walk(path.isEmpty() ? seg : path + "." + seg, kids.get(i).getValue(), out);
        }
    }
}
