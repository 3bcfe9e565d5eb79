package dev.loftq.djl.backend;

import static dev.loftq.djl.backend.Oracles.assertBits;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.loftq.core.tensor.Autograd;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** PyTorch autograd through the SPI's {@link Autograd}. */
class DjlAutogradTest {
    private static DjlBackend backend;
    private static Autograd autograd;
    private TensorScope scope;

    @BeforeAll
    static void openBackend() {
        backend = DjlBackend.cpu();
        autograd = backend.autograd().orElseThrow();
    }

    @AfterAll
    static void closeBackend() {
        backend.close();
    }

    @BeforeEach
    void openScope() {
        scope = backend.newScope();
    }

    @AfterEach
    void closeScope() {
        scope.close();
    }

    /** sum(a * a) as a rank-0 tensor, through SPI ops only. */
    private Tensor sumOfSquares(Tensor a) {
        return scope.sumLast(scope.reshape(scope.mul(a, a), -1));
    }

    @Test
    void gradientOfSumOfSquaresIsTwiceTheInput() {
        float[] v = Oracles.normals(1, 12);
        Tensor a = scope.fromHost(v, 3, 4);
        autograd.requireGradient(a);
        try (Autograd.Tape tape = autograd.record()) {
            Tensor loss = sumOfSquares(a);
            assertEquals(0, loss.rank());
            tape.backward(loss);
        }
        Tensor g = autograd.gradient(a);
        assertArrayEquals(new int[] {3, 4}, g.shape());
        float[] twice = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            twice[i] = 2f * v[i];
        }
        assertBits(twice, scope.toFloatArray(g), "d sum(a*a) / da");
    }

    @Test
    void gradientsAccumulateUntilRequireGradientResetsThem() {
        float[] v = {1f, -2f, 3f};
        Tensor a = scope.fromHost(v, 3);
        autograd.requireGradient(a);
        for (int pass = 0; pass < 2; pass++) {
            try (Autograd.Tape tape = autograd.record()) {
                tape.backward(sumOfSquares(a));
            }
        }
        Tensor accumulated = autograd.gradient(a);
        assertBits(new float[] {4f, -8f, 12f}, scope.toFloatArray(accumulated), "two passes");
        autograd.requireGradient(a);
        assertBits(new float[] {0f, 0f, 0f}, scope.toFloatArray(autograd.gradient(a)),
                "after reset");
        try (Autograd.Tape tape = autograd.record()) {
            tape.backward(sumOfSquares(a));
        }
        assertBits(new float[] {2f, -4f, 6f}, scope.toFloatArray(autograd.gradient(a)), "one pass");
        assertBits(new float[] {4f, -8f, 12f}, scope.toFloatArray(accumulated),
                "a handed-out gradient "
                + "never changes");
    }

    @Test
    void stopGradientCutsTheGraph() {
        float[] v = {1f, -2f, 3f};
        Tensor a = scope.fromHost(v, 3);
        autograd.requireGradient(a);
        try (Autograd.Tape tape = autograd.record()) {
            Tensor stopped = autograd.stopGradient(scope, a);
            tape.backward(scope.sumLast(scope.mul(stopped, a)));
        }
        assertBits(v, scope.toFloatArray(autograd.gradient(a)), "d sum(stop(a)*a) / da");
    }

    @Test
    void gradientsFlowThroughTheExactPaths() {
        // sqrt and sigmoid take a float64 detour, maximum a where: all must stay differentiable.
        float[] v = {0.25f, 1f, 4f};
        Tensor a = scope.fromHost(v, 3);
        Tensor b = scope.fromHost(new float[] {1f, 0f, 5f}, 3);
        autograd.requireGradient(a);
        try (Autograd.Tape tape = autograd.record()) {
            Tensor y = scope.add(scope.add(scope.sqrt(a), scope.sigmoid(a)), scope.maximum(a, b));
            y = scope.add(y, scope.clamp(a, 0.5f, 2f));
            y = scope.sub(y, scope.where(scope.gt(a, b), scope.div(a, 2f), b));
            // y · 1 as a [1, 1] matmul, then a one-element sum: a single-element loss of rank 1.
            tape.backward(scope.sumLast(scope.matmul(scope.reshape(y, 1, 3), scope.full(1f, 3,
                    1))));
        }
        float[] g = scope.toFloatArray(autograd.gradient(a));
        for (int i = 0; i < 3; i++) {
            double s = 1 / (1 + Math.exp(-v[i]));
            // sqrt' + sigmoid' + maximum' (a > b only at 1) + clamp' (inside only at 1) - where'
            double onlyAtOne = i == 1 ? 1 + 1 - 0.5 : 0;
            double expected = 0.5 / Math.sqrt(v[i]) + s * (1 - s) + onlyAtOne;
            assertEquals(expected, g[i], 1e-6, "element " + i);
        }
    }

    @Test
    void clampPassesTheGradientInsideItsBoundsOnly() {
        // PyTorch's clamp gradient: 1 where lo <= x <= hi (the bounds included), 0 elsewhere and
        // for NaN; ApiQ's integer codes sit on the bounds often
        float[] v = {-1f, 1f, Math.nextDown(-1f), Math.nextUp(1f), 0f, -0f, 0.5f, Float.NaN,
            Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
        float[] values = {-1f, 1f, -1f, 1f, 0f, -0f, 0.5f, Float.NaN, 1f, -1f};
        float[] slopes = {1f, 1f, 0f, 0f, 1f, 1f, 1f, 0f, 0f, 0f};
        Tensor a = scope.fromHost(v, v.length);
        autograd.requireGradient(a);
        Tensor y;
        try (Autograd.Tape tape = autograd.record()) {
            y = scope.clamp(a, -1f, 1f);
            // the sum of clamp(a) with its NaN replaced by 0: a finite loss
            Tensor finite = scope.where(scope.eq(y, y), y, scope.full(0f, 1));
            tape.backward(scope.sumLast(finite));
        }
        assertBits(values, scope.toFloatArray(y), "clamp(a, -1, 1)");
        assertBits(slopes, scope.toFloatArray(autograd.gradient(a)), "d sum(clamp(a, -1, 1)) / da");
    }

    /**
     * Issue 8 (ApiQ-bw's garbage LoRA gradients): the float operands that autograd saves for the
     * backward pass ({@code x * s}, {@code x / s}, clamp's bounds) must survive a garbage
     * collection between the forward and the backward pass. Made by DJL's {@code Number}
     * overloads, they were tensors over Java direct buffers that the GC frees (glibc then writes
     * its free-list pointer into them), so the gradient came out scaled by garbage.
     */
    @Test
    void floatOperandsSurviveAGcBetweenForwardAndBackward() throws InterruptedException {
        float[] v = {0.5f, -1.25f, 2f, 3.5f, 0.75f, -0.25f};
        float[] expected = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            // d/dx of (x * 3) / 0.5 + clamp(x, -1, 1) + (x + 7)
            expected[i] = 6f + (Math.abs(v[i]) <= 1f ? 1f : 0f) + 1f;
        }
        for (int round = 0; round < 3; round++) {
            try (TensorScope s = scope.newChild()) {
                Tensor leaf = s.fromHost(v, v.length);
                autograd.requireGradient(leaf);
                try (Autograd.Tape tape = autograd.record()) {
                    Tensor x = s.sliceRows(leaf, 0, v.length); // a view, as ApiQ's factors are
                    Tensor y = s.add(s.div(s.mul(x, 3f), 0.5f), s.clamp(x, -1f, 1f));
                    Tensor loss = s.sumLast(s.add(y, s.add(x, 7f)));
                    DirectBuffers.freeUnreachable();
                    tape.backward(loss);
                }
                assertBits(expected, s.toFloatArray(autograd.gradient(leaf)),
                        "gradient after a GC, round " + round);
            }
        }
    }

    @Test
    void exactPathsAreDifferentiableOnViews() {
        // ApiQ's clipping logits are slices of one flat leaf: sqrt and sigmoid of a non-leaf.
        float[] v = {0.25f, 1f, 4f};
        Tensor a = scope.fromHost(v, 3);
        autograd.requireGradient(a);
        try (Autograd.Tape tape = autograd.record()) {
            Tensor x = scope.sliceRows(a, 0, 3);
            tape.backward(scope.sumLast(scope.add(scope.sqrt(x), scope.sigmoid(x))));
        }
        float[] g = scope.toFloatArray(autograd.gradient(a));
        for (int i = 0; i < 3; i++) {
            double s = 1 / (1 + Math.exp(-v[i]));
            assertEquals(0.5 / Math.sqrt(v[i]) + s * (1 - s), g[i], 1e-6, "element " + i);
        }
    }

    @Test
    void exactPathsKeepTheirBitsWhileRecording() {
        // While recording, sqrt and sigmoid must give the same bits as without a tape.
        float[] v = new float[4096];
        for (int i = 0; i < v.length; i++) {
            v[i] = i < 4 ? new float[] {-0f, 0f, Float.POSITIVE_INFINITY,
                    -100f}[i] : (i - 2048) * 0.0731f;
        }
        Tensor a = scope.fromHost(v, v.length);
        float[] sqrt = scope.toFloatArray(scope.sqrt(a));
        float[] sigmoid = scope.toFloatArray(scope.sigmoid(a));
        autograd.requireGradient(a);
        try (Autograd.Tape tape = autograd.record()) {
            Tensor rs = scope.sqrt(a);
            Tensor rg = scope.sigmoid(a);
            Oracles.assertBits(sqrt, scope.toFloatArray(rs), "sqrt while recording");
            Oracles.assertBits(sigmoid, scope.toFloatArray(rg), "sigmoid while recording");
            tape.backward(scope.sumLast(rg));
        }
        float[] g = scope.toFloatArray(autograd.gradient(a));
        assertEquals(0.25f, g[0], 1e-7f);
    }

    @Test
    void misuseIsReported() {
        Tensor a = scope.fromHost(new float[] {1f, 2f}, 2);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> autograd.gradient(a));
        assertTrue(e.getMessage().startsWith("gradient:"), e.getMessage());
        autograd.requireGradient(a);
        Autograd.Tape tape = autograd.record();
        try {
            e = assertThrows(IllegalStateException.class, autograd::record);
            assertTrue(e.getMessage().contains("another tape"), e.getMessage());
            IllegalArgumentException iae = assertThrows(IllegalArgumentException.class,
                    () -> tape.backward(scope.mul(a, a)));
            assertTrue(iae.getMessage().contains("single FLOAT32 element"), iae.getMessage());
            iae = assertThrows(IllegalArgumentException.class,
                    () -> tape.backward(scope.sumLast(scope.fromHost(new float[] {1f}, 1))));
            assertTrue(iae.getMessage().startsWith("backward:"), iae.getMessage());
            iae = assertThrows(IllegalArgumentException.class,
                    () -> autograd.requireGradient(scope.fromHostBytes(new byte[] {1}, 1)));
            assertTrue(iae.getMessage().contains("FLOAT32"), iae.getMessage());
        } finally {
            tape.close();
        }
        tape.close();
        e = assertThrows(IllegalStateException.class, () -> tape.backward(sumOfSquares(a)));
        assertTrue(e.getMessage().contains("tape is closed"), e.getMessage());
        try (Autograd.Tape again = autograd.record()) {
            again.backward(sumOfSquares(a));
        }
        assertBits(new float[] {2f, 4f}, scope.toFloatArray(autograd.gradient(a)),
                "after a refused tape");
    }

    @Test
    void autogradInAChildScopeLeavesNothingBehind() {
        Tensor a = scope.fromHost(new float[] {1f, 2f, 3f}, 3);
        autograd.requireGradient(a);
        int before = backend.liveArrayCount();
        Tensor g;
        try (TensorScope child = scope.newChild()) {
            try (Autograd.Tape tape = autograd.record()) {
                tape.backward(child.sumLast(child.mul(a, a)));
            }
            g = autograd.gradient(a);
            assertEquals(before + 3, backend.liveArrayCount(),
                    "product, loss and the gradient (owned by "
                    + "the leaf's scope)");
        }
        assertEquals(before + 1, backend.liveArrayCount(),
                "only the gradient, kept by the leaf's scope");
        assertTrue(g.isAlive());
    }
}
