package dev.loftq.djl.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.io.Safetensors;
import dev.loftq.core.io.TensorData;
import dev.loftq.djl.io.PythonJson;
import dev.loftq.djl.model.BertWeights;
import dev.loftq.djl.model.MiniLmModel;
import dev.loftq.djl.model.ModelResource;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command line on the real all-MiniLM-L6-v2 weights, and its exit codes. */
class LoftqCliTest {
    @TempDir
    Path tmp;

    record Run(int code, String out, String err) {}

    static Run cli(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = LoftqCli.execute(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(code, out.toString(), err.toString());
    }

    /** The MiniLM weights exported as a transformers BertModel safetensors file (F32). */
    static Path exportMiniLm(Path dir) throws Exception {
        BertWeights w = MiniLmModel.readWeights(ModelResource.classpath(MiniLmModel.ONNX_RESOURCE));
        Map<String, TensorData> t = new LinkedHashMap<>();
        for (BertWeights.LinearWeights l : w.linears().values()) {
            t.put(l.module() + ".weight", TensorData.ofFloats(l.weight(), l.outFeatures(),
                    l.inFeatures()));
            t.put(l.module() + ".bias", TensorData.ofFloats(l.bias(), l.outFeatures()));
        }
        for (BertWeights.LayerNormWeights n : w.layerNorms().values()) {
            t.put(n.module() + ".weight", TensorData.ofFloats(n.gamma(), n.gamma().length));
            t.put(n.module() + ".bias", TensorData.ofFloats(n.beta(), n.beta().length));
        }
        for (BertWeights.EmbeddingWeights e : List.of(w.wordEmbeddings(), w.positionEmbeddings(),
                w.tokenTypeEmbeddings())) {
            t.put(e.module() + ".weight", TensorData.ofFloats(e.data(), e.rows(), e.cols()));
        }
        Files.createDirectories(dir);
        Safetensors.write(dir.resolve("model.safetensors"), t, Map.of("format", "pt"));
        Files.writeString(dir.resolve("config.json"), "{\n  \"architectures\": [\n    "
                + "\"BertModel\"\n  ],\n  \"hidden_size\": 384,\n  \"model_type\": \"bert\",\n"
                + "  \"num_hidden_layers\": 6\n}\n");
        return dir;
    }

    @Test
    void quantizesTheRealMiniLmWeightsAndInspectsTheResult() throws Exception {
        Path model = exportMiniLm(tmp.resolve("minilm"));
        Path out = tmp.resolve("out");
        Run r = cli("quantize", "--model", model.toString(), "--out", out.toString(), "--bits",
                "4", "--rank", "16", "--iters", "5", "--threads", "2");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("36 layers (0 resumed)"), r.out());
        assertTrue(r.out().contains("encoder.layer.N.attention.self.query"), r.out());
        assertTrue(r.err().contains("36/36 tensors"), r.err());
        Map<?, ?> report = (Map<?, ?>) PythonJson.parse("report",
                Files.readString(out.resolve("loftq_report.json")));
        Map<?, ?> summary = (Map<?, ?>) report.get("summary");
        double mean = Double.parseDouble(((PythonJson.Literal) summary.get("mean_error")).text());
        double qlora = Double.parseDouble(((PythonJson.Literal) summary.get("mean_qlora_error"))
                .text());
        // DESIGN.md: on these 36 weights NF4 r16 gives QLoRA 0.0938 and published LoftQ T5 0.0783
        // (without double quantization, which adds a little to both).
        assertEquals(0.0938, qlora, 0.003);
        assertTrue(mean < 0.0800, "mean LoftQ error " + mean);

        Run inspect = cli("inspect", out.resolve("model.safetensors").toString());
        assertEquals(0, inspect.code(), inspect.err());
        assertTrue(inspect.out().contains("encoder.layer.0.attention.self.query.weight.absmax"),
                inspect.out());
        assertTrue(inspect.out().contains("{\"quant_type\": \"nf4\", \"blocksize\": 64, "
                + "\"dtype\": \"float32\", \"shape\": [384, 384], \"nested_blocksize\": 256"),
                inspect.out());
    }

    @Test
    void badInputGivesExitCodesAndMessages() throws Exception {
        Path model = tmp.resolve("m");
        Files.createDirectories(model);
        Safetensors.write(model.resolve("model.safetensors"), Map.of("x.weight",
                TensorData.ofFloats(new float[64 * 64], 64, 64)), Map.of());
        Path out = tmp.resolve("o");

        Run r = cli("quantize", "--model", tmp.resolve("absent").toString(), "--out",
                out.toString());
        assertEquals(LoftqCli.BAD_INPUT, r.code(), r.err());
        assertTrue(r.err().startsWith("loftq: error: " + tmp.resolve("absent")), r.err());

        r = cli("quantize", "--model", model.toString(), "--out", out.toString());
        assertEquals(LoftqCli.USAGE, r.code(), r.err());
        assertTrue(r.err().contains("match no 2-D floating point weight"), r.err());

        r = cli("quantize", "--model", model.toString(), "--out", out.toString(), "--bits", "5",
                "--targets", "x");
        assertEquals(LoftqCli.USAGE, r.code(), r.err());
        assertTrue(r.err().contains("bits must be one of [2, 3, 4], got 5"), r.err());

        r = cli("quantize", "--model", model.toString(), "--out", out.toString(), "--rank",
                "abc");
        assertEquals(LoftqCli.USAGE, r.code(), r.err());

        r = cli("quantize", "--model", model.toString(), "--out", out.toString(), "--mixed",
                "layers=9");
        assertEquals(LoftqCli.USAGE, r.code(), r.err());
        assertTrue(r.err().contains("bits must be 2, 3 or 4, got 9"), r.err());

        Files.createDirectories(out);
        Files.writeString(out.resolve("keep.txt"), "x");
        r = cli("quantize", "--model", model.toString(), "--out", out.toString(), "--targets",
                "x", "--rank", "2");
        assertEquals(LoftqCli.BAD_OUTPUT, r.code(), r.err());
        assertTrue(r.err().contains("output directory is not empty"), r.err());
        assertEquals(List.of(out.resolve("keep.txt")), Files.list(out).toList());

        Files.write(model.resolve("model.safetensors"), new byte[] {1, 2, 3});
        r = cli("inspect", model.resolve("model.safetensors").toString());
        assertEquals(LoftqCli.BAD_INPUT, r.code(), r.err());
        assertTrue(r.err().contains("too short for the 8-byte header length"), r.err());
        assertFalse(r.out().contains("tensors in"));
    }
}
