#!/usr/bin/env bash
# Checks the systemd unit with `systemd-analyze verify` (any warning fails), which also requires
# the ExecStart binary to exist: verifies a copy whose ExecStart names the given (built)
# executable instead of the installed /usr/local/bin/defender-console. Then requires
# `systemd-analyze security` to rate its exposure at most 2 (of 10).
#   packaging/systemd/verify.sh build/asan/main/defender-console
set -euo pipefail
unit="$(dirname "$0")/defender-console.service"
binary="$(realpath "${1:?usage: verify.sh <defender-console executable>}")"
if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-analyze not found (Debian package systemd)" >&2
  exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed "s|^ExecStart=/usr/local/bin/defender-console|ExecStart=$binary|" "$unit" \
  >"$tmp/defender-console.service"
grep -q "^ExecStart=$binary" "$tmp/defender-console.service" ||
  { echo "$unit: ExecStart is not /usr/local/bin/defender-console" >&2; exit 1; }
# Warnings count: any output fails the check.
out="$(cd "$tmp" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
  "$tmp/defender-console.service" 2>&1)" || { echo "$out" >&2; exit 1; }
if [[ -n "$out" ]]; then
  echo "$out" >&2
  exit 1
fi
# The hardening stays in place: systemd's exposure score (0 = locked down, 10 = none; the
# threshold is in tenths) at most 2.
if ! score="$(systemd-analyze security --offline=true --threshold=20 \
  "$tmp/defender-console.service" 2>&1)"; then
  echo "$score" | tail -5 >&2
  echo "systemd-analyze security: exposure above 2" >&2
  exit 1
fi
echo "systemd-analyze verify: defender-console.service ok; $(echo "$score" | grep -o 'exposure level.*')"
