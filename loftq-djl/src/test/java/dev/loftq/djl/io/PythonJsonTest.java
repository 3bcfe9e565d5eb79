package dev.loftq.djl.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Python's float repr and json.dumps layout, checked against values printed by CPython. */
class PythonJsonTest {
    @Test
    void reprMatchesCpython() {
        // Each pair: a double and CPython 3's repr of it.
        Object[][] cases = {
            {(double) 0.13703653f, "0.13703653216362"},
            {(double) 0.058836140f, "0.05883613973855972"},
            {1e-05, "1e-05"}, {0.0001, "0.0001"}, {0.00012, "0.00012"}, {6.0, "6.0"},
            {1e16, "1e+16"}, {1e15, "1000000000000000.0"}, {123.456, "123.456"},
            {-0.5, "-0.5"}, {0.1 + 0.2, "0.30000000000000004"}, {Double.MIN_VALUE, "5e-324"},
            {Double.MAX_VALUE, "1.7976931348623157e+308"}, {1.5e-7, "1.5e-07"},
            {(double) 0.1f, "0.10000000149011612"}, {-0.0, "-0.0"}, {0.0, "0.0"},
            {2.5e22, "2.5e+22"}, {1234567890123456.7, "1234567890123456.8"},
            {9007199254740993.0, "9007199254740992.0"}, {(double) 1e-38f, "9.999999350456404e-39"},
        };
        for (Object[] c : cases) {
            assertEquals(c[1], PythonJson.repr((Double) c[0]), "repr of " + c[0]);
        }
    }

    @Test
    void dumpsUsesPythonSeparatorsAndIndent() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("b", List.of(1, 2));
        m.put("a", Map.of());
        m.put("c", "é\"\n");
        m.put("d", null);
        m.put("e", 0.5f);
        assertEquals("{\"b\": [1, 2], \"a\": {}, \"c\": \"\\u00e9\\\"\\n\", \"d\": null, "
                + "\"e\": 0.5}", PythonJson.dumps(m));
        assertEquals("{\n  \"a\": {},\n  \"b\": [\n    1,\n    2\n  ],\n  \"c\": \"\\u00e9\\\"\\n\","
                + "\n  \"d\": null,\n  \"e\": 0.5\n}", PythonJson.dumps(m, 2, true));
    }

    @Test
    void parseKeepsNumberLiteralsAndRejectsMalformedText() throws Exception {
        Object v = PythonJson.parse("x.json", "{\"eps\": 1e-05, \"n\": [1, 2.50]}");
        assertEquals("{\"eps\": 1e-05, \"n\": [1, 2.50]}", PythonJson.dumps(v));
        CheckpointFormatException e = assertThrows(CheckpointFormatException.class,
                () -> PythonJson.parse("x.json", "{\"a\": 1,}"));
        assertEquals(true, e.getMessage().startsWith("x.json: malformed JSON"), e.getMessage());
        e = assertThrows(CheckpointFormatException.class,
                () -> PythonJson.parse("y.json", "{\"a\": 1, \"a\": 2}"));
        assertEquals("y.json: key 'a' appears twice in one object", e.getMessage());
    }
}
