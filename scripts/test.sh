#!/usr/bin/env bash
# Installs what is missing, then builds and runs every test:
#   1. all C++ tests (unit, store conformance, HTTP integration, embed corpus, simulator) built
#      with AddressSanitizer + UndefinedBehaviorSanitizer; the PostgreSQL cases run against a
#      throw-away server that scripts/with-postgres.sh starts for them;
#   2. the concurrent suites (inventory, sweeper races, the defender channel, two replicas on one
#      PostgreSQL database) again under ThreadSanitizer;
#   3. the browser tests of the web page (headless Chromium via playwright-core);
#   4. reduced-size benchmark runs, so the harness keeps working (no timing assertions);
#   5. each libFuzzer target (fuzz/) built with Clang and run on a scratch copy of its corpus for
#      a fixed number of inputs from a fixed seed (scripts/fuzz.sh, deterministic), so the verdict
#      depends on the code, not the machine; any crash or violated property fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
jobs=$(nproc)
failed=0

echo "== C++ tests (ASan + UBSan)"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DDC_SANITIZE=address >/dev/null
cmake --build build/asan -j"$jobs"
ctest --test-dir build/asan --output-on-failure -j"$jobs" || failed=1

echo "== Concurrent suites (TSan)"
cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDC_SANITIZE=thread >/dev/null
cmake --build build/tsan -j"$jobs" --target inventory_test sweeper_test defender_channel_test \
  defender_ws_test shared_inventory_test
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build/tsan/tests/inventory_test || failed=1
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build/tsan/tests/sweeper_test "~[postgres]" || failed=1
# The replica cases on a throw-away PostgreSQL (two Inventories and sweepers on one database).
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" scripts/with-postgres.sh -- \
  build/tsan/tests/sweeper_test "[postgres]" || failed=1
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" scripts/with-postgres.sh -- \
  build/tsan/tests/shared_inventory_test || failed=1
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build/tsan/tests/defender_channel_test || failed=1
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build/tsan/tests/defender_ws_test || failed=1

if [[ -x tests/browser/run.sh ]]; then
  echo "== Browser tests"
  tests/browser/run.sh build/asan/main/defender-console || failed=1
fi

if [[ -x bench/smoke.sh ]]; then
  echo "== Benchmark smoke run"
  bench/smoke.sh || failed=1
fi

echo "== Fuzzing (20 s per target)"
fuzz_start=$SECONDS
FUZZ_DETERMINISTIC=1 scripts/fuzz.sh || failed=1
echo "   fuzzing stage: $((SECONDS - fuzz_start)) s"

if ((failed)); then
  echo "TESTS FAILED"
  exit 1
fi
echo "ALL TESTS PASSED"
