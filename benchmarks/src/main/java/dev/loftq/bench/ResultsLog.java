package dev.loftq.bench;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.loftq.core.tensor.HostKernels;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.LocalDate;
import java.util.List;

/**
 * Appends figures to {@code benchmarks/results/<suite>.json}, a JSON array of objects
 * {@code {name, value, unit, error, baseline, baseline_value, machine, date, command}}: the
 * machine-readable record that {@code RESULTS.md} is the human view of. The file is rewritten
 * through a temporary file, so a crash never leaves it half written.
 */
public final class ResultsLog {
    private static final Gson GSON = new GsonBuilder().setPrettyPrinting().serializeNulls().create();

    private final Path file;
    private final String command;

    /**
     * @param directory where result files live (created if missing)
     * @param suite the file's base name
     * @param command the command line that reproduces the figures
     */
    public ResultsLog(Path directory, String suite, String command) {
        this.file = directory.resolve(suite + ".json");
        this.command = command;
    }

    /** Appends the figures, each stamped with machine, date and command. */
    public void append(List<Figure> figures) {
        try {
            Files.createDirectories(file.getParent());
            JsonArray all = Files.exists(file)
                    ? JsonParser.parseString(Files.readString(file)).getAsJsonArray()
                    : new JsonArray();
            String machine = machine();
            String date = LocalDate.now().toString();
            for (Figure f : figures) {
                JsonObject o = new JsonObject();
                o.addProperty("name", f.name());
                o.addProperty("value", f.value());
                o.addProperty("unit", f.unit());
                if (!Double.isNaN(f.error())) {
                    o.addProperty("error", f.error());
                }
                o.addProperty("baseline", f.baselineName());
                if (!Double.isNaN(f.baselineValue())) {
                    o.addProperty("baseline_value", f.baselineValue());
                }
                o.addProperty("machine", machine);
                o.addProperty("date", date);
                o.addProperty("command", command);
                all.add(o);
            }
            Path tmp = Files.createTempFile(file.getParent(), file.getFileName().toString(), ".tmp");
            Files.writeString(tmp, GSON.toJson(all) + "\n", StandardCharsets.UTF_8);
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot append to " + file, e);
        }
    }

    /**
     * "AMD EPYC, 2 cores, 23 GiB, Linux 6.x amd64, OpenJDK 17.0.15, load 0.52": the load average
     * over the last minute is part of the record, because these figures move with it.
     */
    public static String machine() {
        String cpu = "unknown CPU";
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    cpu = line.substring(line.indexOf(':') + 1).trim();
                    break;
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux: keep "unknown CPU"
        }
        long memBytes = ((com.sun.management.OperatingSystemMXBean)
                ManagementFactory.getOperatingSystemMXBean()).getTotalMemorySize();
        String load = "load unknown";
        try {
            load = "load " + Files.readString(Path.of("/proc/loadavg")).split(" ")[0];
        } catch (IOException | RuntimeException e) {
            // not Linux
        }
        return String.format("%s, %d cores, %d GiB, %s %s %s, %s %s, %s, %s", cpu,
                Runtime.getRuntime().availableProcessors(), Math.round(memBytes / (double) (1L << 30)),
                System.getProperty("os.name"), System.getProperty("os.version"),
                System.getProperty("os.arch"), System.getProperty("java.vm.name"),
                System.getProperty("java.version"), load,
                HostKernels.vectorized() ? "SIMD kernels" : "scalar kernels");
    }
}
