package dev.loftq.quant.quantizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.loftq.core.ref.ReferenceBackend;
import dev.loftq.core.tensor.HostRandom;
import dev.loftq.core.tensor.TensorScope;
import java.util.Arrays;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/** The common ratio's sample: the blocks 0, stride, 2·stride, … whatever the tensor's length. */
class MseScaleSearchTest {

    @Property(tries = 200)
    void sampleHoldsEveryStridethBlockInOrder(@ForAll @IntRange(min = 1, max = 3000) int n,
            @ForAll @IntRange(min = 0, max = 3) int blockSizeLog, @ForAll @IntRange(min = 1,
                    max = 40) int stride) {
        int blockSize = 8 << blockSizeLog;
        int nb = (n + blockSize - 1) / blockSize;
        int s = Math.min(stride, nb);
        float[] x = HostRandom.normal(n, 0f, 1f, n);
        float[] expected = new float[((nb + s - 1) / s) * blockSize];
        for (int b = 0, k = 0; b < nb; b += s, k++) {
            int from = b * blockSize;
            System.arraycopy(x, from, expected, k * blockSize, Math.min(blockSize, n - from));
        }
        try (TensorScope scope = new ReferenceBackend().newScope()) {
            float[] got = MseScaleSearch.sample(scope, scope.fromHost(x, n), n, blockSize, s);
            assertArrayEquals(expected, got, () -> "n=" + n + " blockSize=" + blockSize
                    + " stride=" + s + " got " + Arrays.toString(got));
        }
    }
}
