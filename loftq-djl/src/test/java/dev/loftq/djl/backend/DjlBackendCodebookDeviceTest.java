package dev.loftq.djl.backend;

/** {@link DjlBackendCodebookTest} with the coarse kernels {@link KernelPlacement#DEVICE}. */
class DjlBackendCodebookDeviceTest extends DjlBackendCodebookTest {
    @Override
    KernelPlacement placement() {
        return KernelPlacement.DEVICE;
    }
}
