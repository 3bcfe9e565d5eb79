package dev.loftq.quant.loftq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.IntAffineQuantizer;
import dev.loftq.quant.quantizer.Quantizer;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

class LoftqPolicyTest {
    private static final LoftqConfig BASE = LoftqConfig.builder(CodebookQuantizer.bitsandbytesNf4())
            .rank(16).loraAlpha(32).iterations(3).build();

    @Test
    void firstMatchingRuleSetsQuantizerAndRankAndKeepsTheRest() {
        LoftqPolicy p = LoftqPolicy.parse("layers\\.[0-1]\\.=4, .*=2:8");
        LoftqConfig early = p.configFor("model.layers.1.mlp.up_proj", BASE);
        LoftqConfig late = p.configFor("model.layers.12.mlp.up_proj", BASE);
        assertEquals(CodebookQuantizer.bitsandbytesNf4DoubleQuant(), early.quantizer());
        assertEquals(16, early.rank());
        assertEquals(CodebookQuantizer.loftqNormalFloat(2), late.quantizer());
        assertEquals(8, late.rank());
        // lora_alpha stays the base's (peft's rank_pattern), the rest too
        assertEquals(32f, late.loraAlpha());
        assertEquals(3, late.iterations());
        assertEquals(BASE.keepBest(), late.keepBest());
        assertEquals(4f, late.scaling());
    }

    @Test
    void unmatchedLayersKeepTheBaseConfig() {
        LoftqPolicy p = LoftqPolicy.builder().rank("q_proj$", 64).build();
        assertSame(BASE, p.configFor("model.layers.0.mlp.down_proj", BASE));
        LoftqConfig q = p.configFor("model.layers.0.self_attn.q_proj", BASE);
        assertEquals(64, q.rank());
        assertEquals(BASE.quantizer(), q.quantizer());
        assertSame(BASE, LoftqPolicy.UNIFORM.configFor("anything", BASE));
    }

    @Test
    void rulesCarryAnyQuantizer() {
        Quantizer int3 = IntAffineQuantizer.builder(3).build();
        LoftqPolicy p = LoftqPolicy.builder().rule("attention", int3, 4).build();
        LoftqConfig c = p.configFor("encoder.layer.3.attention.self.query", BASE);
        assertSame(int3, c.quantizer());
        assertEquals(4, c.rank());
        assertEquals("attention=3:4", p.toString());
    }

    @Test
    void firstLayersMatchesTheFirstKLayersOfLlamaAndBertStacks() {
        LoftqPolicy p = LoftqPolicy.firstLayers(4, 4, 2);
        for (String layer : new String[] {"model.layers.0.self_attn.q_proj",
                "model.layers.3.mlp.down_proj", "encoder.layer.2.attention.self.key"}) {
            assertEquals(4, p.quantizerFor(layer, null).bits(), layer);
        }
        for (String layer : new String[] {"model.layers.4.self_attn.q_proj",
                "model.layers.10.mlp.down_proj", "model.layers.30.mlp.up_proj",
                "encoder.layer.5.output.dense", "lm_head"}) {
            assertEquals(2, p.quantizerFor(layer, null).bits(), layer);
        }
        assertEquals(2, LoftqPolicy.firstLayers(0, 4, 2).quantizerFor("model.layers.0.x", null)
                .bits());
    }

    @Property(tries = 50)
    void textFormRoundTrips(@ForAll @IntRange(min = 2, max = 4) int bits1,
            @ForAll @IntRange(min = 2, max = 4) int bits2,
            @ForAll @IntRange(min = 1, max = 4096) int rank) {
        String spec = "layers\\.[0-3]\\.=" + bits1 + ":" + rank + ",.*=" + bits2;
        LoftqPolicy p = LoftqPolicy.parse(spec);
        assertEquals(spec, p.toString());
        assertEquals(p.toString(), LoftqPolicy.parse(p.toString()).toString());
        assertEquals(rank, p.rankFor("model.layers.2.q_proj", 16));
        assertEquals(16, p.rankFor("model.layers.7.q_proj", 16));
    }

    @Test
    void badSpecsNameTheRuleAndWhatIsAllowed() {
        assertRejected("layers=5", "rule 'layers=5'", "bits must be 2, 3 or 4, got 5");
        assertRejected("layers=4:0", "rank must be in [1, 4096], got 0");
        assertRejected("layers", "must be regex=bits or regex=bits:rank");
        assertRejected("a=4,", "rule ''", "must be regex=bits or regex=bits:rank");
        assertRejected("a=x", "bits must be an integer, got 'x'");
        assertRejected("(=4", "'(' is not a valid regular expression");
        assertRejected("a=4:8:2", "must be bits or bits:rank");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LoftqPolicy.builder().rank("x", 5000));
        assertTrue(e.getMessage().contains("rank") && e.getMessage().contains("5000"),
                e.getMessage());
    }

    private static void assertRejected(String spec, String... fragments) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LoftqPolicy.parse(spec));
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), spec + " -> " + e.getMessage());
        }
    }
}
