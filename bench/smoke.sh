#!/usr/bin/env bash
# Reduced-size runs of the benchmarks (bench/run.sh b1 … b5, c1 … c3: 200 Defenders, about 25 s
# together; c4 is left out to keep the run short), then the PostgreSQL drivers (b3, b4, b2r, c1r,
# wamp with a few hundred Defenders) next to a throw-away server (scripts/with-postgres.sh); the
# whole script took 84 s under ASan on 2 cores. So the harness keeps working; no timing
# assertions. Fails when a harness step fails (a tool error, a failed request, a Console that does
# not start, a false disconnect).
# Usage: bench/smoke.sh [build-dir]   (default build/asan)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/asan}
cmake --build "$build" --target defender-console dc-bench bare_server sweep_bench \
  defender-fleet-sim >/dev/null
dir=$(mktemp -d /tmp/dc-bench-smoke.XXXXXX)
trap 'rm -rf "$dir"' EXIT
export BENCH_DIR=$dir BENCH_PORT=$((20000 + RANDOM % 20000))
export B1_DEFENDERS=2000 B1_SECONDS=1 B1_CONNECTIONS=4
export B2_DEFENDERS=1000 B2_SECONDS=3 B2_CONNECTIONS=4
export B3_DEFENDERS=4000 B3_REQUESTS=3
export B4_STALE=2000 B4_OBSERVATIONS=3 B4_LIVE=50 B4_INTERVAL=1
export B5_DEFENDERS=2000
export C_RAMP=400 C1_DEFENDERS=200 C1_SECONDS=3 C2_DEFENDERS=200 C2_SECONDS=3
export C3_DEFENDERS=200 C3_SETTLE=2 C3_WINDOW=8
bench/run.sh --build "$build" machine b1 b2 b3 b4 b5 c1 c2 c3
# PostgreSQL: the seeded copy (COPY), the sweep, two replicas, write amplification.
export B3_DEFENDERS=2000 B4_STALE=500 B4_OBSERVATIONS=2 R_DEFENDERS=200 R_SECONDS=3
export WAMP_DEFENDERS=300 WAMP_INTERVAL=1 WAMP_SECONDS=3 WAMP_SETTLE=0
scripts/with-postgres.sh -- bash -c \
  'BENCH_DATABASE=$DC_TEST_POSTGRES_URL bench/run.sh --build "$0" b3 b4 b2r c1r wamp' "$build"
