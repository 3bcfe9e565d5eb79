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
exec java -Xmx2g -Dai.djl.offline=true -cp "$cp" dev.loftq.bench.BenchMain "$suite" benchmarks/results "$@"
