package dev.loftq.djl.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.io.FloatConversions;
import dev.loftq.core.io.SafetensorsFormatException;
import dev.loftq.djl.io.CheckpointFormatException;
import dev.loftq.djl.io.SafetensorsStreamWriter;
import dev.loftq.quant.loftq.LoftqPolicy;
import dev.loftq.quant.quantizer.CodebookQuantizer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The reliability corpus: malformed inputs and hostile environments, each run through a whole
 * {@link CheckpointQuantizer} job. Every case must fail with the expected exception type, a
 * message naming the file (and the tensor where one is at fault) and what was expected, and must
 * leave no output behind.
 */
class MalformedInputCorpusTest {
    private static final String FILE = "model.safetensors";

    /** The valid file's header: two BF16 targets and an F32 norm, tiling 16640 data bytes. */
    static final String K = "{\"dtype\":\"BF16\",\"shape\":[64,64],\"data_offsets\":[0,8192]}";
    static final String Q = "{\"dtype\":\"BF16\",\"shape\":[64,64],\"data_offsets\":[8192,16384]}";
    static final String N = "{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[16384,16640]}";
    static final int DATA = 16640;

    static String header(String k, String q, String n) {
        return "{\"l.k_proj.weight\":" + k + ",\"l.q_proj.weight\":" + q + ",\"l.norm.weight\":"
                + n + "}";
    }

    /** A test case: how to break the model (or environment), what to run, what to expect. */
    record Case(String name, Setup setup, Class<? extends Exception> type, String... message) {
        @Override
        public String toString() {
            return name;
        }
    }

    @FunctionalInterface
    interface Setup {
        /** Writes the model into {@code model}; returns the job to run. */
        CheckpointQuantizer.Builder apply(Path model, Path out) throws IOException;
    }

    @TempDir
    Path tmp;

    static Stream<Case> corpus() {
        List<Case> c = new ArrayList<>();
        // --- the safetensors container -------------------------------------------------------
        c.add(raw("empty file", new byte[0], SafetensorsFormatException.class,
                "0 bytes, too short for the 8-byte header length"));
        c.add(raw("seven bytes", new byte[7], SafetensorsFormatException.class,
                "7 bytes, too short"));
        c.add(bytes("truncated in the data section", b -> Arrays.copyOf(b, b.length - 100),
                SafetensorsFormatException.class, "l.norm.weight", "end beyond the data section"));
        c.add(bytes("truncated in the header", b -> Arrays.copyOf(b, 40),
                SafetensorsFormatException.class, "header length", "must be at most 32"));
        c.add(bytes("header length larger than the file", b -> setLength(b, b.length),
                SafetensorsFormatException.class, "header length", "must be at most"));
        c.add(bytes("header length negative as int64", b -> setLength(b, Long.MIN_VALUE),
                SafetensorsFormatException.class, "header length 9223372036854775808"));
        c.add(bytes("header length above the 100 MB bound", b -> setLength(b, 100_000_001L),
                SafetensorsFormatException.class, "header length 100000001", "limit is 100000000"));
        c.add(hdr("header not JSON", "this is not json at all", SafetensorsFormatException.class,
                "malformed JSON header"));
        c.add(hdr("header a JSON array", "[1,2,3]", SafetensorsFormatException.class,
                "the header must be a JSON object, got a JSON array"));
        c.add(raw("header not UTF-8", file(new byte[] {'{', (byte) 0xC3, (byte) 0x28, '}'},
                0), SafetensorsFormatException.class, "header is not valid UTF-8"));
        c.add(hdr("content after the header object", header(K, Q, N) + "{}",
                SafetensorsFormatException.class, "malformed JSON header"));
        c.add(hdr("duplicate tensor name", "{\"l.k_proj.weight\":" + K + ",\"l.k_proj.weight\":"
                + Q + "}", SafetensorsFormatException.class,
                "header has tensor 'l.k_proj.weight' twice"));
        c.add(hdr("unknown dtype", header(K, Q.replace("BF16", "F8_E4M3"), N),
                SafetensorsFormatException.class, "tensor 'l.q_proj.weight'", "F8_E4M3"));
        c.add(hdr("dtype in lower case", header(K.replace("BF16", "bf16"), Q, N),
                SafetensorsFormatException.class, "tensor 'l.k_proj.weight'", "'bf16'"));
        c.add(hdr("negative shape dimension", header(K.replace("[64,64]", "[-64,64]"), Q, N),
                SafetensorsFormatException.class, "tensor 'l.k_proj.weight' shape",
                "got -64"));
        c.add(hdr("fractional shape dimension", header(K, Q.replace("[64,64]", "[64,1.5]"), N),
                SafetensorsFormatException.class, "tensor 'l.q_proj.weight' shape", "got 1.5"));
        c.add(hdr("shape product differs from the byte length",
                header(K.replace("[64,64]", "[64,65]"), Q, N), SafetensorsFormatException.class,
                "tensor 'l.k_proj.weight'", "needs 8320 bytes", "span 8192"));
        c.add(hdr("offsets beyond the file", header(K, Q,
                N.replace("[16384,16640]", "[16384,99996]").replace("[64]", "[20903]")),
                SafetensorsFormatException.class, "tensor 'l.norm.weight'",
                "end beyond the data section"));
        c.add(hdr("overlapping offsets", header(K, Q.replace("[8192,16384]", "[4096,12288]"), N),
                SafetensorsFormatException.class, "must begin at", "must not overlap"));
        c.add(hdr("a gap between tensors", header(K.replace("[0,8192]", "[2,8194]")
                        .replace("[64,64]", "[64,64]"), Q.replace("[8192,16384]", "[8194,16386]"),
                N.replace("[16384,16640]", "[16386,16638]").replace("[64]", "[63]")),
                SafetensorsFormatException.class,
                "tensor 'l.k_proj.weight'", "must begin at 0"));
        c.add(hdr("negative offset", header(K.replace("[0,8192]", "[-8,8184]"), Q, N),
                SafetensorsFormatException.class, "tensor 'l.k_proj.weight' data_offsets",
                "got -8"));
        c.add(hdr("offsets begin after end", header(K.replace("[0,8192]", "[8192,0]"), Q, N),
                SafetensorsFormatException.class, "tensor 'l.k_proj.weight'",
                "begin <= end"));
        c.add(hdr("offsets of one element", header(K.replace("[0,8192]", "[0]"), Q, N),
                SafetensorsFormatException.class, "tensor 'l.k_proj.weight'",
                "data_offsets must be [begin, end]"));
        c.add(hdr("missing data_offsets", header(K.replace(",\"data_offsets\":[0,8192]", ""), Q,
                N), SafetensorsFormatException.class, "tensor 'l.k_proj.weight' must have dtype, "
                + "shape and data_offsets"));
        c.add(hdr("unknown key in a tensor entry", header(K.replace("{", "{\"device\":\"cpu\","),
                Q, N), SafetensorsFormatException.class,
                "tensor 'l.k_proj.weight' has unknown key 'device'"));
        c.add(hdr("metadata value not a string", "{\"__metadata__\":{\"format\":1},"
                + header(K, Q, N).substring(1), SafetensorsFormatException.class,
                "'__metadata__' value of 'format' must be a string"));
        c.add(bytes("bytes beyond the last tensor", b -> Arrays.copyOf(b, b.length + 8),
                SafetensorsFormatException.class, "the data section has 16648 bytes but the "
                + "tensors cover 16640"));
        // --- sharded checkpoints --------------------------------------------------------------
        c.add(sharded("index not JSON", (dir, index) -> "{weight_map:", CheckpointFormatException.class,
                "model.safetensors.index.json", "malformed JSON").toCase());
        c.add(sharded("index without weight_map", (dir, index) -> "{\"metadata\": {}}",
                CheckpointFormatException.class, "model.safetensors.index.json",
                "\"weight_map\" object").toCase());
        c.add(sharded("index with an empty weight_map", (dir, index) -> "{\"weight_map\": {}}",
                CheckpointFormatException.class, "\"weight_map\" is empty").toCase());
        c.add(sharded("missing shard", (dir, index) -> {
            Files.delete(dir.resolve("b.safetensors"));
            return index;
        }, NoSuchFileException.class, "b.safetensors", "shard named by",
                "for tensor 'l.q_proj.weight'", "is missing").toCase());
        c.add(sharded("index naming a tensor absent from its shard", (dir, index) ->
                index.replace("\"l.q_proj.weight\": \"b.safetensors\"",
                        "\"l.q_proj.weight\": \"b.safetensors\", \"l.v_proj.weight\": "
                                + "\"b.safetensors\""), CheckpointFormatException.class,
                "model.safetensors.index.json", "tensor 'l.v_proj.weight' is mapped to "
                        + "b.safetensors, which has no such tensor").toCase());
        c.add(sharded("shard holding a tensor the index omits", (dir, index) ->
                index.replace("\"l.norm.weight\": \"a.safetensors\", ", ""),
                CheckpointFormatException.class, "a.safetensors", "holds tensor "
                        + "'l.norm.weight', which", "maps to no shard").toCase());
        c.add(sharded("index pointing outside the directory", (dir, index) ->
                index.replace("\"l.q_proj.weight\": \"b.safetensors\"",
                        "\"l.q_proj.weight\": \"../b.safetensors\""),
                CheckpointFormatException.class, "tensor 'l.q_proj.weight' must map to a shard "
                        + "file name in the same directory, got \"../b.safetensors\"").toCase());
        c.add(sharded("truncated shard", (dir, index) -> {
            Path b = dir.resolve("b.safetensors");
            byte[] all = Files.readAllBytes(b);
            Files.write(b, Arrays.copyOf(all, all.length - 1));
            return index;
        }, SafetensorsFormatException.class, "b.safetensors", "tensor 'l.q_proj.weight'").toCase());
        // --- weights ---------------------------------------------------------------------------
        c.add(weights("NaN weight", 8192 + 2 * 70, (short) 0x7FC0, CheckpointFormatException.class,
                "model.safetensors: tensor 'l.q_proj.weight' has NaN at [1, 6] (flat index 70)"));
        c.add(weights("+Inf weight", 2 * 4095, (short) 0x7F80, CheckpointFormatException.class,
                "tensor 'l.k_proj.weight' has Infinity at [63, 63]"));
        c.add(weights("-Inf weight", 2 * 64, (short) 0xFF80, CheckpointFormatException.class,
                "tensor 'l.k_proj.weight' has -Infinity at [1, 0]"));
        // --- arguments --------------------------------------------------------------------------
        c.add(valid("target pattern matching nothing", (m, o) -> CheckpointQuantizer.builder(m, o)
                .targets(List.of("gate_proj", "dense")), IllegalArgumentException.class,
                "targets [gate_proj, dense] match no 2-D floating point weight in",
                "l.k_proj, l.q_proj"));
        c.add(valid("rank above min(out, in)", (m, o) -> CheckpointQuantizer.builder(m, o)
                .mixed(LoftqPolicy.parse("k_proj=4:65")), IllegalArgumentException.class,
                "rank must be in [1, 64] for tensor l.k_proj.weight [64, 64]", "got 65"));
        c.add(valid("4-bit rule with a quantizer bitsandbytes cannot store", (m, o) ->
                CheckpointQuantizer.builder(m, o).mixed(LoftqPolicy.builder()
                        .rule("q_proj", CodebookQuantizer.bitsandbytesFp4()).build()),
                IllegalArgumentException.class, "module l.q_proj: 4-bit layers are stored in "
                + "bitsandbytes NF4 format", "got bitsandbytes FP4"));
        c.add(valid("missing model directory", (m, o) -> CheckpointQuantizer.builder(
                m.resolve("nope"), o), NoSuchFileException.class, "nope"));
        c.add(valid("output equal to the model directory", (m, o) ->
                CheckpointQuantizer.builder(m, m), IllegalArgumentException.class,
                "output directory must differ from the model directory"));
        // --- output environment -----------------------------------------------------------------
        c.add(valid("output directory not writable", (m, o) -> CheckpointQuantizer.builder(m,
                Path.of("/sys/loftq-corpus-out")), AccessDeniedException.class,
                "/sys/loftq-corpus-out", "cannot create the output directory"));
        c.add(valid("output under a regular file", (m, o) -> {
            Files.writeString(o.resolveSibling("plain-file"), "x");
            return CheckpointQuantizer.builder(m, o.resolveSibling("plain-file").resolve("out"));
        }, AccessDeniedException.class, "plain-file", "cannot create the output directory"));
        c.add(valid("output is a file", (m, o) -> {
            Files.writeString(o, "x");
            return CheckpointQuantizer.builder(m, o);
        }, FileAlreadyExistsException.class, "output must be a directory"));
        c.add(valid("output directory not empty", (m, o) -> {
            Files.createDirectories(o);
            Files.writeString(o.resolve("notes.txt"), "keep me");
            return CheckpointQuantizer.builder(m, o);
        }, DirectoryNotEmptyException.class, "output directory is not empty", "notes.txt"));
        c.add(valid("disk full while writing the backbone", (m, o) -> CheckpointQuantizer
                .builder(m, o).sinks(fullAfter(1000)), IOException.class,
                "model.safetensors failed", "No space left on device"));
        c.add(valid("disk full at the header", (m, o) -> CheckpointQuantizer
                .builder(m, o).sinks(fullAfter(0)), IOException.class,
                "writing the header of", "No space left on device"));
        c.add(sharded("disk full on the second shard", (dir, index) -> index,
                IOException.class, "b.safetensors failed", "No space left on device")
                .withJob((m, o) -> CheckpointQuantizer.builder(m, o).sinks(fullOn(
                        "b.safetensors"))));
        c.add(valid("config.json not JSON", (m, o) -> {
            Files.writeString(m.resolve("config.json"), "{\"architectures\": [");
            return CheckpointQuantizer.builder(m, o);
        }, CheckpointFormatException.class, "config.json", "malformed JSON"));
        return c.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("corpus")
    void failsClearlyAndLeavesNoOutput(Case c) throws Exception {
        Path model = Files.createDirectories(tmp.resolve("model"));
        Path out = tmp.resolve("out");
        CheckpointQuantizer.Builder job = c.setup().apply(model, out);
        boolean outExisted = Files.exists(out);
        List<Path> before = outExisted && Files.isDirectory(out) ? list(out) : List.of();
        Exception e = assertThrows(Exception.class, () -> job.rank(2).iterations(1)
                .backend(CheckpointQuantizerTest.BACKEND).build().run());
        assertTrue(c.type().isInstance(e), "expected " + c.type().getSimpleName() + ", got " + e);
        String message = e.getMessage();
        for (String m : c.message()) {
            assertTrue(message.contains(m), "message lacks '" + m + "': " + message);
        }
        if (outExisted) {
            assertEquals(before, Files.isDirectory(out) ? list(out) : List.of(),
                    "the run changed a directory it refused");
        } else {
            assertFalse(Files.exists(out), "output left behind: " + (Files.isDirectory(out)
                    ? list(out) : out));
        }
        try (Stream<Path> s = Files.list(model)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().startsWith(".")),
                    "temporary files left in the model directory");
        }
    }

    // --- builders of cases ---------------------------------------------------------------------

    private static Case raw(String name, byte[] file, Class<? extends Exception> type,
            String... message) {
        return new Case(name, (m, o) -> {
            Files.write(m.resolve(FILE), file);
            return CheckpointQuantizer.builder(m, o);
        }, type, withFile(message));
    }

    private static Case bytes(String name, UnaryOperator<byte[]> mutate,
            Class<? extends Exception> type, String... message) {
        return raw(name, mutate.apply(file(header(K, Q, N).getBytes(StandardCharsets.UTF_8),
                DATA)), type, message);
    }

    private static Case hdr(String name, String header, Class<? extends Exception> type,
            String... message) {
        return raw(name, file(header.getBytes(StandardCharsets.UTF_8), DATA), type, message);
    }

    private static Case weights(String name, int byteOffset, short value,
            Class<? extends Exception> type, String... message) {
        byte[] f = file(header(K, Q, N).getBytes(StandardCharsets.UTF_8), DATA);
        int dataStart = f.length - DATA;
        ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN).putShort(dataStart + byteOffset, value);
        return raw(name, f, type, message);
    }

    private static Case valid(String name, Setup job, Class<? extends Exception> type,
            String... message) {
        return new Case(name, (m, o) -> {
            Files.write(m.resolve(FILE), file(header(K, Q, N).getBytes(StandardCharsets.UTF_8),
                    DATA));
            return job.apply(m, o);
        }, type, message);
    }

    @FunctionalInterface
    interface IndexMutation {
        String apply(Path dir, String index) throws IOException;
    }

    /** Shards a.safetensors (k_proj, norm) and b.safetensors (q_proj), then mutates. */
    private static ShardedCase sharded(String name, IndexMutation mutate,
            Class<? extends Exception> type, String... message) {
        return new ShardedCase(name, mutate, type, message, null);
    }

    /** A sharded case, optionally with its own job. */
    static final class ShardedCase {
        private final String name;
        private final IndexMutation mutate;
        private final Class<? extends Exception> type;
        private final String[] message;
        private final Setup job;

        ShardedCase(String name, IndexMutation mutate, Class<? extends Exception> type,
                String[] message, Setup job) {
            this.name = name;
            this.mutate = mutate;
            this.type = type;
            this.message = message;
            this.job = job;
        }

        Case withJob(Setup job) {
            return new ShardedCase(name, mutate, type, message, job).toCase();
        }

        Case toCase() {
            return new Case(name, (m, o) -> {
                byte[] all = file(header(K, Q, N).getBytes(StandardCharsets.UTF_8), DATA);
                byte[] data = Arrays.copyOfRange(all, all.length - DATA, all.length);
                String ha = "{\"l.k_proj.weight\":" + K + ",\"l.norm.weight\":"
                        + N.replace("[16384,16640]", "[8192,8448]") + "}";
                byte[] da = new byte[8448];
                System.arraycopy(data, 0, da, 0, 8192);
                System.arraycopy(data, 16384, da, 8192, 256);
                Files.write(m.resolve("a.safetensors"), file(ha.getBytes(StandardCharsets.UTF_8),
                        da));
                String hb = "{\"l.q_proj.weight\":" + Q.replace("[8192,16384]", "[0,8192]") + "}";
                Files.write(m.resolve("b.safetensors"), file(hb.getBytes(StandardCharsets.UTF_8),
                        Arrays.copyOfRange(data, 8192, 16384)));
                String index = "{\"metadata\": {\"total_size\": 16640}, \"weight_map\": "
                        + "{\"l.k_proj.weight\": \"a.safetensors\", \"l.norm.weight\": "
                        + "\"a.safetensors\", \"l.q_proj.weight\": \"b.safetensors\"}}";
                Files.writeString(m.resolve("model.safetensors.index.json"),
                        mutate.apply(m, index));
                return job == null ? CheckpointQuantizer.builder(m, o) : job.apply(m, o);
            }, type, message);
        }
    }

    private static String[] withFile(String... message) {
        String[] out = Arrays.copyOf(message, message.length + 1);
        out[message.length] = FILE;
        return out;
    }

    private static byte[] setLength(byte[] file, long length) {
        ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN).putLong(0, length);
        return file;
    }

    /** u64 length, the header padded to 8 with spaces, then deterministic small bf16 data. */
    static byte[] file(byte[] header, int dataLength) {
        byte[] data = new byte[dataLength];
        Random r = new Random(1);
        ByteBuffer d = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i + 1 < dataLength; i += 2) {
            d.putShort(i, FloatConversions.floatToBfloat16((float) (r.nextGaussian() * 0.02)));
        }
        return file(header, data);
    }

    static byte[] file(byte[] header, byte[] data) {
        int padded = (header.length + 7) & ~7;
        ByteBuffer b = ByteBuffer.allocate(8 + padded + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(padded).put(header);
        for (int i = header.length; i < padded; i++) {
            b.put((byte) ' ');
        }
        return b.put(data).array();
    }

    /** Sinks that fail with ENOSPC once {@code limit} bytes were written in all. */
    private static SafetensorsStreamWriter.SinkFactory fullAfter(long limit) {
        AtomicLong total = new AtomicLong();
        return file -> {
            SafetensorsStreamWriter.Sink s = SafetensorsStreamWriter.FILES.open(file);
            return new SafetensorsStreamWriter.Sink() {
                @Override
                public void write(ByteBuffer src, long position) throws IOException {
                    if (total.addAndGet(src.remaining()) > limit) {
                        throw new IOException("No space left on device");
                    }
                    s.write(src, position);
                }

                @Override
                public void force() throws IOException {
                    s.force();
                }

                @Override
                public void close() throws IOException {
                    s.close();
                }
            };
        };
    }

    /** Sinks that fail for the file whose target name contains {@code name}. */
    private static SafetensorsStreamWriter.SinkFactory fullOn(String name) {
        return file -> file.getFileName().toString().contains(name) ? fullAfter(0).open(file)
                : SafetensorsStreamWriter.FILES.open(file);
    }

    private static List<Path> list(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.sorted().toList();
        }
    }
}
