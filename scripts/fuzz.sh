#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with Clang in build/fuzz and runs each for a bounded time
# on a scratch copy of its seed corpus and regression inputs (the repository is not modified).
# Fails when any target finds a crash, a sanitizer report, a timeout, an out-of-memory or a
# violated property; the failing input stays in the scratch directory, whose path is printed.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 20)] [TARGET...]
#   targets: heartbeat observations query embed (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
(($# > 0)) && shift
targets=("$@")
((${#targets[@]} > 0)) || targets=(heartbeat observations query embed)
declare -A dict=([heartbeat]=channel [observations]=channel [query]=query [embed]=embed)
# With FUZZ_DETERMINISTIC set (scripts/test.sh): inputs per target, about 20 s each here.
declare -A ci_runs=([heartbeat]=50000 [observations]=30000 [query]=100000 [embed]=3000)

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
CC=clang CXX=clang++ cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDC_FUZZ=ON \
  -DBUILD_TESTING=OFF "${launcher[@]}" >/dev/null
cmake --build build/fuzz -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/dc-fuzz.XXXXXX")
failed=0
for t in "${targets[@]}"; do
  work="$scratch/$t"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp fuzz/corpus/"$t"/* "$work/corpus/"
  find fuzz/regressions/"$t" -type f ! -name '.*' -exec cp {} "$work/corpus/" \;
  if [[ -n ${FUZZ_DETERMINISTIC:-} ]]; then
    # CI: a fixed seed and a fixed number of inputs, so a run explores the same inputs on any
    # machine and its verdict depends on the code only; exploratory runs use time instead.
    bound=(-seed=1 -runs="${ci_runs[$t]}")
    echo "-- fuzz_$t: ${ci_runs[$t]} inputs, seed 1"
  else
    bound=(-max_total_time="$seconds")
    echo "-- fuzz_$t: ${seconds}s"
  fi
  if build/fuzz/fuzz/fuzz_"$t" "$work/corpus" -dict=fuzz/dict/"${dict[$t]}".dict \
      "${bound[@]}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/" >"$work/log" 2>&1; then
    echo "   executions: $(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")," \
      "corpus: $(find "$work/corpus" -type f | wc -l) inputs"
  else
    failed=1
    echo "   FAILED: fuzz_$t (log: $work/log, input: $(ls "$work"/artifacts/* 2>/dev/null))"
    grep -E "ERROR|property violated|SUMMARY" "$work/log" | head -5 | sed 's/^/   /'
  fi
done
if ((failed)); then
  echo "FUZZING FAILED (scratch kept: $scratch)"
  exit 1
fi
rm -rf "$scratch"
