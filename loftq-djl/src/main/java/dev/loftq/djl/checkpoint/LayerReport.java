package dev.loftq.djl.checkpoint;

import dev.loftq.djl.io.CheckpointFormatException;
import dev.loftq.djl.io.PythonJson;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One line of the JSON report: what was done to a target layer.
 *
 * @param module module path
 * @param shape {@code [out, in]}
 * @param dtype the original weight's torch dtype name
 * @param bits 2, 3 or 4
 * @param rank LoRA rank
 * @param storage {@code "bnb-nf4"} (a 4-bit bitsandbytes weight) or {@code "dequantized-nf2"}, …
 * @param qloraError ‖W − deq(quant(W))‖ / ‖W‖
 * @param loftqErrors per LoftQ step
 * @param returnedStep 1-based
 * @param accepted false if the callback rolled the layer back to the QLoRA start
 */
public record LayerReport(String module, int[] shape, String dtype, int bits, int rank,
        String storage, double qloraError, double[] loftqErrors, int returnedStep,
        boolean accepted) {
    /** Copies arrays. */
    public LayerReport {
        shape = shape.clone();
        loftqErrors = loftqErrors.clone();
    }

    @Override
    public int[] shape() {
        return shape.clone();
    }

    @Override
    public double[] loftqErrors() {
        return loftqErrors.clone();
    }

    /** The error of the stored layer: LoftQ's returned step, or QLoRA's if rolled back. */
    public double error() {
        return accepted ? loftqErrors[returnedStep - 1] : qloraError;
    }

    /** The report entry, keys in a fixed order. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("module", module);
        List<Object> s = new ArrayList<>();
        for (int d : shape) {
            s.add(d);
        }
        m.put("shape", s);
        m.put("dtype", dtype);
        m.put("bits", bits);
        m.put("rank", rank);
        m.put("storage", storage);
        m.put("qlora_error", qloraError);
        List<Object> e = new ArrayList<>();
        for (double d : loftqErrors) {
            e.add(d);
        }
        m.put("loftq_errors", e);
        m.put("returned_step", returnedStep);
        m.put("accepted", accepted);
        m.put("error", error());
        return m;
    }

    /** Reads an entry written by {@link #toMap()} (from a resumed run's work file). */
    static LayerReport parse(String source, String json) throws CheckpointFormatException {
        try {
            Map<?, ?> m = (Map<?, ?>) PythonJson.parse(source, json);
            List<?> s = (List<?>) m.get("shape");
            int[] shape = new int[s.size()];
            for (int i = 0; i < shape.length; i++) {
                shape[i] = Integer.parseInt(((PythonJson.Literal) s.get(i)).text());
            }
            List<?> e = (List<?>) m.get("loftq_errors");
            double[] errors = new double[e.size()];
            for (int i = 0; i < errors.length; i++) {
                errors[i] = Double.parseDouble(((PythonJson.Literal) e.get(i)).text());
            }
            return new LayerReport((String) m.get("module"), shape, (String) m.get("dtype"),
                    num(m, "bits"), num(m, "rank"), (String) m.get("storage"),
                    Double.parseDouble(((PythonJson.Literal) m.get("qlora_error")).text()), errors,
                    num(m, "returned_step"), (Boolean) m.get("accepted"));
        } catch (ClassCastException | NullPointerException | NumberFormatException e) {
            throw new CheckpointFormatException(source + ": malformed layer report: " + e, e);
        }
    }

    private static int num(Map<?, ?> m, String k) {
        return Integer.parseInt(((PythonJson.Literal) m.get(k)).text());
    }
}
