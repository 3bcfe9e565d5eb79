#!/usr/bin/env bash
# The scale benchmark: a synthetic LLaMA-2-7B-shaped bf16 checkpoint with LAYERS decoder layers
# (32 = the real model; ~13.5 GB of disk under WORK) through LoftQ NF4 r16 T5.
#   benchmarks/scale.sh LAYERS [THREADS] [BUDGET_MB] [--record]
# Prints wall time (generation excluded) and peak RSS; --record appends them to
# benchmarks/results/scale.json. WORK defaults to /tmp/loftq-scale (the checkpoint is reused).
set -euo pipefail
cd "$(dirname "$0")/.."
layers="${1:?usage: benchmarks/scale.sh LAYERS [THREADS] [BUDGET_MB] [--record]}"
shift
mvn -B -ntp -q -DskipTests -pl benchmarks -am package dependency:build-classpath \
    -Dmdep.outputFile=target/classpath.txt -Dmdep.includeScope=runtime
cp="benchmarks/target/classes:$(cat benchmarks/target/classpath.txt)"
# Transparent huge pages for glibc malloc: the engine allocates fresh 100+ MB matrices at every
# step; with 4 KiB pages that cost 10.5 M page faults and 80 s of system time on one 7B-shaped
# layer, with huge pages 0.5 M and 21 s (wall 266 s -> 63 s, same results). Needs glibc >= 2.35.
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}"
# PyTorch's OpenMP threads sleep between operations instead of spinning: on a CPU shared with
# other work (or with our own threads), a spinning team makes each small operation wait for a
# descheduled thread; measured 2x on LoftQ 4096^2 on this 2-core box under load (RESULTS.md).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# --add-modules: the SIMD kernels of the codebook quantizers (README, "SIMD kernels").
exec java -Xmx1500m --add-modules jdk.incubator.vector -Dai.djl.offline=true -cp "$cp" dev.loftq.bench.ScaleBenchmark \
    "${WORK:-/tmp/loftq-scale}" "$layers" "$@"
