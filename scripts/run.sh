#!/usr/bin/env bash
# Installs what is missing, builds, and runs the Console on its embedded default:
# SQLite under ./data/, Console API + UI on :8083, defender channel on :8084, both HTTPS with a
# self-signed certificate generated into ./data/tls/. The Console prints the URLs and how to sign
# in; on the first start it creates the user `admin` with $DC_ADMIN_PASSWORD, or generates a
# password and prints it once. `scripts/run.sh --plain-http --host 127.0.0.1` for plain HTTP.
# Extra arguments go to defender-console (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build/release -j"$(nproc)" --target defender-console defender-fleet-sim
mkdir -p data
exec build/release/main/defender-console --data-dir data "$@"
