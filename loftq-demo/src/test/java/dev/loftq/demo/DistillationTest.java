package dev.loftq.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import org.junit.jupiter.api.Test;

class DistillationTest {
    @Test
    void cosineDistanceIsZeroForParallelRowsAndOneForOrthogonal() {
        try (NDManager m = NDManager.newBaseManager("PyTorch")) {
            var loss = new Distillation.CosineDistance();
            var t = m.create(new float[] {1, 0, 0, 1}, new Shape(2, 2));
            var same = m.create(new float[] {2, 0, 0, 3}, new Shape(2, 2));
            var orthogonal = m.create(new float[] {0, 1, 1, 0}, new Shape(2, 2));
            assertEquals(0f, loss.evaluate(new NDList(t), new NDList(same)).getFloat(), 1e-6f);
            assertEquals(1f, loss.evaluate(new NDList(t), new NDList(orthogonal)).getFloat(), 1e-6f);
        }
    }

    @Test
    void optionsAreValidated() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new Distillation(0, 16, 1e-3f, 0L));
        assertTrue(e.getMessage().contains("steps") && e.getMessage().contains("got 0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new Distillation(10, 16, -1f, 0L));
        assertTrue(e.getMessage().contains("learningRate"), e.getMessage());
    }
}
