package dev.loftq.djl.checkpoint;

import dev.loftq.core.Checks;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.OptionalInt;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Bits (and optionally rank) per module, chosen by the first rule whose regular expression is
 * found in the module path ({@link java.util.regex.Matcher#find()}, so {@code layers\.[0-3]\.}
 * matches {@code model.layers.2.mlp.up_proj}). Modules no rule matches keep the defaults. Written
 * as {@code "regex=bits[:rank],regex=bits[:rank],…"}, e.g. {@code "layers.[0-3].*=4,.*=2"}.
 * Immutable.
 */
public final class MixedPrecisionPolicy {
    /** One rule: modules where {@code pattern} is found get {@code bits} and, if set, {@code rank}. */
    public record Rule(Pattern pattern, int bits, OptionalInt rank) {
        /** Validates: bits in {2, 3, 4}, rank in [1, 4096]. */
        public Rule {
            Checks.notNull("pattern", pattern);
            Checks.oneOf("bits", bits, 2, 3, 4);
            Checks.notNull("rank", rank);
            if (rank.isPresent()) {
                Checks.inRange("rank", rank.getAsInt(), 1, 4096);
            }
        }
    }

    /** No rules: every module gets the defaults. */
    public static final MixedPrecisionPolicy NONE = new MixedPrecisionPolicy(List.of());

    private final List<Rule> rules;

    private MixedPrecisionPolicy(List<Rule> rules) {
        this.rules = Collections.unmodifiableList(new ArrayList<>(rules));
    }

    /** A policy of {@code rules}, tried in order. */
    public static MixedPrecisionPolicy of(List<Rule> rules) {
        return new MixedPrecisionPolicy(Checks.notNull("rules", rules));
    }

    /**
     * Parses {@code "regex=bits[:rank],…"}. Commas separate rules; a regex may not contain a comma
     * or '='.
     *
     * @throws IllegalArgumentException naming the rule and what is allowed
     */
    public static MixedPrecisionPolicy parse(String spec) {
        Checks.notNull("mixed-precision spec", spec);
        List<Rule> rules = new ArrayList<>();
        for (String part : spec.split(",")) {
            String rule = part.trim();
            int eq = rule.lastIndexOf('=');
            if (rule.isEmpty() || eq <= 0 || eq == rule.length() - 1) {
                throw new IllegalArgumentException("mixed-precision rule '" + rule + "' must be "
                        + "regex=bits or regex=bits:rank, e.g. 'layers.[0-3].*=4'");
            }
            String regex = rule.substring(0, eq);
            String value = rule.substring(eq + 1);
            String[] br = value.split(":", -1);
            if (br.length > 2) {
                throw new IllegalArgumentException("mixed-precision rule '" + rule + "': value '"
                        + value + "' must be bits or bits:rank");
            }
            Pattern p;
            try {
                p = Pattern.compile(regex);
            } catch (PatternSyntaxException e) {
                throw new IllegalArgumentException("mixed-precision rule '" + rule + "': '" + regex
                        + "' is not a valid regular expression: " + e.getDescription(), e);
            }
            int bits = integer(rule, "bits", br[0]);
            if (bits < 2 || bits > 4) {
                throw new IllegalArgumentException("mixed-precision rule '" + rule
                        + "': bits must be 2, 3 or 4, got " + bits);
            }
            OptionalInt rank = br.length == 2 ? OptionalInt.of(integer(rule, "rank", br[1]))
                    : OptionalInt.empty();
            if (rank.isPresent() && (rank.getAsInt() < 1 || rank.getAsInt() > 4096)) {
                throw new IllegalArgumentException("mixed-precision rule '" + rule
                        + "': rank must be in [1, 4096], got " + rank.getAsInt());
            }
            rules.add(new Rule(p, bits, rank));
        }
        return new MixedPrecisionPolicy(rules);
    }

    private static int integer(String rule, String what, String text) {
        try {
            return Integer.parseInt(text.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("mixed-precision rule '" + rule + "': " + what
                    + " must be an integer, got '" + text + "'", e);
        }
    }

    /** The rules, in order. */
    public List<Rule> rules() {
        return rules;
    }

    /** Bits for {@code module}: the first matching rule's, else {@code defaultBits}. */
    public int bitsFor(String module, int defaultBits) {
        for (Rule r : rules) {
            if (r.pattern().matcher(module).find()) {
                return r.bits();
            }
        }
        return defaultBits;
    }

    /** Rank for {@code module}: the first matching rule's rank if it sets one, else the default. */
    public int rankFor(String module, int defaultRank) {
        for (Rule r : rules) {
            if (r.pattern().matcher(module).find()) {
                return r.rank().orElse(defaultRank);
            }
        }
        return defaultRank;
    }

    /** The spec text ({@link #parse} reads it back). */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        for (Rule r : rules) {
            if (sb.length() > 0) {
                sb.append(',');
            }
            sb.append(r.pattern().pattern()).append('=').append(r.bits());
            r.rank().ifPresent(k -> sb.append(':').append(k));
        }
        return sb.toString();
    }
}
