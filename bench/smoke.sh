#!/usr/bin/env bash
# Reduced-size benchmark runs so the harness keeps working; no timing assertions.
# Usage: bench/smoke.sh [build-dir]   (default build/asan)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/asan}
"$build/bench/sweep_bench" --stale 2000 --observations 3 --live 50 --threads 2 --baseline-seconds 1
