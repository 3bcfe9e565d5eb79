package dev.loftq.core.ref;

/** Data movement kernels: 2-D transposes and strided copies, for float and byte storage. */
final class Layout {
    private Layout() {}

    /** Tile side of the transposes: a tile of source and one of destination stay in L1. */
    private static final int TILE = 32;

    /** The transpose of {@code x} viewed as [rows, cols]: result [cols, rows]. x: not modified. */
    static float[] transpose(float[] x, int rows, int cols) {
        float[] out = new float[x.length];
        for (int r0 = 0; r0 < rows; r0 += TILE) {
            int r1 = Math.min(rows, r0 + TILE);
            for (int c0 = 0; c0 < cols; c0 += TILE) {
                int c1 = Math.min(cols, c0 + TILE);
                for (int r = r0; r < r1; r++) {
                    for (int c = c0; c < c1; c++) {
                        out[c * rows + r] = x[r * cols + c];
                    }
                }
            }
        }
        return out;
    }

    /** The transpose of {@code x} viewed as [rows, cols]: result [cols, rows]. x: not modified. */
    static byte[] transpose(byte[] x, int rows, int cols) {
        byte[] out = new byte[x.length];
        for (int r0 = 0; r0 < rows; r0 += TILE) {
            int r1 = Math.min(rows, r0 + TILE);
            for (int c0 = 0; c0 < cols; c0 += TILE) {
                int c1 = Math.min(cols, c0 + TILE);
                for (int r = r0; r < r1; r++) {
                    for (int c = c0; c < c1; c++) {
                        out[c * rows + r] = x[r * cols + c];
                    }
                }
            }
        }
        return out;
    }

    /**
     * Copies {@code count} runs of {@code run} elements from {@code src} (runs {@code srcStride}
     * apart, from {@code srcOff}) to {@code dst} (runs {@code dstStride} apart, from
     * {@code dstOff}). Works on any primitive array through {@link System#arraycopy}.
     */
    static void copyRuns(Object src, int srcOff, int srcStride, Object dst, int dstOff,
            int dstStride, int run, int count) {
        for (int i = 0; i < count; i++) {
            System.arraycopy(src, srcOff + i * srcStride, dst, dstOff + i * dstStride, run);
        }
    }
}
