package dev.loftq.djl.model;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.io.IOException;
import java.io.InputStream;
import java.util.Map;

/**
 * The reference: ONNX Runtime running the artifact's .onnx on one sequence at a time (no padding),
 * followed by mean pooling and L2 normalisation in double precision.
 */
final class OrtOracle implements AutoCloseable {
    private final OrtEnvironment env = OrtEnvironment.getEnvironment();
    private final OrtSession session;

    OrtOracle(ModelResource onnx) throws IOException, OrtException {
        byte[] bytes;
        try (InputStream in = onnx.open()) {
            bytes = in.readAllBytes();
        }
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            options.setIntraOpNumThreads(2);
            session = env.createSession(bytes, options);
        }
    }

    /** The session's input names, for checking the export's contract. */
    java.util.Set<String> inputNames() {
        return session.getInputNames();
    }

    /** Sentence embedding of one token sequence ([CLS] … [SEP]). */
    float[] embed(long[] ids) throws OrtException {
        long[][] idArr = {ids};
        long[][] mask = {new long[ids.length]};
        long[][] types = {new long[ids.length]};
        java.util.Arrays.fill(mask[0], 1L);
        try (ai.onnxruntime.OnnxTensor i = ai.onnxruntime.OnnxTensor.createTensor(env, idArr);
                ai.onnxruntime.OnnxTensor m = ai.onnxruntime.OnnxTensor.createTensor(env, mask);
                ai.onnxruntime.OnnxTensor t = ai.onnxruntime.OnnxTensor.createTensor(env, types);
                OrtSession.Result r = session.run(Map.of("input_ids", i, "attention_mask", m, "token_type_ids", t))) {
            float[][] hidden = ((float[][][]) r.get("last_hidden_state").orElseThrow().getValue())[0];
            int h = hidden[0].length;
            double[] mean = new double[h];
            for (float[] token : hidden) {
                for (int k = 0; k < h; k++) {
                    mean[k] += token[k];
                }
            }
            double norm = 0;
            for (int k = 0; k < h; k++) {
                mean[k] /= hidden.length;
                norm += mean[k] * mean[k];
            }
            norm = Math.max(Math.sqrt(norm), 1e-12);
            float[] out = new float[h];
            for (int k = 0; k < h; k++) {
                out[k] = (float) (mean[k] / norm);
            }
            return out;
        }
    }

    @Override
    public void close() throws OrtException {
        session.close();
    }
}
