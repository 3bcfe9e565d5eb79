package dev.loftq.djl.io;

import dev.loftq.core.io.Safetensors;
import dev.loftq.core.io.SafetensorsDType;
import dev.loftq.core.io.SafetensorsFile;
import dev.loftq.core.io.TensorData;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.quant.codebook.Codebook;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import dev.loftq.quant.quantizer.QuantizedTensor;
import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;

/**
 * Reads bitsandbytes 4-bit Linear weights from transformers checkpoints (FORMATS.md §3) back into
 * {@link QuantizedTensor}s, checking every key as {@code QuantState.from_dict} needs it: the
 * quant-state JSON (quant type, block size, dtype, shape; nested block size 256, dtype float32 and
 * a finite offset when {@code nested_absmax} is present), and each tensor's dtype and shape
 * against that JSON. The stored tables are used as stored: {@code quant_map} must be bitsandbytes'
 * NF4 or FP4 table (matching the quant type), {@code nested_quant_map} may be any sorted 256-entry
 * map (torch builds differ in a few ulp, FORMATS.md §2.6).
 *
 * <p>The result dequantizes exactly as bitsandbytes does ({@code QuantizedTensor#dequantize}).
 * Stateless and thread-safe.
 */
public final class BnbCheckpointReader {
    private static final String STATE = ".weight.quant_state.bitsandbytes__";

    private BnbCheckpointReader() {}

    /** The module paths that have a 4-bit quant state among {@code tensorNames}, sorted. */
    public static Set<String> quantizedModules(Collection<String> tensorNames) {
        Set<String> out = new TreeSet<>();
        for (String name : tensorNames) {
            int i = name.indexOf(STATE);
            if (i > 0 && (name.endsWith("__nf4") || name.endsWith("__fp4"))
                    && i + STATE.length() + 3 == name.length()) {
                out.add(name.substring(0, i));
            }
        }
        return out;
    }

    /**
     * Reads every 4-bit weight of a single safetensors file.
     *
     * @param scope owns the tensors of the results
     * @return module path → weight, sorted by module path
     * @throws IOException if the file is malformed ({@code SafetensorsFormatException}) or a 4-bit
     *     weight's keys are inconsistent ({@link CheckpointFormatException})
     */
    public static Map<String, Bnb4bitWeight> readAll(TensorScope scope, Path file)
            throws IOException {
        SafetensorsFile f = Safetensors.read(file);
        Map<String, Bnb4bitWeight> out = new LinkedHashMap<>();
        for (String module : quantizedModules(f.names())) {
            out.put(module, decode(scope, f.source(), module, n -> f.contains(n) ? f.tensor(n)
                    : null));
        }
        return out;
    }

    /**
     * Decodes the 4-bit weight of {@code module} from its checkpoint tensors.
     *
     * @param scope owns the tensors of the result
     * @param source names the file in messages
     * @param tensors returns the tensor of a key, or null if absent
     * @throws CheckpointFormatException naming the file and key if a key is missing or
     *     inconsistent
     */
    public static Bnb4bitWeight decode(TensorScope scope, String source, String module,
            Function<String, TensorData> tensors) throws CheckpointFormatException {
        String p = module + ".weight";
        TensorData nf4 = tensors.apply(p + ".quant_state.bitsandbytes__nf4");
        TensorData fp4 = tensors.apply(p + ".quant_state.bitsandbytes__fp4");
        if ((nf4 == null) == (fp4 == null)) {
            throw new CheckpointFormatException(source + ": module '" + module + "' needs exactly "
                    + "one of " + p + ".quant_state.bitsandbytes__nf4 and __fp4, found "
                    + (nf4 == null ? "neither" : "both"));
        }
        String stateKey = p + ".quant_state.bitsandbytes__" + (nf4 != null ? "nf4" : "fp4");
        State st = State.parse(source, stateKey, require(source, stateKey,
                nf4 != null ? nf4 : fp4, SafetensorsDType.U8, -1));
        String suffixType = nf4 != null ? "nf4" : "fp4";
        if (!st.quantType.equals(suffixType)) {
            throw bad(source, stateKey, "quant_type must be '" + suffixType
                    + "' (the key's suffix), got '" + st.quantType + "'");
        }
        long n = 1;
        for (int d : st.shape) {
            n *= d;
        }
        int numel = (int) n;
        int blocks = (int) ((n + st.blockSize - 1) / st.blockSize);
        TensorData packed = require(source, p, tensors.apply(p), SafetensorsDType.U8, -1);
        int[] expectedPacked = {(numel + 1) / 2, 1};
        if (!Arrays.equals(packed.shape(), expectedPacked)) {
            throw bad(source, p, "shape must be " + Arrays.toString(expectedPacked) + " for "
                    + numel + " elements " + Arrays.toString(st.shape) + ", got "
                    + Arrays.toString(packed.shape()));
        }
        TensorData quantMap = require(source, p + ".quant_map", tensors.apply(p + ".quant_map"),
                SafetensorsDType.F32, 16);
        Codebook table = "nf4".equals(st.quantType) ? Codebook.NF4 : Codebook.FP4;
        if (!Arrays.equals(quantMap.floats(), table.values())) {
            throw bad(source, p + ".quant_map", "must be bitsandbytes' " + st.quantType
                    + " table " + Arrays.toString(table.values()) + ", got "
                    + Arrays.toString(quantMap.floats()));
        }
        TensorData absmax = tensors.apply(p + ".absmax");
        TensorData nestedAbsmax = tensors.apply(p + ".nested_absmax");
        boolean nested = nestedAbsmax != null;
        if (nested != (st.nestedOffset != null)) {
            throw bad(source, stateKey, nested ? "has no nested_offset although "
                    + p + ".nested_absmax exists" : "has nested_offset but " + p
                    + ".nested_absmax is missing");
        }
        CodebookQuantizer quantizer = CodebookQuantizer.builder(table).blockSize(st.blockSize)
                .doubleQuantization(nested).build();
        QuantizedTensor.Builder b = QuantizedTensor.builder(quantizer, "bnb-" + st.quantType,
                st.shape).codebook(table);
        try (TensorScope tmp = scope.newChild()) {
            b.packed(tmp.fromHostBytes(packed.bytes(), packed.numel()), 4, PackOrder.MSB_FIRST);
            if (nested) {
                int blocks2 = (blocks + CodebookQuantizer.NESTED_BLOCK_SIZE - 1)
                        / CodebookQuantizer.NESTED_BLOCK_SIZE;
                byte[] codes = require(source, p + ".absmax", absmax, SafetensorsDType.U8, blocks)
                        .bytes();
                float[] absmax2 = require(source, p + ".nested_absmax", nestedAbsmax,
                        SafetensorsDType.F32, blocks2).floats();
                float[] map = require(source, p + ".nested_quant_map",
                        tensors.apply(p + ".nested_quant_map"), SafetensorsDType.F32, 256).floats();
                Codebook dynamic = Arrays.equals(map, Codebook.DYNAMIC_8BIT.values())
                        ? Codebook.DYNAMIC_8BIT : storedMap(source, p + ".nested_quant_map", map);
                CodebookQuantizer q8 = CodebookQuantizer.builder(dynamic)
                        .blockSize(CodebookQuantizer.NESTED_BLOCK_SIZE).build();
                QuantizedTensor inner = QuantizedTensor.builder(q8, "bnb-dynamic8", blocks)
                        .codebook(dynamic)
                        .packed(tmp.fromHostBytes(codes, blocks), 8, PackOrder.MSB_FIRST)
                        .scales(tmp.fromHost(absmax2, blocks2), CodebookQuantizer.NESTED_BLOCK_SIZE)
                        .build();
                b.nestedScales(new QuantizedTensor.NestedScales(inner, st.nestedOffset),
                        st.blockSize);
            } else {
                float[] scales = require(source, p + ".absmax", absmax, SafetensorsDType.F32,
                        blocks).floats();
                b.scales(tmp.fromHost(scales, blocks), st.blockSize);
            }
            QuantizedTensor q = b.build();
            return new Bnb4bitWeight(module, q.keep(scope), st.dtype);
        }
    }

    private static Codebook storedMap(String source, String key, float[] map)
            throws CheckpointFormatException {
        for (int i = 1; i < map.length; i++) {
            if (!(map[i - 1] < map[i])) {
                throw bad(source, key, "must be sorted ascending and finite, but entry " + i + " ("
                        + map[i] + ") does not exceed entry " + (i - 1) + " (" + map[i - 1] + ")");
            }
        }
        try {
            return Codebook.of("dynamic8-stored", map);
        } catch (IllegalArgumentException e) {
            throw bad(source, key, "is not a valid map: " + e.getMessage());
        }
    }

    private static TensorData require(String source, String key, TensorData t,
            SafetensorsDType dtype, int numel) throws CheckpointFormatException {
        if (t == null) {
            throw bad(source, key, "is missing");
        }
        if (t.dtype() != dtype) {
            throw bad(source, key, "dtype must be " + dtype + ", got " + t.dtype());
        }
        if (numel >= 0 && (t.numel() != numel || t.shape().length != 1)) {
            throw bad(source, key, "shape must be [" + numel + "], got "
                    + Arrays.toString(t.shape()));
        }
        return t;
    }

    private static CheckpointFormatException bad(String source, String key, String message) {
        return new CheckpointFormatException(source + ": tensor '" + key + "' " + message);
    }

    /** The parsed quant-state JSON. */
    private record State(String quantType, int blockSize, String dtype, int[] shape,
            Float nestedOffset) {
        static State parse(String source, String key, TensorData bytes)
                throws CheckpointFormatException {
            String json;
            try {
                json = StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .decode(java.nio.ByteBuffer.wrap(bytes.bytes())).toString();
            } catch (CharacterCodingException e) {
                throw bad(source, key, "is not UTF-8 text");
            }
            Object v = PythonJson.parse(source + ": tensor '" + key + "'", json);
            if (!(v instanceof Map<?, ?> m)) {
                throw bad(source, key, "must hold a JSON object, got " + json);
            }
            String quantType = string(source, key, m, "quant_type");
            if (!quantType.equals("nf4") && !quantType.equals("fp4")) {
                throw bad(source, key, "quant_type must be 'nf4' or 'fp4', got '" + quantType + "'");
            }
            int blockSize = (int) integer(source, key, m, "blocksize", 16, 4096);
            if (Integer.bitCount(blockSize) != 1) {
                throw bad(source, key, "blocksize must be a power of two in [16, 4096], got "
                        + blockSize);
            }
            String dtype = string(source, key, m, "dtype");
            if (!Bnb4bitWeight.DTYPES.contains(dtype)) {
                throw bad(source, key, "dtype must be one of [bfloat16, float16, float32], got '"
                        + dtype + "'");
            }
            Object shapeValue = m.get("shape");
            if (!(shapeValue instanceof List<?> dims) || dims.isEmpty()) {
                throw bad(source, key, "shape must be a non-empty list of integers, got "
                        + shapeValue);
            }
            int[] shape = new int[dims.size()];
            long numel = 1;
            for (int i = 0; i < shape.length; i++) {
                shape[i] = (int) integerValue(source, key, "shape", dims.get(i), 1,
                        Integer.MAX_VALUE);
                numel *= shape[i];
                if (numel > Integer.MAX_VALUE) {
                    throw bad(source, key, "shape " + dims + " has more than 2^31 - 1 elements");
                }
            }
            Float offset = null;
            if (m.containsKey("nested_offset")) {
                long nb = integer(source, key, m, "nested_blocksize", 1, Integer.MAX_VALUE);
                if (nb != CodebookQuantizer.NESTED_BLOCK_SIZE) {
                    throw bad(source, key, "nested_blocksize must be 256, got " + nb);
                }
                String nd = string(source, key, m, "nested_dtype");
                if (!nd.equals("float32")) {
                    throw bad(source, key, "nested_dtype must be 'float32', got '" + nd + "'");
                }
                Object o = m.get("nested_offset");
                double d;
                try {
                    d = o instanceof PythonJson.Literal l ? Double.parseDouble(l.text())
                            : Double.NaN;
                } catch (NumberFormatException e) {
                    d = Double.NaN;
                }
                if (!Double.isFinite(d) || (double) (float) d != d) {
                    throw bad(source, key, "nested_offset must be a finite float32 value, got " + o);
                }
                offset = (float) d;
            }
            return new State(quantType, blockSize, dtype, shape, offset);
        }

        private static String string(String source, String key, Map<?, ?> m, String field)
                throws CheckpointFormatException {
            Object v = m.get(field);
            if (!(v instanceof String s)) {
                throw bad(source, key, field + " must be a string, got " + v);
            }
            return s;
        }

        private static long integer(String source, String key, Map<?, ?> m, String field,
                long min, long max) throws CheckpointFormatException {
            return integerValue(source, key, field, m.get(field), min, max);
        }

        private static long integerValue(String source, String key, String field, Object v,
                long min, long max) throws CheckpointFormatException {
            long x;
            try {
                x = v instanceof PythonJson.Literal l ? Long.parseLong(l.text()) : Long.MIN_VALUE;
            } catch (NumberFormatException e) {
                x = Long.MIN_VALUE;
            }
            if (x < min || x > max) {
                throw bad(source, key, field + " must be an integer in [" + min + ", " + max
                        + "], got " + (v instanceof PythonJson.Literal l ? l.text() : v));
            }
            return x;
        }
    }
}
