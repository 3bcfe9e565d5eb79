package dev.loftq.core.ref;

import dev.loftq.core.tensor.Parallel;

/**
 * Elementwise kernels over flat row-major arrays. Each operation is its own counted loop (the
 * operation is chosen once per chunk or run, never per element); every result is the correctly
 * rounded float32 value of the operation, as Java's float arithmetic gives it.
 */
final class Elementwise {
    private Elementwise() {}

    /** Elements below which a unary pass stays on the calling thread. */
    private static final int GRAIN = 1 << 15;

    /** Operations of one float32 operand and up to two float parameters. */
    enum Unary {
        ABS, NEG, SQRT, ROUND, SIGMOID, CLAMP, ADD_SCALAR, MUL_SCALAR, DIV_SCALAR
    }

    /** Float32 operations of two broadcast operands. */
    enum Binary {
        ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM
    }

    /** Comparisons of two broadcast float32 operands, giving BOOL. */
    enum Compare {
        GT, LT, EQ
    }

    /**
     * out[i] = op(x[i]) for every i; {@code p} and {@code q} are the scalar parameters (clamp's lo
     * and hi, the scalar of the scalar operations). x: not modified; out: same length as x.
     */
    static float[] unary(Unary op, float[] x, float p, float q) {
        float[] out = new float[x.length];
        Parallel.forRange(x.length, GRAIN, 1, (from, to) -> unaryRange(op, x, p, q, out, from, to));
        return out;
    }

    private static void unaryRange(Unary op, float[] x, float p, float q, float[] out, int from,
            int to) {
        switch (op) {
            case ABS:
                for (int i = from; i < to; i++) {
                    out[i] = Math.abs(x[i]);
                }
                break;
            case NEG:
                for (int i = from; i < to; i++) {
                    out[i] = -x[i];
                }
                break;
            case SQRT:
                // the double square root of a float, rounded to float, is the correctly rounded
                // float square root (double has more than 2 * 24 + 2 significand bits)
                for (int i = from; i < to; i++) {
                    out[i] = (float) Math.sqrt(x[i]);
                }
                break;
            case ROUND:
                for (int i = from; i < to; i++) {
                    out[i] = (float) Math.rint(x[i]);
                }
                break;
            case SIGMOID:
                for (int i = from; i < to; i++) {
                    out[i] = (float) (1.0 / (1.0 + Math.exp(-(double) x[i])));
                }
                break;
            case CLAMP:
                for (int i = from; i < to; i++) {
                    float v = x[i];
                    out[i] = v < p ? p : v > q ? q : v;
                }
                break;
            case ADD_SCALAR:
                for (int i = from; i < to; i++) {
                    out[i] = x[i] + p;
                }
                break;
            case MUL_SCALAR:
                for (int i = from; i < to; i++) {
                    out[i] = x[i] * p;
                }
                break;
            case DIV_SCALAR:
                for (int i = from; i < to; i++) {
                    out[i] = x[i] / p;
                }
                break;
            default:
                throw new AssertionError(op);
        }
    }

    /** out = op(x, y) broadcast as {@code plan} says. x, y: not modified. */
    static float[] binary(Binary op, Broadcast plan, float[] x, float[] y) {
        float[] out = new float[plan.size()];
        plan.forEachRun((o, off, st, len) -> binaryRun(op, x, off[0], st[0], y, off[1], st[1], out,
                o, len));
        return out;
    }

    private static void binaryRun(Binary op, float[] x, int ix, int sx, float[] y, int iy, int sy,
            float[] out, int o, int len) {
        switch (op) {
            case ADD:
                for (int i = 0; i < len; i++) {
                    out[o + i] = x[ix + i * sx] + y[iy + i * sy];
                }
                break;
            case SUB:
                for (int i = 0; i < len; i++) {
                    out[o + i] = x[ix + i * sx] - y[iy + i * sy];
                }
                break;
            case MUL:
                for (int i = 0; i < len; i++) {
                    out[o + i] = x[ix + i * sx] * y[iy + i * sy];
                }
                break;
            case DIV:
                for (int i = 0; i < len; i++) {
                    out[o + i] = x[ix + i * sx] / y[iy + i * sy];
                }
                break;
            case MAXIMUM:
                for (int i = 0; i < len; i++) {
                    out[o + i] = Math.max(x[ix + i * sx], y[iy + i * sy]);
                }
                break;
            case MINIMUM:
                for (int i = 0; i < len; i++) {
                    out[o + i] = Math.min(x[ix + i * sx], y[iy + i * sy]);
                }
                break;
            default:
                throw new AssertionError(op);
        }
    }

    /** BOOL (0/1) out = op(x, y) broadcast as {@code plan} says; false when either is NaN. */
    static byte[] compare(Compare op, Broadcast plan, float[] x, float[] y) {
        byte[] out = new byte[plan.size()];
        plan.forEachRun((o, off, st, len) -> compareRun(op, x, off[0], st[0], y, off[1], st[1], out,
                o, len));
        return out;
    }

    private static void compareRun(Compare op, float[] x, int ix, int sx, float[] y, int iy, int sy,
            byte[] out, int o, int len) {
        switch (op) {
            case GT:
                for (int i = 0; i < len; i++) {
                    out[o + i] = x[ix + i * sx] > y[iy + i * sy] ? (byte) 1 : (byte) 0;
                }
                break;
            case LT:
                for (int i = 0; i < len; i++) {
                    out[o + i] = x[ix + i * sx] < y[iy + i * sy] ? (byte) 1 : (byte) 0;
                }
                break;
            case EQ:
                for (int i = 0; i < len; i++) {
                    out[o + i] = x[ix + i * sx] == y[iy + i * sy] ? (byte) 1 : (byte) 0;
                }
                break;
            default:
                throw new AssertionError(op);
        }
    }

    /** out = cond ? a : b broadcast as {@code plan} says (operands cond, a, b). Not modified. */
    static float[] where(Broadcast plan, byte[] cond, float[] a, float[] b) {
        float[] out = new float[plan.size()];
        plan.forEachRun((o, off, st, len) -> {
            int ic = off[0];
            int sc = st[0];
            int ia = off[1];
            int sa = st[1];
            int ib = off[2];
            int sb = st[2];
            for (int i = 0; i < len; i++) {
                out[o + i] = cond[ic + i * sc] != 0 ? a[ia + i * sa] : b[ib + i * sb];
            }
        });
        return out;
    }
}
