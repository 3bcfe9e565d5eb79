package dev.loftq.djl.backend;

/**
 * {@link DjlBackendCodebookTest} with host kernels and 256-byte transfer chunks, so every copy goes
 * in pieces.
 */
class DjlBackendCodebookChunkedTest extends DjlBackendCodebookTest {
    @Override
    DjlBackend newBackend() {
        return DjlBackend.withChunkBytes(KernelPlacement.HOST, 256);
    }
}
