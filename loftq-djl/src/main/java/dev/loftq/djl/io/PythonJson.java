package dev.loftq.djl.io;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * JSON text exactly as CPython's {@code json.dumps} prints it, so that files written here are
 * byte-identical to the ones transformers, peft and bitsandbytes write: default separators
 * ({@code ", "} and {@code ": "}, or {@code ","} at line ends with an indent), {@code ensure_ascii}
 * escaping, and floats printed as Python's {@code repr} (the shortest decimal that reads back to
 * the same double, in fixed notation for exponents from -4 to 15, else {@code 1e-05} style).
 *
 * <p>Values: {@code null}, {@link Boolean}, {@link CharSequence}, {@link Integer}/{@link Long}
 * (Python ints), {@link Float} (a float32 widened to double, as {@code float(np.float32(x))}),
 * {@link Double}, {@link Literal} (a number copied verbatim, e.g. from a parsed file), {@link Map}
 * (string keys, iteration order kept unless sorted) and {@link List}. Stateless and thread-safe.
 */
public final class PythonJson {
    /** A number literal written verbatim (kept from a file so that it is re-written unchanged). */
    public record Literal(String text) {
        /** Validates that {@code text} is non-empty. */
        public Literal {
            if (text == null || text.isEmpty()) {
                throw new IllegalArgumentException("literal must be a non-empty number, got '"
                        + text + "'");
            }
        }
    }

    private PythonJson() {}

    /** {@code json.dumps(value)}: one line, default separators, keys in map order. */
    public static String dumps(Object value) {
        StringBuilder sb = new StringBuilder();
        write(sb, value, -1, false, 0);
        return sb.toString();
    }

    /**
     * {@code json.dumps(value, indent=indent, sort_keys=sortKeys)}.
     *
     * @param indent spaces per level, >= 0 (Python's {@code indent=0} still breaks lines)
     */
    public static String dumps(Object value, int indent, boolean sortKeys) {
        if (indent < 0) {
            throw new IllegalArgumentException("indent must be >= 0, got " + indent);
        }
        StringBuilder sb = new StringBuilder();
        write(sb, value, indent, sortKeys, 0);
        return sb.toString();
    }

    /**
     * Python's {@code repr(float(x))} of a double: {@code 0.1}, {@code 1e-05}, {@code 6.0},
     * {@code 1e+16}, {@code nan}, {@code inf} (JSON prints the last two as {@code NaN},
     * {@code Infinity}).
     */
    public static String repr(double x) {
        if (Double.isNaN(x)) {
            return "nan";
        }
        if (Double.isInfinite(x)) {
            return x > 0 ? "inf" : "-inf";
        }
        if (x == 0) {
            return (Double.doubleToRawLongBits(x) < 0 ? "-" : "") + "0.0";
        }
        String sign = x < 0 ? "-" : "";
        BigDecimal shortest = shortest(Math.abs(x));
        String digits = shortest.unscaledValue().toString();
        int trailing = 0;
        while (trailing < digits.length() - 1 && digits.charAt(digits.length() - 1 - trailing) == '0') {
            trailing++;
        }
        digits = digits.substring(0, digits.length() - trailing);
        // value = 0.d1d2... x 10^decpt
        int decpt = digits.length() - shortest.scale() + trailing;
        StringBuilder sb = new StringBuilder(sign);
        if (decpt <= -4 || decpt > 16) {
            sb.append(digits.charAt(0));
            if (digits.length() > 1) {
                sb.append('.').append(digits, 1, digits.length());
            }
            int exp = decpt - 1;
            sb.append('e').append(exp < 0 ? '-' : '+');
            int a = Math.abs(exp);
            if (a < 10) {
                sb.append('0');
            }
            sb.append(a);
        } else if (decpt <= 0) {
            sb.append("0.");
            sb.append("0".repeat(-decpt));
            sb.append(digits);
        } else if (decpt >= digits.length()) {
            sb.append(digits).append("0".repeat(decpt - digits.length())).append(".0");
        } else {
            sb.append(digits, 0, decpt).append('.').append(digits, decpt, digits.length());
        }
        return sb.toString();
    }

    /**
     * The shortest decimal that parses back to {@code x} (> 0, finite); among equally short ones
     * the closest to {@code x} (David Gay's mode 0, as CPython uses).
     */
    private static BigDecimal shortest(double x) {
        BigDecimal exact = new BigDecimal(x);
        for (int p = 1; p <= 17; p++) {
            BigDecimal down = exact.round(new MathContext(p, RoundingMode.FLOOR));
            BigDecimal up = exact.round(new MathContext(p, RoundingMode.CEILING));
            boolean downOk = down.doubleValue() == x;
            boolean upOk = up.doubleValue() == x;
            if (downOk && upOk) {
                int c = exact.subtract(down).compareTo(up.subtract(exact));
                if (c != 0) {
                    return c < 0 ? down : up;
                }
                return exact.round(new MathContext(p, RoundingMode.HALF_EVEN));
            }
            if (downOk) {
                return down;
            }
            if (upOk) {
                return up;
            }
        }
        return exact.round(MathContext.DECIMAL64); // unreachable: 17 digits always round-trip
    }

    private static void write(StringBuilder sb, Object v, int indent, boolean sort, int level) {
        if (v == null) {
            sb.append("null");
        } else if (v instanceof Boolean b) {
            sb.append(b ? "true" : "false");
        } else if (v instanceof CharSequence s) {
            string(sb, s.toString());
        } else if (v instanceof Integer || v instanceof Long || v instanceof Short
                || v instanceof Byte) {
            sb.append(((Number) v).longValue());
        } else if (v instanceof Float f) {
            number(sb, f.doubleValue());
        } else if (v instanceof Double d) {
            number(sb, d);
        } else if (v instanceof Literal l) {
            sb.append(l.text());
        } else if (v instanceof Map<?, ?> m) {
            map(sb, m, indent, sort, level);
        } else if (v instanceof List<?> list) {
            list(sb, list, indent, sort, level);
        } else {
            throw new IllegalArgumentException("value must be null, Boolean, CharSequence, "
                    + "Integer, Long, Float, Double, Literal, Map or List, got "
                    + v.getClass().getName());
        }
    }

    private static void number(StringBuilder sb, double d) {
        if (Double.isNaN(d)) {
            sb.append("NaN");
        } else if (Double.isInfinite(d)) {
            sb.append(d > 0 ? "Infinity" : "-Infinity");
        } else {
            sb.append(repr(d));
        }
    }

    private static void map(StringBuilder sb, Map<?, ?> m, int indent, boolean sort, int level) {
        if (m.isEmpty()) {
            sb.append("{}");
            return;
        }
        Map<?, ?> ordered = m;
        if (sort) {
            TreeMap<String, Object> t = new TreeMap<>();
            for (Map.Entry<?, ?> e : m.entrySet()) {
                t.put(key(e.getKey()), e.getValue());
            }
            ordered = t;
        }
        sb.append('{');
        boolean first = true;
        for (Map.Entry<?, ?> e : ordered.entrySet()) {
            if (!first) {
                sb.append(indent < 0 ? ", " : ",");
            }
            first = false;
            newline(sb, indent, level + 1);
            string(sb, key(e.getKey()));
            sb.append(": ");
            write(sb, e.getValue(), indent, sort, level + 1);
        }
        newline(sb, indent, level);
        sb.append('}');
    }

    private static void list(StringBuilder sb, List<?> l, int indent, boolean sort, int level) {
        if (l.isEmpty()) {
            sb.append("[]");
            return;
        }
        sb.append('[');
        for (int i = 0; i < l.size(); i++) {
            if (i > 0) {
                sb.append(indent < 0 ? ", " : ",");
            }
            newline(sb, indent, level + 1);
            write(sb, l.get(i), indent, sort, level + 1);
        }
        newline(sb, indent, level);
        sb.append(']');
    }

    private static String key(Object k) {
        if (!(k instanceof String s)) {
            throw new IllegalArgumentException("map keys must be strings, got " + k);
        }
        return s;
    }

    private static void newline(StringBuilder sb, int indent, int level) {
        if (indent >= 0) {
            sb.append('\n').append(" ".repeat(indent * level));
        }
    }

    /** A JSON string with {@code ensure_ascii=True} escaping, as CPython's encoder. */
    private static void string(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20 || c > 0x7e) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        sb.append('"');
    }

    /**
     * Parses JSON text (strict: one value, no comments, no duplicate keys) into the value types
     * {@link #dumps} writes: objects as insertion-ordered {@link Map}s, arrays as {@link List}s,
     * numbers as {@link Literal}s (so they are re-written exactly as read), strings, booleans and
     * {@code null}.
     *
     * @param source names the text in messages, e.g. its path
     * @throws CheckpointFormatException naming {@code source} if the text is not valid JSON
     */
    public static Object parse(String source, String json) throws CheckpointFormatException {
        try (com.google.gson.stream.JsonReader r =
                new com.google.gson.stream.JsonReader(new java.io.StringReader(json))) {
            r.setStrictness(com.google.gson.Strictness.STRICT);
            Object v = read(source, r);
            if (r.peek() != com.google.gson.stream.JsonToken.END_DOCUMENT) {
                throw new CheckpointFormatException(source + ": content after the JSON value");
            }
            return v;
        } catch (CheckpointFormatException e) {
            throw e;
        } catch (java.io.IOException | IllegalStateException | NumberFormatException e) {
            String detail = String.valueOf(e.getMessage()).lines().findFirst().orElse("");
            throw new CheckpointFormatException(source + ": malformed JSON: " + detail, e);
        }
    }

    private static Object read(String source, com.google.gson.stream.JsonReader r)
            throws java.io.IOException {
        switch (r.peek()) {
            case BEGIN_OBJECT -> {
                Map<String, Object> m = new java.util.LinkedHashMap<>();
                r.beginObject();
                while (r.hasNext()) {
                    String k = r.nextName();
                    if (m.containsKey(k)) {
                        throw new CheckpointFormatException(source + ": key '" + k
                                + "' appears twice in one object");
                    }
                    m.put(k, read(source, r));
                }
                r.endObject();
                return m;
            }
            case BEGIN_ARRAY -> {
                List<Object> l = new ArrayList<>();
                r.beginArray();
                while (r.hasNext()) {
                    l.add(read(source, r));
                }
                r.endArray();
                return l;
            }
            case STRING -> {
                return r.nextString();
            }
            case NUMBER -> {
                return new Literal(r.nextString());
            }
            case BOOLEAN -> {
                return r.nextBoolean();
            }
            case NULL -> {
                r.nextNull();
                return null;
            }
            default -> throw new CheckpointFormatException(source + ": unexpected " + r.peek());
        }
    }

    /** Converts a list of ints to a list for {@link #dumps}. */
    static List<Object> ints(int[] values) {
        List<Object> out = new ArrayList<>(values.length);
        for (int v : values) {
            out.add(v);
        }
        return out;
    }
}
