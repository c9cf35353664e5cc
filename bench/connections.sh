#!/usr/bin/env bash
# One keep-alive connection per Defender against a defender-channel front (docs/benchmarks.md,
# "One connection per Defender"): starts the Console with --defender-front FRONT, then
# `dc-bench paced` with as many connections as Defenders (one client thread each), and prints
# how many heartbeats were answered, the latency percentiles, the requests shed and how many
# Defenders the Console shows connected at the end.
#
#   bench/connections.sh FRONT DEFENDERS [INTERVAL_S] [DURATION_S] [BUILD_DIR]
#   e.g. bench/connections.sh asio 5000 5 60 build/release
#
# Needs a descriptor limit above 2 × DEFENDERS + a few hundred (raised here to the hard limit)
# and curl and jq. BENCH_PORT (default 38280): base of the ports used.
set -euo pipefail
front=${1:?front: httplib or asio}
defenders=${2:?number of Defenders}
interval=${3:-5}
duration=${4:-60}
build=${5:-build/release}
base_port=${BENCH_PORT:-38280}
console_port=$((base_port + 3))
defender_port=$((base_port + 4))
admin_password=bench-admin-password
ulimit -n "$(ulimit -Hn)"
need=$((2 * defenders + 256))
if (($(ulimit -n) < need)); then
  echo "descriptor limit $(ulimit -n) is below $need: raise the hard limit (ulimit -Hn)" >&2
  exit 1
fi
work=$(mktemp -d)
console_pid=
cleanup() {
  [[ -n $console_pid ]] && kill "$console_pid" 2>/dev/null && wait "$console_pid" || true
  rm -rf "$work"
}
trap cleanup EXIT

DC_ADMIN_PASSWORD=$admin_password "$build/main/defender-console" --data-dir "$work" \
  --host 127.0.0.1 --console-port "$console_port" --defender-port "$defender_port" \
  --plain-http --password-iterations 1000 --log-level warn --heartbeat-interval "$interval" \
  --defender-front "$front" &
console_pid=$!
for _ in $(seq 1 600); do
  curl -fs -o /dev/null "http://127.0.0.1:$console_port/readyz" && break
  sleep 0.05
done
credential=$(curl -fs -u "admin:$admin_password" "http://127.0.0.1:$console_port/api/v1/credentials" \
  -d '{"scope":"enrolment","description":"bench"}' | jq -r .credential)
metric() {
  curl -fs -u "admin:$admin_password" "http://127.0.0.1:$console_port/metrics" |
    awk -v n="$1" '$1 == n { print $2 }'
}

echo "front $front: $defenders Defenders, each on its own keep-alive connection, heartbeat every ${interval} s for ${duration} s"
rc=0
DC_BENCH_AUTH="Bearer $credential" "$build/bench/dc-bench" paced --port "$defender_port" \
  --defenders "$defenders" --interval "$interval" --duration "$duration" \
  --connections "$defenders" || rc=$?
connected=$(curl -fs -u "admin:$admin_password" -D - -o /dev/null \
  "http://127.0.0.1:$console_port/api/v1/defenders?connected=true&limit=1" |
  awk -F': ' 'tolower($1) == "total-count" { print $2 }' | tr -d '\r')
echo "shed (503 overloaded): $(metric dc_defender_channel_shed_total), shown connected at the end: $connected of $defenders"
exit "$rc"
