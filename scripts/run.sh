#!/usr/bin/env bash
# Installs what is missing, builds, and runs the Console on its embedded default:
# SQLite under ./data/, Console API + UI on :8083, defender channel on :8084.
# Extra arguments go to defender-console (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build/release -j"$(nproc)" --target defender-console defender-fleet-sim
mkdir -p data
exec build/release/main/defender-console --data-dir data "$@"
