package dev.loftq.djl.backend;

import static dev.loftq.djl.backend.Oracles.assertBits;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import dev.loftq.core.tensor.BucketTable;
import dev.loftq.core.tensor.DType;
import dev.loftq.core.tensor.PackOrder;
import dev.loftq.core.tensor.ScaleMode;
import dev.loftq.core.tensor.Tensor;
import dev.loftq.core.tensor.TensorScope;
import dev.loftq.core.testkit.ForeignTensor;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Scopes, ownership, leaks, interop and error reporting of the DJL backend. */
class DjlBackendLifecycleTest {
    private static DjlBackend backend;

    @BeforeAll
    static void openBackend() {
        backend = DjlBackend.cpu();
    }

    @AfterAll
    static void closeBackend() {
        backend.close();
    }

    /** Every live NDArray of the PyTorch engine in this JVM (the system manager's tree). */
    private static int engineArrays() {
        try (NDManager probe = Engine.getEngine("PyTorch").newBaseManager()) {
            return probe.getParentManager().getManagedArrays().size();
        }
    }

    /** Runs {@code op} and checks that exactly one array (its result) was added to the backend. */
    private static Tensor one(List<NDArray> made, Supplier<Tensor> op) {
        return one(backend, made, op);
    }

    private static Tensor one(DjlBackend b, List<NDArray> made, Supplier<Tensor> op) {
        int before = b.liveArrayCount();
        Tensor r = op.get();
        assertEquals(before + 1, b.liveArrayCount(), "an op must leave exactly its result");
        made.add(DjlBackend.ndArray(r));
        return r;
    }

    private static void none(Runnable op) {
        none(backend, op);
    }

    private static void none(DjlBackend b, Runnable op) {
        int before = b.liveArrayCount();
        op.run();
        assertEquals(before, b.liveArrayCount(), "a host read must leave no array");
    }

    @Test
    void chunkedTransfersRoundTripAndLeaveNothingBehind() {
        try (DjlBackend b = DjlBackend.withChunkBytes(KernelPlacement.HOST, 64);
                TensorScope root = b.newScope()) {
            float[] v = Oracles.data(9, 1001);
            byte[] bytes = new byte[1001];
            for (int i = 0; i < bytes.length; i++) {
                bytes[i] = (byte) (i * 7);
            }
            List<NDArray> made = new ArrayList<>();
            Tensor x = one(b, made, () -> root.fromHost(v, 7, 143));
            Tensor u = one(b, made, () -> root.fromHostBytes(bytes, 1001));
            Tensor t = one(b, made, () -> root.transpose(x));
            none(b, () -> assertBits(v, root.toFloatArray(x), "chunked float round trip"));
            none(b, () -> assertArrayEquals(bytes, root.toByteArray(u), "chunked byte round trip"));
            none(b, () -> assertBits(Oracles.transpose(v, 7, 143), root.toFloatArray(t),
                    "chunked strided read"));
            double expected = 0;
            for (float f : Oracles.normals(10, 999)) {
                expected += (double) f * f;
            }
            Tensor n = root.fromHost(Oracles.normals(10, 999), 999);
            assertEquals(expected, root.sumOfSquares(n), expected * 1e-12);
            assertEquals(expected, root.sumOfSquares(root.transpose(root.reshape(n, 27, 37))),
                    expected * 1e-12);
            assertBits(new float[] {3.5f}, root.toFloatArray(root.fromHost(new float[] {3.5f})),
                    "one element");
            assertTrue(b.staging().allocations() <= 2, "chunks reuse one staging buffer");
        }
    }

    @Test
    void coarseKernelsOnTheDeviceLeaveNothingBehind() {
        int engineBefore = engineArrays();
        try (DjlBackend b = DjlBackend.on(Device.cpu(), KernelPlacement.DEVICE);
                TensorScope root = b.newScope()) {
            assertEquals(KernelPlacement.DEVICE, b.placement());
            Tensor a = root.fromHost(Oracles.data(1, 15), 3, 5);
            Tensor codes = root.fromHostBytes(new byte[] {0, 1, 2, 3, 4, 5, 6, 7, 1, 2, 3}, 11);
            Tensor table = root.fromHost(DjlBackendCodebookTest.NF4, 16);
            Tensor scales = root.fromHost(new float[] {1f, 2f, 3f}, 3);
            Tensor shortTable = root.sliceRows(table, 0, 8);
            Tensor transposed = root.transpose(a);
            int rootCount = b.liveArrayCount();
            List<NDArray> made = new ArrayList<>();
            try (TensorScope s = root.newChild()) {
                one(b, made, () -> s.blockAbsMax(a, 4));
                one(b, made, () -> s.blockAbsMax(a, 5));
                one(b, made, () -> s.blockAbsMax(a, 64));
                one(b, made, () -> s.gather(table, codes));
                one(b, made, () -> s.decode(codes, table, scales, 4));
                one(b, made, () -> s.decode(codes, shortTable, scales, 4));
                none(b, () -> s.sumOfSquares(a));
                none(b, () -> s.sumOfSquares(transposed));
            }
            made.forEach(nd -> assertTrue(nd.isReleased()));
            assertEquals(rootCount, b.liveArrayCount());
        }
        assertEquals(engineBefore, engineArrays());
    }

    @Test
    void opsInAChildScopeLeaveNothingBehind() {
        int engineBefore = engineArrays();
        int before = backend.liveArrayCount();
        float[] av = Oracles.data(1, 12);
        try (TensorScope root = backend.newScope()) {
            Tensor a = root.fromHost(av, 3, 4);
            Tensor b = root.fromHost(Oracles.data(2, 4), 4);
            Tensor m = root.fromHost(Oracles.normals(3, 20), 4, 5);
            Tensor codes = root.fromHostBytes(new byte[] {0, 1, 2, 3, 4, 5, 6, 7}, 2, 4);
            Tensor table = root.fromHost(DjlBackendCodebookTest.NF4, 16);
            int rootCount = backend.liveArrayCount();
            List<NDArray> made = new ArrayList<>();
            try (TensorScope s = root.newChild()) {
                Tensor t = one(made, () -> s.transpose(a));
                Tensor col = one(made, () -> s.sliceColumns(a, 1, 2));
                none(() -> s.toFloatArray(t));
                none(() -> s.toFloatArray(col));
                none(() -> s.sumOfSquares(t));
                Tensor scalar = one(made, () -> s.full(2f));
                none(() -> s.item(scalar));
                none(() -> s.toByteArray(codes));
                one(made, () -> s.fromHost(av, 12));
                one(made, () -> s.fromHostBytes(new byte[] {1, 2}, 2));
                one(made, () -> s.full(1f, 2, 2));
                one(made, () -> s.randomNormal(1, 0, 1, 5));
                one(made, () -> s.reshape(a, 4, 3));
                one(made, () -> s.sliceRows(a, 1, 2));
                one(made, () -> s.concat(0, a, a));
                one(made, () -> s.cast(a, DType.UINT8));
                one(made, () -> s.cast(codes, DType.FLOAT32));
                one(made, () -> s.add(a, b));
                one(made, () -> s.sub(a, b));
                one(made, () -> s.mul(a, b));
                one(made, () -> s.div(a, b));
                one(made, () -> s.add(a, 1f));
                one(made, () -> s.mul(a, 2f));
                one(made, () -> s.div(a, 3f));
                one(made, () -> s.abs(a));
                one(made, () -> s.neg(a));
                one(made, () -> s.sqrt(a));
                one(made, () -> s.round(a));
                one(made, () -> s.clamp(a, -1f, 1f));
                one(made, () -> s.clamp(a, 0f, 1f));
                one(made, () -> s.sigmoid(a));
                one(made, () -> s.maximum(a, b));
                one(made, () -> s.minimum(a, b));
                Tensor gt = one(made, () -> s.gt(a, b));
                one(made, () -> s.lt(a, b));
                one(made, () -> s.eq(a, b));
                one(made, () -> s.where(gt, a, b));
                one(made, () -> s.maxLast(a));
                one(made, () -> s.minLast(a));
                one(made, () -> s.sumLast(a));
                one(made, () -> s.meanLast(a));
                one(made, () -> s.matmul(a, true, a, false));
                one(made, () -> s.matmul(m, false, m, true));
                one(made, () -> s.gather(table, codes));
                Tensor absmax = one(made, () -> s.blockAbsMax(a, 5));
                BucketTable nf4 = BucketTable.identityCodes(
                        DjlBackendCodebookTest.midpoints(DjlBackendCodebookTest.NF4));
                one(made, () -> s.encode(a, absmax, 5, ScaleMode.DIVIDE, nf4));
                Tensor twoScales = one(made, () -> s.sliceRows(absmax, 0, 2));
                one(made, () -> s.decode(codes, table, twoScales, 5));
                Tensor packed = one(made, () -> s.pack(codes, 4, PackOrder.MSB_FIRST, 0));
                one(made, () -> s.unpack(packed, 4, PackOrder.MSB_FIRST, 8));
                try (TensorScope grandChild = s.newChild()) {
                    made.add(DjlBackend.ndArray(grandChild.add(a, a)));
                }
                assertTrue(backend.liveArrayCount() > rootCount);
            }
            for (NDArray nd : made) {
                assertTrue(nd.isReleased(), "an array made in the child scope is still alive");
            }
            assertEquals(rootCount, backend.liveArrayCount(),
                    "nothing may leak into the inputs' scope");
            assertTrue(a.isAlive());
            assertBits(av, root.toFloatArray(a), "inputs are not modified");
        }
        assertEquals(before, backend.liveArrayCount());
        assertEquals(engineBefore, engineArrays(),
                "nothing may leak outside the backend's managers");
    }

    @Test
    void keepMovesResultsBetweenScopes() {
        try (TensorScope root = backend.newScope()) {
            Tensor kept;
            Tensor dropped;
            Tensor movedDown;
            float[] v = {1f, 2f, 3f};
            TensorScope other = root.newChild();
            try (TensorScope child = root.newChild()) {
                kept = root.keep(child.mul(child.fromHost(v, 3), 2f));
                dropped = child.fromHost(v, 3);
                movedDown = other.keep(child.fromHost(v, 3));
                assertSame(kept, root.keep(kept), "keep returns its argument");
            }
            assertTrue(kept.isAlive());
            assertFalse(dropped.isAlive());
            assertTrue(movedDown.isAlive());
            assertBits(new float[] {2f, 4f, 6f}, root.toFloatArray(kept), "kept");
            other.close();
            assertFalse(movedDown.isAlive());
            assertFalse(other.isOpen());
        }
    }

    @Test
    void closingIsIdempotentAndCascades() {
        TensorScope root = backend.newScope();
        TensorScope child = root.newChild();
        Tensor t = child.fromHost(new float[] {1f}, 1);
        root.close();
        root.close();
        assertFalse(root.isOpen());
        assertFalse(child.isOpen());
        assertFalse(t.isAlive());
        child.close();
    }

    @Test
    void useAfterCloseThrowsIllegalStateNamingTheOp() {
        TensorScope root = backend.newScope();
        Tensor alive = root.fromHost(new float[] {1f, 2f}, 2);
        Tensor dead;
        try (TensorScope child = root.newChild()) {
            dead = child.fromHost(new float[] {1f, 2f}, 2);
        }
        IllegalStateException e =
                assertThrows(IllegalStateException.class, () -> root.add(alive, dead));
        assertTrue(e.getMessage().startsWith("add: b")
                && e.getMessage().contains("no longer alive"), e.getMessage());
        e = assertThrows(IllegalStateException.class, () -> root.keep(dead));
        assertTrue(e.getMessage().startsWith("keep:"), e.getMessage());
        e = assertThrows(IllegalStateException.class, () -> DjlBackend.ndArray(dead));
        assertTrue(e.getMessage().startsWith("ndArray:"), e.getMessage());
        root.close();
        e = assertThrows(IllegalStateException.class, () -> root.fromHost(new float[1], 1));
        assertEquals("fromHost: scope is closed", e.getMessage());
        e = assertThrows(IllegalStateException.class, () -> root.matmul(alive, alive));
        assertTrue(e.getMessage().startsWith("matmul:"), e.getMessage());
        e = assertThrows(IllegalStateException.class, root::newChild);
        assertTrue(e.getMessage().startsWith("newChild:"), e.getMessage());
    }

    @Test
    void closedBackendRefusesScopesAndFreesEverything() {
        DjlBackend b = DjlBackend.cpu();
        TensorScope s = b.newScope();
        Tensor t = s.fromHost(new float[] {1f}, 1);
        assertEquals(1, b.liveArrayCount());
        b.close();
        b.close();
        assertFalse(t.isAlive());
        assertFalse(s.isOpen());
        assertFalse(b.isOpen());
        IllegalStateException e = assertThrows(IllegalStateException.class, b::newScope);
        assertTrue(e.getMessage().contains("newScope") && e.getMessage().contains("closed"),
                e.getMessage());
    }

    @Test
    void tensorsOfAnotherBackendAreRejected() {
        try (TensorScope s = backend.newScope(); DjlBackend other = DjlBackend.cpu();
                TensorScope os = other.newScope()) {
            Tensor mine = s.fromHost(new float[] {1f, 2f, 3f, 4f}, 2, 2);
            Tensor foreign = new ForeignTensor();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> s.add(mine, foreign));
            assertTrue(e.getMessage().startsWith("add: b") && e.getMessage().contains("'foreign'"),
                    e.getMessage());
            Tensor theirs = os.fromHost(new float[] {1f, 2f, 3f, 4f}, 2, 2);
            e = assertThrows(IllegalArgumentException.class, () -> s.matmul(theirs, mine));
            assertTrue(e.getMessage().startsWith("matmul: a") && e.getMessage().contains("another"),
                    e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> s.keep(theirs));
            assertTrue(e.getMessage().startsWith("keep:"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> DjlBackend.ndArray(foreign));
            assertTrue(e.getMessage().startsWith("ndArray:"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> s.add(mine, null));
            assertTrue(e.getMessage().contains("must not be null"), e.getMessage());
        }
    }

    @Test
    void argumentErrorsNameOpValuesAndWhatIsAllowed() {
        try (TensorScope s = backend.newScope()) {
            Tensor a = s.fromHost(new float[6], 2, 3);
            Tensor b = s.fromHost(new float[20], 4, 5);
            Tensor u = s.fromHostBytes(new byte[6], 2, 3);
            expect("matmul: inner dimensions differ: op(a) is [2, 3]", () -> s.matmul(a, b));
            expect("op(b) is [5, 4]", () -> s.matmul(a, false, b, true));
            expect("matmul: a and b must be 2-D", () -> s.matmul(s.reshape(a, 6), b));
            expect("add: shapes [2, 3] and [4, 5] do not broadcast", () -> s.add(a, b));
            expect("add: a must be FLOAT32, got UINT8", () -> s.add(u, a));
            expect("where: cond must be BOOL, got FLOAT32", () -> s.where(a, a, a));
            expect("reshape: cannot reshape [2, 3]", () -> s.reshape(a, 4, -1));
            expect("transpose: t must be 2-D", () -> s.transpose(s.reshape(a, 6)));
            expect("sliceRows: [1, 3) is not a range of the 2 rows", () -> s.sliceRows(a, 1, 3));
            expect("sliceColumns: [2, 1)", () -> s.sliceColumns(a, 2, 1));
            expect("concat: parts[1] is FLOAT32 [4, 5]", () -> s.concat(0, a, b));
            expect("concat: axis must be in [-2, 1]", () -> s.concat(2, a, a));
            expect("concat: parts[1] is UINT8", () -> s.concat(0, a, u));
            expect("cast: cannot cast FLOAT32 to BOOL", () -> s.cast(a, DType.BOOL));
            expect("clamp: requires lo <= hi, got lo=1.0, hi=0.0", () -> s.clamp(a, 1f, 0f));
            expect("clamp: requires lo <= hi, got lo=NaN", () -> s.clamp(a, Float.NaN, 0f));
            expect("maxLast: a must have rank >= 1", () -> s.maxLast(s.full(1f)));
            expect("meanLast: the last axis must not be empty", () -> s.meanLast(s.full(1f, 3, 0)));
            expect("fromHost: data has 5 elements but shape [2, 3] needs 6",
                    () -> s.fromHost(new float[5], 2, 3));
            expect("fromHost: dimensions must be >= 0", () -> s.fromHost(new float[0], -1));
            expect("toFloatArray: t must be FLOAT32, got UINT8", () -> s.toFloatArray(u));
            expect("toByteArray: t must be UINT8 or BOOL", () -> s.toByteArray(a));
            expect("item: tensor must have exactly 1 element", () -> s.item(a));
            expect("randomNormal: mean and std must be finite with std >= 0",
                    () -> s.randomNormal(1, 0f, -1f, 2));
        }
    }

    private static void expect(String messageStart, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(messageStart), "expected a message containing '"
                + messageStart + "', got '" + e.getMessage() + "'");
    }

    // ---- interop --------------------------------------------------------------------------------

    @Test
    void wrapSharesStorageAndNeverTouchesTheCallersManager() {
        try (NDManager user = Engine.getEngine("PyTorch").newBaseManager(Device.cpu())) {
            NDArray array = user.zeros(new Shape(2, 3), DataType.FLOAT32).add(1.5f);
            int userArrays = user.getManagedArrays().size();
            Tensor w;
            NDArray extra;
            TensorScope s = backend.newScope();
            try {
                w = DjlBackend.wrap(s, array);
                assertArrayEquals(new int[] {2, 3}, w.shape());
                assertEquals(DType.FLOAT32, w.dtype());
                Tensor sum = s.add(w, w);
                s.toFloatArray(s.transpose(w));
                assertBits(new float[] {3f, 3f, 3f, 3f, 3f, 3f}, s.toFloatArray(sum),
                        "op on a wrapped array");
                assertEquals(userArrays, user.getManagedArrays().size(),
                        "results must not land in the "
                        + "caller's manager");
                NDArray back = DjlBackend.ndArray(sum);
                assertEquals(new Shape(2, 3), back.getShape());
                assertSame(DjlBackend.manager(s), back.getManager());
                extra = DjlBackend.manager(s).ones(new Shape(2));
            } finally {
                s.close();
            }
            assertTrue(extra.isReleased(), "arrays made with the scope's manager die with it");
            assertFalse(w.isAlive());
            assertFalse(array.isReleased(), "the wrapped array stays owned by its manager");
            assertArrayEquals(new float[] {1.5f, 1.5f, 1.5f, 1.5f, 1.5f, 1.5f},
                    array.toFloatArray());
        }
    }

    @Test
    void wrapRejectsWhatTheSpiCannotHold() {
        try (NDManager user = Engine.getEngine("PyTorch").newBaseManager(Device.cpu());
                TensorScope s = backend.newScope()) {
            NDArray ints = user.zeros(new Shape(2), DataType.INT32);
            expect("wrap: data type int32 is not supported", () -> DjlBackend.wrap(s, ints));
            NDArray bools = user.zeros(new Shape(2), DataType.FLOAT32).gt(0f);
            assertEquals(DType.BOOL, DjlBackend.wrap(s, bools).dtype());
            NDArray closed = user.zeros(new Shape(2));
            closed.close();
            assertThrows(IllegalStateException.class, () -> DjlBackend.wrap(s, closed));
            expect("wrap: array must not be null", () -> DjlBackend.wrap(s, null));
        }
    }

    @Test
    void backendIdentity() {
        assertEquals("djl-pytorch", backend.name());
        assertEquals("cpu()", backend.device());
        assertTrue(backend.hasAutograd());
        try (DjlBackend best = DjlBackend.best()) {
            assertEquals(Engine.getEngine("PyTorch").getGpuCount() > 0 ? "gpu(0)" : "cpu()",
                    best.device());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DjlBackend.on(Device.gpu(Engine.getEngine("PyTorch").getGpuCount())));
        assertTrue(e.getMessage().contains("not available"), e.getMessage());
    }

    @Test
    void stagingBuffersAreReused() {
        long before = backend.staging().allocations();
        try (TensorScope s = backend.newScope()) {
            for (int i = 0; i < 10; i++) {
                s.fromHost(new float[1000], 1000);
                s.fromHostBytes(new byte[300], 300);
            }
        }
        assertTrue(backend.staging().allocations() - before <= 1,
                "uploads must reuse staging buffers");
    }

    @Test
    void stagingPoolPolicy() {
        StagingBuffers pool = new StagingBuffers(2, 4 << 20);
        java.nio.ByteBuffer a = pool.acquire(10);
        assertEquals(java.nio.ByteOrder.nativeOrder(), a.order());
        assertEquals(0, a.position());
        assertEquals(10, a.limit());
        assertTrue(a.isDirect());
        java.nio.ByteBuffer b = pool.acquire(10);
        assertEquals(2, pool.allocations(), "a buffer in use is not handed out twice");
        pool.release(a);
        pool.release(b);
        java.nio.ByteBuffer c = pool.acquire(3 << 20);
        assertEquals(3, pool.allocations());
        pool.release(c);
        assertEquals(2, pool.pooled());
        assertSame(c, pool.acquire(2 << 20), "the smallest fitting buffer is reused");
        assertEquals(1, pool.pooled());
        java.nio.ByteBuffer big = pool.acquire(5 << 20);
        pool.release(big);
        assertEquals(1, pool.pooled(), "buffers over the size limit are not kept");
        assertThrows(IllegalArgumentException.class, () -> pool.acquire(-1));
    }
}
