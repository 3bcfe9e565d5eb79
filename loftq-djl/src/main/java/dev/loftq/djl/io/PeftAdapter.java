package dev.loftq.djl.io;

import dev.loftq.core.Checks;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A peft LoRA adapter: its configuration and, per adapted module, the factors. Module paths are
 * those of the base model ({@code model.layers.0.self_attn.q_proj}); on disk they are prefixed
 * with {@code base_model.model.} ({@link PeftAdapterWriter}). Immutable.
 *
 * @param config the {@code adapter_config.json}
 * @param modules module path → factors, in insertion order; each module's rank equals
 *     {@code config.rankFor(module)}
 */
public record PeftAdapter(PeftAdapterConfig config, Map<String, LoraWeights> modules) {
    /**
     * @throws IllegalArgumentException for an empty module map, an empty module path, or a module
     *     whose rank differs from the configuration's ({@code r} or its {@code rank_pattern})
     */
    public PeftAdapter {
        Checks.notNull("config", config);
        Checks.notNull("modules", modules);
        if (modules.isEmpty()) {
            throw new IllegalArgumentException("modules must not be empty");
        }
        for (Map.Entry<String, LoraWeights> e : modules.entrySet()) {
            if (e.getKey() == null || e.getKey().isEmpty() || e.getValue() == null) {
                throw new IllegalArgumentException("modules: paths must be non-empty and factors "
                        + "non-null, got '" + e.getKey() + "'");
            }
            int want = config.rankFor(e.getKey());
            if (e.getValue().rank() != want) {
                throw new IllegalArgumentException("module " + e.getKey() + ": factors have rank "
                        + e.getValue().rank() + " but the config gives it r = " + want
                        + " (set r or rank_pattern accordingly)");
            }
        }
        modules = Collections.unmodifiableMap(new LinkedHashMap<>(modules));
    }
}
