package dev.loftq.djl.cli;

import dev.loftq.core.io.SafetensorsHeader.TensorInfo;
import dev.loftq.djl.io.LazySafetensorsFile;
import dev.loftq.djl.io.SafetensorsCheckpoint;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** {@code loftq inspect FILE}: the tensors of a safetensors file or checkpoint directory. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Validates and lists the tensors of a .safetensors file, or of a checkpoint "
                + "directory (all shards): name, dtype, shape, bytes; metadata; bitsandbytes "
                + "quant states.")
final class InspectCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Parameters(paramLabel = "FILE", description = "A .safetensors file or a checkpoint directory.")
    Path file;

    @Override
    public Integer call() throws Exception {
        PrintWriter o = spec.commandLine().getOut();
        try (SafetensorsCheckpoint c = SafetensorsCheckpoint.open(file)) {
            int width = Math.max(6, c.names().stream().mapToInt(String::length).max().orElse(0));
            long total = 0;
            for (Map.Entry<String, LazySafetensorsFile> shard : c.shards().entrySet()) {
                LazySafetensorsFile f = shard.getValue();
                o.printf(Locale.ROOT, "%s: %d tensors, %d bytes, metadata %s%n", f.path(),
                        f.header().tensors().size(), f.header().fileSize(), f.header().metadata());
                o.printf(Locale.ROOT, "  %-" + width + "s %-5s %-20s %14s%n", "tensor", "dtype",
                        "shape", "bytes");
                for (TensorInfo t : f.header().tensors().values()) {
                    o.printf(Locale.ROOT, "  %-" + width + "s %-5s %-20s %14d%n", t.name(),
                            t.dtype(), Arrays.toString(t.shape()), t.byteLength());
                    total += t.byteLength();
                    if (t.name().contains(".quant_state.bitsandbytes__") && t.byteLength() < 4096) {
                        o.println("      " + new String(f.read(t.name()).bytes(),
                                StandardCharsets.UTF_8));
                    }
                }
            }
            o.printf(Locale.ROOT, "%d tensors in %d file(s), %d bytes of data%n", c.names().size(),
                    c.shards().size(), total);
        }
        return LoftqCli.OK;
    }
}
