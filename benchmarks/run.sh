#!/usr/bin/env bash
# Builds the project and runs one JMH suite, e.g.: benchmarks/run.sh matmul
# Figures are printed and appended to benchmarks/results/<suite>.json;
# benchmarks/run.sh SUITE --quick runs one short iteration and records nothing (a smoke test).
set -euo pipefail
cd "$(dirname "$0")/.."
suite="${1:?usage: benchmarks/run.sh SUITE}"
mvn -B -ntp -q -DskipTests -pl benchmarks -am package dependency:build-classpath \
    -Dmdep.outputFile=target/classpath.txt -Dmdep.includeScope=runtime
cp="benchmarks/target/classes:$(cat benchmarks/target/classpath.txt)"
shift
# glibc malloc on transparent huge pages: PyTorch's CPU tensors come from malloc, and fresh
# 64 MB matrices with 4 KiB pages spend most of their time in page faults (see RESULTS.md).
# Set before the JVM starts, so it applies to every backend and baseline of a suite alike.
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}"
# PyTorch's OpenMP threads sleep between operations instead of spinning: on a CPU shared with
# other work (or with our own threads), a spinning team makes each small operation wait for a
# descheduled thread; measured 2x on LoftQ 4096^2 on this 2-core box under load (RESULTS.md).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# --add-modules: the SIMD kernels of the codebook quantizers (README, "SIMD kernels").
exec java -Xmx2g --add-modules jdk.incubator.vector -Dai.djl.offline=true -cp "$cp" dev.loftq.bench.BenchMain "$suite" benchmarks/results "$@"
