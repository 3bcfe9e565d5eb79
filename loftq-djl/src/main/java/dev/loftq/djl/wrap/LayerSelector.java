package dev.loftq.djl.wrap;

import ai.djl.nn.Block;
import dev.loftq.core.Checks;
import java.util.List;
import java.util.function.BiPredicate;
import java.util.function.Predicate;
import java.util.regex.Pattern;

/**
 * Picks the layers to wrap by their dotted path in the block tree (as
 * {@link BlockPaths#byPath} names them, e.g.
 * {@code encoder.layer.0.attention.self.query}) and, optionally, the block itself.
 *
 * <p>Forms: {@link #glob} ({@code *} = one path segment, {@code **} = any number of segments,
 * including none), {@link #regex} (full match, as Java's {@link Pattern}), {@link #peft} (peft's
 * {@code target_modules} list: the path equals an entry or ends with {@code "." + entry}) and
 * {@link #of} (any predicate on path and block), and {@link #allLinear}. Selectors combine with
 * {@link #or}; {@link #linearOnly} narrows one to Linear blocks. A selector that matches a block
 * other than a Linear makes {@link LoraWrapper#wrap} fail (naming the path), so a broad glob such
 * as {@code encoder.**} needs {@code linearOnly()}.
 */
@FunctionalInterface
public interface LayerSelector {
    /** Whether the block at {@code path} is a target. */
    boolean matches(String path, Block block);

    /** This selector or {@code other}. */
    default LayerSelector or(LayerSelector other) {
        Checks.notNull("other", other);
        return named(this + ".or(" + other + ")", (p, b) -> matches(p, b) || other.matches(p, b));
    }

    /**
     * Paths matching any of the glob {@code patterns}: segments separated by {@code .}, {@code *}
     * matches one whole segment, {@code **} any run of segments.
     */
    static LayerSelector glob(String... patterns) {
        Checks.notNull("patterns", patterns);
        if (patterns.length == 0) {
            throw new IllegalArgumentException("glob needs at least one pattern, got none");
        }
        StringBuilder re = new StringBuilder();
        for (String pattern : patterns) {
            Checks.notNull("pattern", pattern);
            if (re.length() > 0) {
                re.append('|');
            }
            re.append("(?:").append(globToRegex(pattern)).append(')');
        }
        Pattern p = Pattern.compile(re.toString());
        return named("glob" + List.of(patterns), (path, b) -> p.matcher(path).matches());
    }

    /** Paths that {@code regex} matches entirely. */
    static LayerSelector regex(String regex) {
        Pattern p = Pattern.compile(Checks.notNull("regex", regex));
        return named("regex[" + regex + "]", (path, b) -> p.matcher(path).matches());
    }

    /**
     * peft's {@code target_modules} as a list: a path matches when it equals a name or ends with
     * {@code "." + name}, e.g. {@code peft("query", "value")}.
     */
    static LayerSelector peft(String... names) {
        Checks.notNull("names", names);
        List<String> list = List.of(names);
        return named("peft" + list, (path, b) -> {
            for (String n : list) {
                if (path.equals(n) || path.endsWith("." + n)) {
                    return true;
                }
            }
            return false;
        });
    }

    /** Every plain {@code ai.djl.nn.core.Linear} of the tree. */
    static LayerSelector allLinear() {
        return named("allLinear", (path, b) -> b.getClass() == ai.djl.nn.core.Linear.class);
    }

    /** This selector, restricted to plain {@code ai.djl.nn.core.Linear} blocks. */
    default LayerSelector linearOnly() {
        return named(this + ".linearOnly()",
                (p, b) -> b.getClass() == ai.djl.nn.core.Linear.class && matches(p, b));
    }

    /** Any predicate over the path and the block. */
    static LayerSelector of(BiPredicate<String, Block> predicate) {
        Checks.notNull("predicate", predicate);
        return predicate::test;
    }

    /** A predicate over the path only. */
    static LayerSelector ofPath(Predicate<String> predicate) {
        Checks.notNull("predicate", predicate);
        return (path, b) -> predicate.test(path);
    }

    private static LayerSelector named(String description, LayerSelector s) {
        return new LayerSelector() {
            @Override
            public boolean matches(String path, Block block) {
                return s.matches(path, block);
            }

            @Override
            public String toString() {
                return description;
            }
        };
    }

    private static String globToRegex(String glob) {
        String[] parts = glob.split("\\.", -1);
        StringBuilder re = new StringBuilder();
        for (int i = 0; i < parts.length; i++) {
            String part = parts[i];
            boolean last = i == parts.length - 1;
            if (part.equals("**")) {
                // any run of segments, with the separating dot when followed by more
                re.append(last ? ".*" : "(?:[^.]+\\.)*");
                continue;
            }
            re.append(part.equals("*") ? "[^.]+" : Pattern.quote(part));
            if (!last) {
                re.append("\\.");
            }
        }
        return re.toString();
    }
}
