package dev.loftq.quant;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.loftq.core.io.Safetensors;
import dev.loftq.core.io.SafetensorsFile;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;

/**
 * The reference vectors of {@code FORMATS.md}, copied into this module's test resources under
 * {@code /vectors/}: the manifest and the safetensors files, checked against the manifest's
 * sha256. Shared with subclasses in other modules through the test-jar.
 */
public final class Vectors {
    private static final JsonObject MANIFEST = parseManifest();

    private Vectors() {}

    /** The manifest entries of the given kinds, in manifest order. */
    public static List<JsonObject> cases(Set<String> kinds) {
        List<JsonObject> out = new ArrayList<>();
        for (JsonElement e : MANIFEST.getAsJsonArray("cases")) {
            JsonObject c = e.getAsJsonObject();
            if (kinds.contains(c.get("kind").getAsString())) {
                out.add(c);
            }
        }
        return out;
    }

    /** The manifest entry {@code id}. */
    public static JsonObject find(String id) {
        for (JsonElement e : MANIFEST.getAsJsonArray("cases")) {
            if (e.getAsJsonObject().get("id").getAsString().equals(id)) {
                return e.getAsJsonObject();
            }
        }
        throw new IllegalArgumentException("no vector case '" + id + "' in the manifest");
    }

    /** The file of a manifest entry, after checking its sha256 against the manifest. */
    public static SafetensorsFile load(JsonObject entry) {
        String file = entry.get("file").getAsString();
        byte[] bytes = resource(file);
        String sha = sha256(bytes);
        String expected = entry.get("sha256").getAsString();
        if (!sha.equals(expected)) {
            throw new IllegalStateException("vector " + file + ": sha256 " + sha
                    + " does not match the manifest's " + expected);
        }
        try {
            return Safetensors.parse("vectors/" + file, bytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The file of the manifest entry {@code id}. */
    public static SafetensorsFile load(String id) {
        return load(find(id));
    }

    private static JsonObject parseManifest() {
        return JsonParser.parseString(new String(resource("manifest.json"), StandardCharsets.UTF_8))
                .getAsJsonObject();
    }

    private static byte[] resource(String name) {
        try (InputStream in = Vectors.class.getResourceAsStream("/vectors/" + name)) {
            if (in == null) {
                throw new IllegalStateException("test resource /vectors/" + name + " is missing");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
