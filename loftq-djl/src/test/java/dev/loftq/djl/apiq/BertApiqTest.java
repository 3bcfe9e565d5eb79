package dev.loftq.djl.apiq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.nn.core.Linear;
import dev.loftq.djl.backend.DjlBackend;
import dev.loftq.djl.block.QuantizedLoraLinear;
import dev.loftq.djl.model.BlockPaths;
import dev.loftq.djl.model.MiniLmModel;
import dev.loftq.djl.wrap.LayerSelector;
import dev.loftq.djl.wrap.LoraInitializer;
import dev.loftq.djl.wrap.LoraModel;
import dev.loftq.djl.wrap.LoraWrapper;
import dev.loftq.quant.apiq.ApiqConfig;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** ApiQ-lw and ApiQ-bw on the first encoder layer of the real all-MiniLM-L6-v2, few sentences. */
class BertApiqTest {
    private static final String LAYER0 = "encoder.layer.0.";
    private static final int STEPS = 40;
    private static DjlBackend backend;
    private static MiniLmModel fp;
    private static List<long[]> ids;

    @BeforeAll
    static void load() throws IOException {
        backend = DjlBackend.cpu();
        fp = MiniLmModel.fromClasspath();
        ids = Arrays.asList(fp.tokenize(sentences().subList(0, 8)));
    }

    @AfterAll
    static void close() {
        fp.close();
        backend.close();
    }

    private static List<String> sentences() throws IOException {
        List<String> out = new ArrayList<>();
        try (InputStream in = BertApiqTest.class.getClassLoader().getResourceAsStream("sentences.txt")) {
            BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
            String line;
            while ((line = r.readLine()) != null) {
                if (!line.isBlank() && !line.startsWith("#")) {
                    out.add(line.strip());
                }
            }
        }
        return out;
    }

    private static ApiqConfig config(int steps) {
        // few steps: learning rates 10x the official ones, which need ~500
        return ApiqConfig.builder(42).steps(steps).evalEvery(10).holdOut(0.25)
                .clipOptimizer(2e-2f, 0.1f).loraOptimizer(5e-3f, 0.1f).build();
    }

    private static BertApiq.Result layerwise(MiniLmModel q, Path resume, int steps) {
        BertApiq.Builder b = BertApiq.builder(backend, config(steps)).optLayers(1);
        if (resume != null) {
            b.optResumeDirectory(resume);
        }
        return b.build().layerwise(fp.block(), q.block(), ids);
    }

    @Test
    void layerwiseBeatsItsStartAndLoftqOnEveryLinearAndResumesToTheSameModel(@TempDir Path dir)
            throws IOException {
        float[][] full;
        List<TargetReport> fullReports;
        try (MiniLmModel apiqModel = MiniLmModel.fromClasspath();
                MiniLmModel loftqModel = MiniLmModel.fromClasspath();
                BertApiq.Result r = layerwise(apiqModel, dir, STEPS)) {
            fullReports = r.reports();
            full = apiqModel.embedTokens(ids);
            assertEquals(6, fullReports.size());
            for (TargetReport t : fullReports) {
                assertTrue(t.calibrationError() < t.startError(), t.toString());
                assertTrue(t.heldOutError() < t.heldOutStartError(), t.toString());
                assertInstanceOf(QuantizedLoraLinear.class,
                        BlockPaths.byPath(apiqModel.block()).get(t.path()));
            }
            LoraWrapper wrapper = LoraWrapper.builder(backend)
                    .setTargets(LayerSelector.of((p, b) -> p.startsWith(LAYER0) && b instanceof Linear))
                    .setSpec(config(1).quantizer(), 16, 16)
                    .optInitializer(LoraInitializer.loftq(5, 42L))
                    .optCacheDequantized(true)
                    .build();
            try (LoraModel loftq = wrapper.wrap(loftqModel.block())) {
                assertEquals(6, loftq.layers().size());
                Map<String, Double> apiq = BertApiq.linearOutputErrors(fp.block(), apiqModel.block(), ids, backend);
                Map<String, Double> lq = BertApiq.linearOutputErrors(fp.block(), loftqModel.block(), ids, backend);
                for (TargetReport t : fullReports) {
                    assertTrue(apiq.get(t.path()) < lq.get(t.path()),
                            t.path() + ": ApiQ " + apiq.get(t.path()) + " vs LoftQ " + lq.get(t.path()));
                }
                assertEquals(36, apiq.size());
            }
        }
        // an interrupted run: the last target never finished
        for (TargetReport t : fullReports.subList(5, 6)) {
            Files.delete(dir.resolve(t.path() + ".safetensors"));
        }
        try (MiniLmModel q = MiniLmModel.fromClasspath(); BertApiq.Result r = layerwise(q, dir, STEPS)) {
            for (int i = 0; i < 6; i++) {
                TargetReport a = fullReports.get(i);
                TargetReport b = r.reports().get(i);
                assertEquals(i < 5, b.resumed(), b.toString());
                // resumed targets are read back exactly; retrained ones match up to the BLAS's
                // summation order (MKL may pick another thread split on a busy machine)
                double tol = b.resumed() ? 0 : 1e-3 * a.calibrationError();
                assertEquals(a.calibrationError(), b.calibrationError(), tol, b.toString());
                assertEquals(a.trainLoss().length, b.trainLoss().length);
            }
            float[][] resumed = q.embedTokens(ids);
            for (int i = 0; i < full.length; i++) {
                assertArrayEquals(full[i], resumed[i], 1e-4f, "sentence " + i);
            }
        }
    }

    @Test
    void blockwiseLowersTheLayersOutputError() throws IOException {
        try (MiniLmModel q = MiniLmModel.fromClasspath();
                BertApiq.Result r = BertApiq.builder(backend, config(STEPS / 4)).optLayers(1).build()
                        .blockwise(fp.block(), q.block(), ids)) {
            assertEquals(1, r.reports().size());
            TargetReport t = r.reports().get(0);
            assertEquals("encoder.layer.0", t.path());
            assertTrue(t.calibrationError() < t.startError(), t.toString());
            assertTrue(t.heldOutError() < t.heldOutStartError(), t.toString());
            assertEquals(6, r.layers().size());
        }
    }

    @Test
    void badInputIsRefused() throws IOException {
        BertApiq apiq = BertApiq.builder(backend, config(1)).optLayers(1).build();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> apiq.layerwise(fp.block(), fp.block(), ids));
        assertTrue(e.getMessage().contains("same tree"), e.getMessage());
        try (MiniLmModel q = MiniLmModel.fromClasspath()) {
            e = assertThrows(IllegalArgumentException.class,
                    () -> apiq.layerwise(fp.block(), q.block(), List.of()));
            assertTrue(e.getMessage().contains("must not be empty"), e.getMessage());
        }
    }
}
