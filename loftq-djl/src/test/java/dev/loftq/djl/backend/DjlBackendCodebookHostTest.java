package dev.loftq.djl.backend;

/** {@link DjlBackendCodebookTest} with the coarse kernels {@link KernelPlacement#HOST}. */
class DjlBackendCodebookHostTest extends DjlBackendCodebookTest {
    @Override
    KernelPlacement placement() {
        return KernelPlacement.HOST;
    }
}
