#!/usr/bin/env bash
# The real-model demo in one command, from a fresh clone: builds loftq-demo and the modules it needs
# (tests skipped; nothing is installed into ~/.m2), then runs it, forwarding the arguments:
#   ./demo.sh                     # the full demo into demo-out/ (under 10 min on 2 cores)
#   ./demo.sh --help              # options: --out, --steps, --eval-sentences, --threads, ...
#   ./demo.sh apiq [options]      # the ApiQ table (issue 8) into apiq-out/; ./demo.sh apiq --help
# Needs Java 17+ and Maven 3.8+; the build downloads from Maven Central once, the run is offline.
# Set DEMO_REBUILD=0 to skip the build after the first one; JAVA_OPTS passes JVM options.
set -euo pipefail
root="$(cd "$(dirname "$0")" && pwd)"
cpfile="$root/loftq-demo/target/classpath.txt"
if [[ ! -f "$cpfile" || "${DEMO_REBUILD:-1}" != 0 ]]; then
  echo "building loftq-demo (mvn package, tests skipped)..." >&2
  (cd "$root" && mvn -B -ntp -q -DskipTests -pl loftq-demo -am package >&2)
fi
# Transparent huge pages for glibc malloc (glibc >= 2.35; ignored elsewhere): PyTorch allocates fresh
# activation buffers at every forward, and with 4 KiB pages the page faults cost more than the maths.
# Fixed mmap and trim thresholds (32 MiB, the most glibc allows, and 256 MiB): without them, each
# tensor over the dynamic mmap threshold is a fresh mmap, and memory freed at the top of a heap goes
# back to the kernel, so the next step's tensors fault their pages in again. ApiQ-bw allocates some
# 200 tensors of 0.6-2.4 MB a step: about 2x faster per step with these (same results; RESULTS.md).
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456}"
# PyTorch's OpenMP threads sleep between operations instead of spinning: on a CPU shared with
# other work (or with our own threads), a spinning team makes each small operation wait for a
# descheduled thread; measured 2x on LoftQ 4096^2 on this 2-core box under load (RESULTS.md).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# --add-modules: the SIMD kernels of the codebook quantizers (README, "SIMD kernels").
exec java ${JAVA_OPTS:--Xmx3g} --add-modules jdk.incubator.vector -Dai.djl.offline=true -Djava.awt.headless=true \
    -cp "$root/loftq-demo/target/classes:$(cat "$cpfile")" dev.loftq.demo.MiniLmDemo "$@"
