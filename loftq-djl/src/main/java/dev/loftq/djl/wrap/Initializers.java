package dev.loftq.djl.wrap;

/** Checks shared by the built-in initializers. */
final class Initializers {
    private Initializers() {}

    static void requireRank(String path, int out, int in, int rank) {
        if (rank < 1 || rank > Math.min(out, in)) {
            throw new IllegalArgumentException(path + ": rank must be in [1, min(out, in) = "
                    + Math.min(out, in) + "] for a Linear of weight [" + out + ", " + in
                    + "], got " + rank);
        }
    }
}
