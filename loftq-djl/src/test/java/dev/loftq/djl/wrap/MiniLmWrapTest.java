package dev.loftq.djl.wrap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.block.QuantizedLoraLinear;
import dev.loftq.djl.model.BlockPaths;
import dev.loftq.djl.model.MiniLmModel;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The real all-MiniLM-L6-v2 tree (ModuleBlocks), wrapped the way the README shows. */
class MiniLmWrapTest {
    private static final List<String> TEXTS = List.of("The cat sat on the mat.",
            "Quantized adapters fine-tune large models on small machines.");

    @Test
    void wrapsQueryAndValueOfEveryLayerAndKeepsTheEmbeddings() throws Exception {
        try (DjlBackend backend = DjlBackend.cpu(); MiniLmModel model = MiniLmModel.fromClasspath()) {
            float[][] before = model.embed(TEXTS);
            LoraWrapper wrapper = LoraWrapper.builder(backend)
                    .setTargets(LayerSelector.peft("query", "value"))
                    .setSpec(CodebookQuantizer.bitsandbytesNf4DoubleQuant(), 8, 8)
                    .optInitializer(LoraInitializer.loftq(1, 42L))
                    .build();
            try (LoraModel lora = wrapper.wrap(model.block())) {
                assertEquals(12, lora.layers().size(), lora.report());
                assertEquals("encoder.layer.0.attention.self.query", lora.paths().get(0));
                for (WrappedLayer l : lora.layers()) {
                    assertTrue(BlockPaths.byPath(model.block()).get(l.path())
                            instanceof QuantizedLoraLinear, l.path());
                    assertTrue(l.initialError() > 0.02 && l.initialError() < 0.12, l.toString());
                }
                float[][] after = model.embed(TEXTS);
                for (int i = 0; i < TEXTS.size(); i++) {
                    double dot = 0;
                    for (int j = 0; j < after[i].length; j++) {
                        dot += after[i][j] * before[i][j];
                    }
                    assertTrue(dot > 0.99 && dot < 1 - 1e-7, "cosine " + dot); // unit rows
                }
            }
        }
    }
}
