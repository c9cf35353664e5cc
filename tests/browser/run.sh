#!/usr/bin/env bash
# Browser tests of the web page against a real Console.
# Usage: tests/browser/run.sh [path/to/defender-console]   (default: build/asan/main/defender-console)
# Needs node, npm and Chromium (scripts/install-deps.sh --test). Builds nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${1:-build/asan/main/defender-console}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
if [[ ! -x "$bin" ]]; then
  echo "run.sh: Console binary not found or not executable: $bin (build it first)" >&2
  exit 2
fi
cd "$here"
if [[ ! -d node_modules/playwright-core || ! -d node_modules/axe-core ]]; then
  npm ci --no-audit --no-fund
fi
mkdir -p artifacts
export DC_CONSOLE_BIN="$bin"
# ASan builds: leaks at exit are the C++ suites' business, not the page's.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
exec node --test --test-concurrency=1 --test-reporter=spec *.test.js
