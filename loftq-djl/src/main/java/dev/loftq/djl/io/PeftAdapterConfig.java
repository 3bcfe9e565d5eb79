package dev.loftq.djl.io;

import dev.loftq.core.Checks;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * A peft LoRA {@code adapter_config.json} (FORMATS.md §4, {@code asdict(LoraConfig)}): rank,
 * alpha, target modules, rsLoRA, per-module rank and alpha overrides, and the fields peft writes
 * with their fixed values for a LoftQ adapter ({@code init_lora_weights: true}, because the factors
 * are stored: {@code "loftq"} would make peft recompute them). Immutable; build with
 * {@link #builder(int, double)}.
 *
 * <p>{@link #toJson()} prints the fields in peft's order with two-space indentation, as the
 * reference example {@code example_peft_adapter/adapter_config.json}.
 */
public final class PeftAdapterConfig {
    private final String taskType;
    private final String baseModelNameOrPath;
    private final int rank;
    private final double loraAlpha;
    private final List<String> targetModules;
    private final double loraDropout;
    private final boolean useRslora;
    private final boolean inferenceMode;
    private final Map<String, Integer> rankPattern;
    private final Map<String, Double> alphaPattern;

    private PeftAdapterConfig(Builder b) {
        this.taskType = b.taskType;
        this.baseModelNameOrPath = b.baseModelNameOrPath;
        this.rank = b.rank;
        this.loraAlpha = b.loraAlpha;
        this.targetModules = List.copyOf(b.targetModules);
        this.loraDropout = b.loraDropout;
        this.useRslora = b.useRslora;
        this.inferenceMode = b.inferenceMode;
        this.rankPattern = Collections.unmodifiableMap(new LinkedHashMap<>(b.rankPattern));
        this.alphaPattern = Collections.unmodifiableMap(new LinkedHashMap<>(b.alphaPattern));
    }

    /**
     * A builder with peft's defaults for the other fields: task type {@code CAUSAL_LM}, no base
     * model path, dropout 0, no rsLoRA, inference mode, no patterns, no target modules yet.
     *
     * @param rank r in [1, 4096]
     * @param loraAlpha alpha > 0 (printed as an integer when it is one, as peft's int default)
     */
    public static Builder builder(int rank, double loraAlpha) {
        return new Builder(rank, loraAlpha);
    }

    /** {@code task_type}, e.g. {@code CAUSAL_LM}, {@code FEATURE_EXTRACTION}; may be null. */
    public String taskType() {
        return taskType;
    }

    /** {@code base_model_name_or_path}; may be null. */
    public String baseModelNameOrPath() {
        return baseModelNameOrPath;
    }

    /** {@code r}. */
    public int rank() {
        return rank;
    }

    /** {@code lora_alpha}. */
    public double loraAlpha() {
        return loraAlpha;
    }

    /** {@code target_modules}, unmodifiable. */
    public List<String> targetModules() {
        return targetModules;
    }

    /** {@code lora_dropout}. */
    public double loraDropout() {
        return loraDropout;
    }

    /** {@code use_rslora}. */
    public boolean useRslora() {
        return useRslora;
    }

    /** {@code inference_mode}. */
    public boolean inferenceMode() {
        return inferenceMode;
    }

    /** {@code rank_pattern}: module-name pattern → r, unmodifiable, in order. */
    public Map<String, Integer> rankPattern() {
        return rankPattern;
    }

    /** {@code alpha_pattern}: module-name pattern → alpha, unmodifiable, in order. */
    public Map<String, Double> alphaPattern() {
        return alphaPattern;
    }

    /**
     * Whether peft would adapt the module {@code modulePath}: it equals a target entry or ends with
     * {@code "." + entry}.
     */
    public boolean targets(String modulePath) {
        for (String t : targetModules) {
            if (modulePath.equals(t) || modulePath.endsWith("." + t)) {
                return true;
            }
        }
        return false;
    }

    /** The rank peft gives {@code modulePath}: the first {@code rank_pattern} key matching it, else r. */
    public int rankFor(String modulePath) {
        for (Map.Entry<String, Integer> e : rankPattern.entrySet()) {
            if (patternMatches(e.getKey(), modulePath)) {
                return e.getValue();
            }
        }
        return rank;
    }

    /** The alpha peft gives {@code modulePath}: the first {@code alpha_pattern} key matching, else alpha. */
    public double alphaFor(String modulePath) {
        for (Map.Entry<String, Double> e : alphaPattern.entrySet()) {
            if (patternMatches(e.getKey(), modulePath)) {
                return e.getValue();
            }
        }
        return loraAlpha;
    }

    /** The LoRA scaling s of {@code modulePath}: alpha / r, or alpha / √r with rsLoRA. */
    public double scalingFor(String modulePath) {
        double a = alphaFor(modulePath);
        int r = rankFor(modulePath);
        return useRslora ? a / Math.sqrt(r) : a / r;
    }

    /** peft's {@code get_pattern_key}: {@code re.match(rf"(.*\.)?{key}$", module)}. */
    private static boolean patternMatches(String key, String modulePath) {
        return Pattern.compile("(.*\\.)?(?:" + key + ")$").matcher(modulePath).lookingAt();
    }

    /** The fields in peft's order, as {@code asdict(LoraConfig)} gives them. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("peft_type", "LORA");
        m.put("task_type", taskType);
        m.put("base_model_name_or_path", baseModelNameOrPath);
        m.put("revision", null);
        m.put("inference_mode", inferenceMode);
        m.put("r", rank);
        m.put("lora_alpha", number(loraAlpha));
        m.put("lora_dropout", loraDropout);
        m.put("target_modules", new ArrayList<Object>(targetModules));
        m.put("exclude_modules", null);
        m.put("bias", "none");
        m.put("fan_in_fan_out", false);
        m.put("use_rslora", useRslora);
        m.put("use_dora", false);
        m.put("init_lora_weights", true);
        m.put("modules_to_save", null);
        m.put("layers_to_transform", null);
        m.put("layers_pattern", null);
        m.put("rank_pattern", new LinkedHashMap<String, Object>(rankPattern));
        Map<String, Object> alphas = new LinkedHashMap<>();
        alphaPattern.forEach((k, v) -> alphas.put(k, number(v)));
        m.put("alpha_pattern", alphas);
        m.put("loftq_config", new LinkedHashMap<String, Object>());
        m.put("lora_bias", false);
        return m;
    }

    /** The file's text: {@code json.dumps(toMap(), indent=2)} and a newline. */
    public String toJson() {
        return PythonJson.dumps(toMap(), 2, false) + "\n";
    }

    private static Object number(double v) {
        return v == Math.rint(v) && Math.abs(v) < 1e15 ? (Object) (long) v : (Object) v;
    }

    /**
     * Parses an {@code adapter_config.json} as peft loads it: {@code peft_type} must be
     * {@code "LORA"}; {@code r}, {@code lora_alpha} and {@code target_modules} (a list) are
     * required here; other known fields are optional with peft's defaults, unknown ones ignored.
     *
     * @param source names the file in messages
     * @throws CheckpointFormatException naming the file and field if the JSON is malformed or a
     *     field has the wrong type or value
     */
    public static PeftAdapterConfig parse(String source, String json)
            throws CheckpointFormatException {
        Object v = PythonJson.parse(source, json);
        if (!(v instanceof Map<?, ?> m)) {
            throw new CheckpointFormatException(source + ": must hold a JSON object");
        }
        Object type = m.get("peft_type");
        if (!"LORA".equals(type)) {
            throw field(source, "peft_type", "must be \"LORA\"", type);
        }
        int r = (int) integer(source, "r", m.get("r"), 1, 4096);
        double alpha = real(source, "lora_alpha", m.get("lora_alpha"));
        Builder b;
        try {
            b = builder(r, alpha);
        } catch (IllegalArgumentException e) {
            throw new CheckpointFormatException(source + ": " + e.getMessage(), e);
        }
        Object targets = m.get("target_modules");
        if (!(targets instanceof List<?> list) || list.isEmpty()) {
            throw field(source, "target_modules", "must be a non-empty list of module names "
                    + "(a regex string is not supported here)", targets);
        }
        List<String> names = new ArrayList<>();
        for (Object o : list) {
            if (!(o instanceof String s) || s.isEmpty()) {
                throw field(source, "target_modules", "must hold non-empty strings", targets);
            }
            names.add(s);
        }
        b.targetModules(names);
        if (m.containsKey("task_type")) {
            b.taskType(optionalString(source, "task_type", m.get("task_type")));
        }
        b.baseModelNameOrPath(optionalString(source, "base_model_name_or_path",
                m.get("base_model_name_or_path")));
        if (m.get("lora_dropout") != null) {
            b.loraDropout(real(source, "lora_dropout", m.get("lora_dropout")));
        }
        b.useRslora(bool(source, "use_rslora", m.get("use_rslora"), false));
        b.inferenceMode(bool(source, "inference_mode", m.get("inference_mode"), false));
        if (m.get("rank_pattern") instanceof Map<?, ?> rp) {
            for (Map.Entry<?, ?> e : rp.entrySet()) {
                b.rankPattern((String) e.getKey(), (int) integer(source, "rank_pattern."
                        + e.getKey(), e.getValue(), 1, 4096));
            }
        } else if (m.get("rank_pattern") != null) {
            throw field(source, "rank_pattern", "must be an object", m.get("rank_pattern"));
        }
        if (m.get("alpha_pattern") instanceof Map<?, ?> ap) {
            for (Map.Entry<?, ?> e : ap.entrySet()) {
                b.alphaPattern((String) e.getKey(), real(source, "alpha_pattern." + e.getKey(),
                        e.getValue()));
            }
        } else if (m.get("alpha_pattern") != null) {
            throw field(source, "alpha_pattern", "must be an object", m.get("alpha_pattern"));
        }
        Object init = m.get("init_lora_weights");
        if (init != null && !Boolean.TRUE.equals(init)) {
            throw field(source, "init_lora_weights", "must be true for stored factors (peft "
                    + "would re-initialise them otherwise)", init);
        }
        try {
            return b.build();
        } catch (IllegalArgumentException e) {
            throw new CheckpointFormatException(source + ": " + e.getMessage(), e);
        }
    }

    private static CheckpointFormatException field(String source, String name, String rule,
            Object got) {
        return new CheckpointFormatException(source + ": field '" + name + "' " + rule + ", got "
                + (got instanceof PythonJson.Literal l ? l.text() : PythonJson.dumps(got)));
    }

    private static long integer(String source, String name, Object v, long min, long max)
            throws CheckpointFormatException {
        long x = Long.MIN_VALUE;
        if (v instanceof PythonJson.Literal l) {
            try {
                x = Long.parseLong(l.text());
            } catch (NumberFormatException e) {
                x = Long.MIN_VALUE;
            }
        }
        if (x < min || x > max) {
            throw field(source, name, "must be an integer in [" + min + ", " + max + "]", v);
        }
        return x;
    }

    private static double real(String source, String name, Object v)
            throws CheckpointFormatException {
        double x = Double.NaN;
        if (v instanceof PythonJson.Literal l) {
            try {
                x = Double.parseDouble(l.text());
            } catch (NumberFormatException e) {
                x = Double.NaN;
            }
        }
        if (!Double.isFinite(x)) {
            throw field(source, name, "must be a finite number", v);
        }
        return x;
    }

    private static String optionalString(String source, String name, Object v)
            throws CheckpointFormatException {
        if (v != null && !(v instanceof String)) {
            throw field(source, name, "must be a string or null", v);
        }
        return (String) v;
    }

    private static boolean bool(String source, String name, Object v, boolean dflt)
            throws CheckpointFormatException {
        if (v == null) {
            return dflt;
        }
        if (!(v instanceof Boolean b)) {
            throw field(source, name, "must be true or false", v);
        }
        return b;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PeftAdapterConfig c && toMap().equals(c.toMap());
    }

    @Override
    public int hashCode() {
        return toMap().hashCode();
    }

    @Override
    public String toString() {
        return "PeftAdapterConfig" + PythonJson.dumps(toMap());
    }

    /** Builder; {@link #build()} validates. */
    public static final class Builder {
        private String taskType = "CAUSAL_LM";
        private String baseModelNameOrPath;
        private final int rank;
        private final double loraAlpha;
        private List<String> targetModules = new ArrayList<>();
        private double loraDropout;
        private boolean useRslora;
        private boolean inferenceMode = true;
        private final Map<String, Integer> rankPattern = new LinkedHashMap<>();
        private final Map<String, Double> alphaPattern = new LinkedHashMap<>();

        private Builder(int rank, double loraAlpha) {
            this.rank = Checks.inRange("r", rank, 1, 4096);
            Checks.positive("lora_alpha", loraAlpha);
            this.loraAlpha = loraAlpha;
        }

        /** Default {@code CAUSAL_LM}; null allowed. */
        public Builder taskType(String taskType) {
            this.taskType = taskType;
            return this;
        }

        /** Default null. */
        public Builder baseModelNameOrPath(String path) {
            this.baseModelNameOrPath = path;
            return this;
        }

        /** Required, non-empty: module names (e.g. {@code q_proj}) or full module paths. */
        public Builder targetModules(List<String> targetModules) {
            this.targetModules = new ArrayList<>(Checks.notNull("targetModules", targetModules));
            return this;
        }

        /** Default 0.0; in [0, 1). */
        public Builder loraDropout(double loraDropout) {
            if (!(loraDropout >= 0 && loraDropout < 1)) {
                throw new IllegalArgumentException("lora_dropout must be in [0, 1), got "
                        + loraDropout);
            }
            this.loraDropout = loraDropout;
            return this;
        }

        /** Default false. */
        public Builder useRslora(boolean useRslora) {
            this.useRslora = useRslora;
            return this;
        }

        /** Default true. */
        public Builder inferenceMode(boolean inferenceMode) {
            this.inferenceMode = inferenceMode;
            return this;
        }

        /** Adds a {@code rank_pattern} entry: modules matching {@code pattern} get rank {@code r}. */
        public Builder rankPattern(String pattern, int r) {
            checkPattern(pattern);
            rankPattern.put(pattern, Checks.inRange("rank_pattern." + pattern, r, 1, 4096));
            return this;
        }

        /** Adds an {@code alpha_pattern} entry. */
        public Builder alphaPattern(String pattern, double alpha) {
            checkPattern(pattern);
            alphaPattern.put(pattern, Checks.positive("alpha_pattern." + pattern, alpha));
            return this;
        }

        private static void checkPattern(String pattern) {
            Checks.notNull("pattern", pattern);
            try {
                Pattern.compile(pattern);
            } catch (PatternSyntaxException e) {
                throw new IllegalArgumentException("pattern must be a valid regular expression, "
                        + "got '" + pattern + "': " + e.getDescription(), e);
            }
        }

        /** @throws IllegalArgumentException if no target module is given or one is empty */
        public PeftAdapterConfig build() {
            if (targetModules.isEmpty() || targetModules.stream().anyMatch(
                    t -> t == null || t.isEmpty())) {
                throw new IllegalArgumentException("target_modules must be a non-empty list of "
                        + "non-empty names, got " + targetModules);
            }
            return new PeftAdapterConfig(this);
        }
    }
}
