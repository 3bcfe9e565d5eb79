package dev.loftq.quant.loftq;

import dev.loftq.core.Checks;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.Quantizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Mixed precision: the quantizer and rank of each layer, chosen by the first rule whose regular
 * expression is found in the layer name ({@link java.util.regex.Matcher#find()}, so
 * {@code layers\.[0-3]\.} matches {@code model.layers.2.mlp.up_proj}). A rule may set the
 * quantizer, the rank or both; what it leaves unset, and every layer no rule matches, keeps the
 * base {@link LoftqConfig}. Immutable and thread-safe.
 *
 * <pre>{@code
 * LoftqPolicy policy = LoftqPolicy.parse("layers\\.[0-3]\\.=4,.*=2:32"); // or firstLayers(4, 4, 2)
 * LoftqConfig c = policy.configFor("model.layers.7.self_attn.q_proj", base); // NF2, rank 32
 * }</pre>
 *
 * <p>The text form {@code regex=bits[:rank],…} maps bits to {@link #quantizerForBits}: 4 bits to
 * bitsandbytes NF4 with double quantization (QLoRA's storage format), 2 and 3 bits to LoftQ's
 * native NF2/NF3. A rule that changes the rank keeps the base config's lora_alpha, as peft's
 * {@code rank_pattern} does (so its scaling alpha/r changes with it).
 */
public final class LoftqPolicy {
    /**
     * One rule.
     *
     * @param pattern found in the layer name
     * @param quantizer the quantizer of matching layers; empty keeps the base config's
     * @param rank the rank of matching layers, in [1, 4096]; empty keeps the base config's
     */
    public record Rule(Pattern pattern, Optional<Quantizer> quantizer, OptionalInt rank) {
        /** Validates: a pattern, and a rank in [1, 4096] when set. */
        public Rule {
            Checks.notNull("pattern", pattern);
            Checks.notNull("quantizer", quantizer);
            Checks.notNull("rank", rank);
            if (rank.isPresent()) {
                Checks.inRange("rank", rank.getAsInt(), 1, 4096);
            }
        }
    }

    /** No rules: every layer gets the base config. */
    public static final LoftqPolicy UNIFORM = new LoftqPolicy(List.of());

    private final List<Rule> rules;

    private LoftqPolicy(List<Rule> rules) {
        this.rules = List.copyOf(rules);
    }

    /** A policy of {@code rules}, tried in order. */
    public static LoftqPolicy of(List<Rule> rules) {
        return new LoftqPolicy(Checks.notNull("rules", rules));
    }

    /** A builder of rules, tried in the order they are added. */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * The mixed precision of the LoftQ paper's experiments (Li et al. 2023): layers {@code 0 … k-1} of the stack
     * ({@code layers.N.} as in LLaMA, or {@code layer.N.} as in BERT) get {@code highBits}, every
     * other layer {@code lowBits}.
     *
     * @throws IllegalArgumentException for k < 0 or bits outside {2, 3, 4}
     */
    public static LoftqPolicy firstLayers(int k, int highBits, int lowBits) {
        Checks.inRange("k", k, 0, 100_000);
        Builder b = builder();
        if (k > 0) {
            // A regex cannot compare numbers; list the first k indices.
            StringBuilder indices = new StringBuilder();
            for (int i = 0; i < k; i++) {
                indices.append(i == 0 ? "" : "|").append(i);
            }
            b.rule("(^|\\.)layers?\\.(" + indices + ")\\.", highBits);
        }
        return b.rule(".*", lowBits).build();
    }

    /**
     * Parses {@code "regex=bits[:rank],…"}, e.g. {@code "layers\.[0-3]\.=4,.*=2"}. Commas separate
     * rules; a regex may not contain a comma. Bits map to {@link #quantizerForBits}.
     *
     * @throws IllegalArgumentException naming the rule and what is allowed
     */
    public static LoftqPolicy parse(String spec) {
        Checks.notNull("mixed-precision spec", spec);
        Builder b = builder();
        for (String part : spec.split(",", -1)) {
            String rule = part.trim();
            int eq = rule.lastIndexOf('=');
            if (rule.isEmpty() || eq <= 0 || eq == rule.length() - 1) {
                throw new IllegalArgumentException("mixed-precision rule '" + rule + "' must be "
                        + "regex=bits or regex=bits:rank, e.g. 'layers.[0-3].*=4'");
            }
            String[] bitsRank = rule.substring(eq + 1).split(":", -1);
            if (bitsRank.length > 2) {
                throw new IllegalArgumentException("mixed-precision rule '" + rule + "': value '"
                        + rule.substring(eq + 1) + "' must be bits or bits:rank");
            }
            int bits = integer(rule, "bits", bitsRank[0]);
            if (bits < 2 || bits > 4) {
                throw new IllegalArgumentException("mixed-precision rule '" + rule
                        + "': bits must be 2, 3 or 4, got " + bits);
            }
            OptionalInt rank = OptionalInt.empty();
            if (bitsRank.length == 2) {
                int r = integer(rule, "rank", bitsRank[1]);
                if (r < 1 || r > 4096) {
                    throw new IllegalArgumentException("mixed-precision rule '" + rule
                            + "': rank must be in [1, 4096], got " + r);
                }
                rank = OptionalInt.of(r);
            }
            b.add(rule, rule.substring(0, eq), Optional.of(quantizerForBits(bits)), rank);
        }
        return b.build();
    }

    /**
     * The quantizer the text form means by {@code bits}: 4 → {@link
     * CodebookQuantizer#bitsandbytesNf4DoubleQuant()}, 2 or 3 → {@link
     * CodebookQuantizer#loftqNormalFloat(int)}.
     *
     * @throws IllegalArgumentException for bits outside {2, 3, 4}
     */
    public static Quantizer quantizerForBits(int bits) {
        Checks.oneOf("bits", bits, 2, 3, 4);
        return bits == 4 ? CodebookQuantizer.bitsandbytesNf4DoubleQuant()
                : CodebookQuantizer.loftqNormalFloat(bits);
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

    /** The first rule whose pattern is found in {@code layer}, if any. */
    public Optional<Rule> ruleFor(String layer) {
        Checks.notNull("layer", layer);
        for (Rule r : rules) {
            if (r.pattern().matcher(layer).find()) {
                return Optional.of(r);
            }
        }
        return Optional.empty();
    }

    /** The quantizer of {@code layer}: its rule's, else {@code fallback}. */
    public Quantizer quantizerFor(String layer, Quantizer fallback) {
        return ruleFor(layer).flatMap(Rule::quantizer).orElse(fallback);
    }

    /** The rank of {@code layer}: its rule's, else {@code fallback}. */
    public int rankFor(String layer, int fallback) {
        return ruleFor(layer).map(r -> r.rank().orElse(fallback)).orElse(fallback);
    }

    /**
     * The config of {@code layer}: {@code base} with the quantizer and rank of the first matching
     * rule; {@code base} itself when no rule matches.
     */
    public LoftqConfig configFor(String layer, LoftqConfig base) {
        Checks.notNull("base", base);
        Optional<Rule> rule = ruleFor(layer);
        if (rule.isEmpty()) {
            return base;
        }
        LoftqConfig.Builder b = base.toBuilder();
        rule.get().quantizer().ifPresent(b::quantizer);
        rule.get().rank().ifPresent(b::rank);
        return b.build();
    }

    /**
     * The text form: {@code regex=bits[:rank]} per rule, bits being the quantizer's; a rule
     * without a quantizer shows {@code *} for the bits.
     */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        for (Rule r : rules) {
            sb.append(sb.length() > 0 ? "," : "").append(r.pattern().pattern()).append('=')
                    .append(r.quantizer().map(q -> Integer.toString(q.bits())).orElse("*"));
            r.rank().ifPresent(k -> sb.append(':').append(k));
        }
        return sb.toString();
    }

    /** Collects rules in order. */
    public static final class Builder {
        private final List<Rule> rules = new ArrayList<>();

        private Builder() {}

        /** Layers where {@code regex} is found get {@code quantizer}. */
        public Builder rule(String regex, Quantizer quantizer) {
            return add(regex, regex, Optional.of(Checks.notNull("quantizer", quantizer)),
                    OptionalInt.empty());
        }

        /** Layers where {@code regex} is found get {@code quantizer} and {@code rank}. */
        public Builder rule(String regex, Quantizer quantizer, int rank) {
            return add(regex, regex, Optional.of(Checks.notNull("quantizer", quantizer)),
                    OptionalInt.of(Checks.inRange("rank", rank, 1, 4096)));
        }

        /** Layers where {@code regex} is found get {@link #quantizerForBits}{@code (bits)}. */
        public Builder rule(String regex, int bits) {
            return rule(regex, quantizerForBits(bits));
        }

        /** Layers where {@code regex} is found get {@code rank}, keeping the base quantizer. */
        public Builder rank(String regex, int rank) {
            return add(regex, regex, Optional.empty(),
                    OptionalInt.of(Checks.inRange("rank", rank, 1, 4096)));
        }

        private Builder add(String rule, String regex, Optional<Quantizer> q, OptionalInt rank) {
            Checks.notNull("regex", regex);
            try {
                rules.add(new Rule(Pattern.compile(regex), q, rank));
            } catch (PatternSyntaxException e) {
                throw new IllegalArgumentException("mixed-precision rule '" + rule + "': '" + regex
                        + "' is not a valid regular expression: " + e.getDescription(), e);
            }
            return this;
        }

        public LoftqPolicy build() {
            return new LoftqPolicy(rules);
        }
    }
}
