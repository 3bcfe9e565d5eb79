package dev.loftq.quant.loftq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import dev.loftq.core.io.SafetensorsFile;
import dev.loftq.core.tensor.Backend;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.Vectors;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.Quantizer;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The LoftQ cases of the reference vectors (peft's {@code loftq_init} loop with an exact SVD):
 * the published preset must give the step-1 codes and Q exactly, every step's error within 1e-4,
 * and the final {@code B·A} within 1e-4 relative. Abstract over the backend.
 */
public abstract class LoftqVectorTests {
    /** The backend under test. */
    protected abstract Backend backend();

    static Stream<Arguments> cases() {
        return Vectors.cases(Set.of("loftq")).stream()
                .map(c -> Arguments.of(c.get("id").getAsString(), c));
    }

    @Test
    void everyLoftqCaseIsCovered() {
        assertEquals(6, cases().count());
    }

    static Quantizer quantizerOf(JsonObject params) {
        JsonObject q = params.getAsJsonObject("quantizer");
        if (q.get("type").getAsString().equals("bnb")) {
            assertEquals("nf4", q.get("quant_type").getAsString());
            return CodebookQuantizer.bitsandbytesNf4();
        }
        int bits = q.get("num_bits").getAsInt();
        return q.get("method").getAsString().equals("normal")
                ? CodebookQuantizer.loftqNormalFloat(bits) : CodebookQuantizer.loftqUniform(bits);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void publishedPresetReproducesPeft(String id, JsonObject entry) {
        SafetensorsFile f = Vectors.load(entry);
        JsonObject params = entry.getAsJsonObject("params");
        JsonObject expected = entry.getAsJsonObject("expected");
        int[] shape = {params.getAsJsonArray("shape").get(0).getAsInt(),
                params.getAsJsonArray("shape").get(1).getAsInt()};
        int rank = params.get("rank").getAsInt();
        int steps = params.get("num_iter").getAsInt();
        LoftqConfig config = LoftqConfig.published(quantizerOf(params), rank).toBuilder()
                .iterations(steps).build();
        try (TensorScope scope = backend().newScope()) {
            Tensor w = scope.fromHost(f.tensor("W").floats(), shape);

            LoftqResult first = Loftq.initialize(scope, w, id,
                    config.toBuilder().iterations(1).build());
            assertArrayEquals(f.tensor("codes_step1").bytes(),
                    scope.toByteArray(first.quantized().codes(scope)), id + " codes_step1");
            assertArrayEquals(f.tensor("Q_step1").floats(),
                    scope.toFloatArray(first.quantized().dequantize(scope)), id + " Q_step1");

            LoftqResult r = Loftq.initialize(scope, w, id, config);
            assertEquals(expected.get("qlora_error").getAsDouble(), r.qloraError(), 1e-6,
                    id + " QLoRA error");
            JsonArray errors = expected.getAsJsonArray("errors");
            assertEquals(steps, r.errors().length);
            for (int t = 0; t < steps; t++) {
                assertEquals(errors.get(t).getAsDouble(), r.errors()[t], 1e-4, id + " step " + (t + 1));
            }
            assertEquals(steps, r.returnedStep(), "the published preset returns the last step");

            float[] ours = scope.toFloatArray(scope.mul(scope.matmul(r.loraB(), r.loraA()),
                    r.scaling()));
            float[] theirs = scope.toFloatArray(scope.matmul(
                    scope.fromHost(f.tensor("lora_B").floats(), shape[0], rank),
                    scope.fromHost(f.tensor("lora_A").floats(), rank, shape[1])));
            double diff = 0;
            double ref = 0;
            for (int i = 0; i < ours.length; i++) {
                diff += (ours[i] - theirs[i]) * (double) (ours[i] - theirs[i]);
                ref += theirs[i] * (double) theirs[i];
            }
            assertTrue(Math.sqrt(diff / ref) < 1e-4 || Math.sqrt(diff) / Math.sqrt(
                    scope.sumOfSquares(w)) < 1e-4, id + " B·A relative difference "
                    + Math.sqrt(diff / ref));
        }
    }
}
