package dev.loftq.djl.backend;

/** {@link DjlBackendCodebookTest} with the coarse kernels {@link KernelPlacement#HOST}. */
class DjlBackendCodebookHostTest extends DjlBackendCodebookTest {
    @Override
    DjlBackend newBackend() {
        return DjlBackend.on(ai.djl.Device.cpu(), KernelPlacement.HOST);
    }
}
