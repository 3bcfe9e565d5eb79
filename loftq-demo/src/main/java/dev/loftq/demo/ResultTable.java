package dev.loftq.demo;

import java.util.List;
import java.util.Locale;

/** The demo's table as aligned text (stdout), Markdown and CSV. */
public final class ResultTable {
    private final List<VariantResult> rows;

    /** @param rows one per variant, in the order to print */
    public ResultTable(List<VariantResult> rows) {
        if (rows == null || rows.isEmpty()) {
            throw new IllegalArgumentException("rows must be non-empty, got " + (rows == null ? "null" : "none"));
        }
        this.rows = List.copyOf(rows);
    }

    /** Fixed-width columns for the terminal. */
    public String text() {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%-5s %5s  %-16s %12s %12s %10s %8s%n",
                "bits", "rank", "init", "weight err", "cosine", "Spearman", "time s"));
        for (VariantResult r : rows) {
            Variant v = r.variant();
            sb.append(String.format(Locale.ROOT, "%-5s %5d  %-16s %12.4f %12.4f %10.4f %8.1f%n", v.format(), v.rank(),
                    v.initialization().label(), r.weightError(), r.cosine(), r.spearman(), r.seconds()));
        }
        return sb.toString();
    }

    /** A Markdown table. */
    public String markdown() {
        StringBuilder sb = new StringBuilder(
                "| bits | rank | init | mean rel. weight error | mean cosine to fp32 | Spearman of pair similarities |\n"
                        + "|---|---|---|---|---|---|\n");
        for (VariantResult r : rows) {
            Variant v = r.variant();
            sb.append(String.format(Locale.ROOT, "| %s | %d | %s | %.4f | %.4f | %.4f |%n", v.format(), v.rank(),
                    v.initialization().label(), r.weightError(), r.cosine(), r.spearman()));
        }
        return sb.toString();
    }

    /** CSV with a header line; full precision. */
    public String csv() {
        StringBuilder sb = new StringBuilder("bits,rank,init,weight_error,cosine,spearman,seconds\n");
        for (VariantResult r : rows) {
            Variant v = r.variant();
            sb.append(String.format(Locale.ROOT, "%s,%d,%s,%.6f,%.6f,%.6f,%.2f%n", v.format(), v.rank(),
                    v.initialization().label(), r.weightError(), r.cosine(), r.spearman(), r.seconds()));
        }
        return sb.toString();
    }
}
