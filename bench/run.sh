#!/usr/bin/env bash
# Benchmark drivers; figures and their meaning: docs/benchmarks.md.
#
# Usage: bench/run.sh [--build DIR] machine|b1|b2|b3|b4|b5|compress|c1|c2|c3|c4|b2r|c1r|wamp ...
#   Build first (docs/benchmarks.md): build/bench, Release with frame pointers, targets
#   defender-console dc-bench bare_server sweep_bench defender-fleet-sim
#   Sizes (environment, defaults = the targets of docs/benchmarks.md):
#     B1_DEFENDERS=1000000 B1_SECONDS=20 B1_CONNECTIONS=64 B1_FRONT=asio (or httplib)
#     B2_DEFENDERS=500000  B2_SECONDS=600 B2_CONNECTIONS=64
#     B3_DEFENDERS=1000000 B3_REQUESTS=200
#     B4_STALE=100000 B4_OBSERVATIONS=10 B4_LIVE=100000 B4_INTERVAL=30 (0 = unpaced)
#     B5_DEFENDERS=1000000
#     COMPRESS_REQUESTS=30 (compress: list latency by Accept-Encoding, 50 and 250 rows)
#   C rows (one connection per simulated Defender, `defender-fleet-sim --per-defender`, asio front):
#     C1_DEFENDERS=100000 C1_SECONDS=600  (TLS WebSocket, heartbeat every 30 s)
#     C2_DEFENDERS=100000 C2_SECONDS=600  (HTTPS keep-alive, heartbeat every 30 s)
#     C3_DEFENDERS=100000 C3_SETTLE=60 C3_WINDOW=120 C3_TRANSPORT=ws (SIGTERM + restart)
#     C4_DEFENDERS=10000 C4_IDLE=5000 C4_SLOW=1000 C4_SECONDS=120 C4_REQUESTS=500 C4_TRANSPORT=ws
#     C_RAMP=1000 (new connections per second), C_PER_PROCESS (Defenders per generator process;
#     default: the descriptor hard limit minus 200), C_PER_ADDRESS=8000 (connections per source
#     address 127.0.0.x; below the Console's --defender-max-connections-per-address)
#   Replica rows (PostgreSQL only): b2r = B2, c1r = C1 with the Defenders split over two Consoles on
#     one database: R_DEFENDERS (default 20000 for b2r, 10000 for c1r) R_SECONDS=120; b2r:
#     R_CONNECTIONS=16 (in all); c1r: C_RAMP as above.
#   wamp: write amplification of steady-state refreshes on the backend in use: WAMP_DEFENDERS=60000
#     heartbeating every WAMP_INTERVAL=30 s for WAMP_SECONDS=60 s (rows, bytes and WAL per heartbeat;
#     WAMP_SETTLE=12 s before each reading, for PostgreSQL to report its table counters).
#   BENCH_DATABASE=postgresql://user@host:port/db: run b1-b5, b2r, c1r and wamp on PostgreSQL. The
#     user must be allowed to create databases: seeded inventories are cached as databases
#     dcb_seed_<name>_<N> (dc-bench seed --database) and each run starts on a copy (dcb_work, made
#     with CREATE DATABASE … TEMPLATE); b4 uses a fresh dcb_sweep. Without it: SQLite in BENCH_DIR.
#   BENCH_DIR (default /tmp/dc-bench): seeded databases are cached there per size and copied
#   for each run into one work/ directory, so two runs at once need two BENCH_DIRs; BENCH_PORT (default 38180): base of the ports used.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/bench
if [[ ${1:-} == --build ]]; then
  build=$2
  shift 2
fi
bench_dir=${BENCH_DIR:-/tmp/dc-bench}
base_port=${BENCH_PORT:-38180}
console_port=$((base_port + 3))
defender_port=$((base_port + 4))
bare_port=$((base_port + 10))
mkdir -p "$bench_dir"
admin_password=bench-admin-password
admin_basic="Basic $(printf 'admin:%s' "$admin_password" | base64)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# seeded NAME N [seed options…]: prints the path of a cached seeded database (creating it once).
seeded() {
  local name=$1 n=$2
  shift 2
  local dir="$bench_dir/seed-$name-$n"
  if [[ ! -f $dir/done ]]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    "$build/bench/dc-bench" seed --db "$dir/console.db" --defenders "$n" "$@" >&2
    touch "$dir/done"
  fi
  echo "$dir"
}

# ---- PostgreSQL (BENCH_DATABASE) -----------------------------------------------------------------
pg_url() {  # pg_url NAME: BENCH_DATABASE with its database replaced by NAME
  local base=${BENCH_DATABASE%%\?*}
  echo "${base%/*}/$1"
}
pg_sql() {  # pg_sql SQL: runs SQL in the server's maintenance database, prints unaligned rows
  psql -X -q -At -v ON_ERROR_STOP=1 -d "$(pg_url postgres)" -c "$1"
}
pg_in() {  # pg_in URL SQL: runs SQL in the database of URL
  psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}
pg_fresh() {  # pg_fresh NAME [TEMPLATE]: (re)creates database NAME, empty or a copy of TEMPLATE
  pg_sql "DROP DATABASE IF EXISTS $1 WITH (FORCE)"
  pg_sql "CREATE DATABASE $1${2:+ TEMPLATE $2}"
}
# seeded_pg NAME N [seed options…]: the name of a cached seeded database (creating it once: seeded
# under a temporary name, renamed when complete).
seeded_pg() {
  local name=dcb_seed_$1_$2 n=$2
  shift 2
  if [[ -z $(pg_sql "SELECT 1 FROM pg_database WHERE datname = '$name'") ]]; then
    pg_fresh "${name}_partial"
    "$build/bench/dc-bench" seed --database "$(pg_url "${name}_partial")" --defenders "$n" "$@" >&2
    pg_sql "ALTER DATABASE ${name}_partial RENAME TO $name"
  fi
  echo "$name"
}

# inventory NAME N [seed options…]: the seeded inventory for a run. Sets `work` (a fresh data
# directory) and `db_args` (the Console's database options): on SQLite a copy of the cached seeded
# file in `work`, on PostgreSQL (BENCH_DATABASE) the database dcb_work copied from the cached seed.
inventory() {
  local name=$1 n=$2
  shift 2
  if [[ -n ${BENCH_DATABASE:-} ]]; then
    local seed
    seed=$(seeded_pg "$name" "$n" "$@")
    pg_fresh dcb_work "$seed"
    work="$bench_dir/work"
    rm -rf "$work"
    mkdir -p "$work"
    db_url=$(pg_url dcb_work)
    db_args=(--database "$db_url")
  else
    work=$(work_copy "$(seeded "$name" "$n" "$@")")
    db_url=
    db_args=()
  fi
}

# work_copy SEED_DIR: a fresh data dir holding a copy of the seeded database.
work_copy() {
  local work="$bench_dir/work"
  rm -rf "$work"
  mkdir -p "$work"
  cp "$1"/console.db* "$work/"
  echo "$work"
}

# start_console DATA_DIR [options…]: starts the Console, waits until /readyz answers 200,
# sets console_pid and ready_seconds (launch to ready). CONSOLE_TLS=1: HTTPS on both listeners
# (self-signed certificate in DATA_DIR/tls) instead of plain HTTP; `api` is the API base URL.
start_console() {
  local dir=$1
  shift
  local t0 plain=(--plain-http) scheme=http
  if [[ ${CONSOLE_TLS:-0} == 1 ]]; then
    plain=()
    scheme=https
  fi
  api=$scheme://127.0.0.1:$console_port
  channel=$scheme://127.0.0.1:$defender_port
  t0=$(date +%s.%N)
  # Plain HTTP (as bare_server) with a known admin; Defenders present an enrolment credential.
  DC_ADMIN_PASSWORD=$admin_password "$build/main/defender-console" --data-dir "$dir" \
    --host 127.0.0.1 --console-port "$console_port" --defender-port "$defender_port" \
    "${plain[@]}" --password-iterations 1000 --log-level warn "$@" &
  console_pid=$!
  pids+=("$console_pid")
  for _ in $(seq 1 12000); do
    if curl -kfs -o /dev/null "$api/readyz"; then
      ready_seconds=$(echo "$(date +%s.%N) - $t0" | bc)
      credential=$(curl -kfs -u "admin:$admin_password" \
        "$api/api/v1/credentials" \
        -d '{"scope":"enrolment","description":"bench"}' | jq -r .credential)
      export DC_AUTH="Bearer $credential"
      return 0
    fi
    kill -0 "$console_pid" 2>/dev/null || { echo "Console exited during start" >&2; return 1; }
    sleep 0.05  # each poll starts a curl process: polling faster slows the start it measures
  done
  echo "Console not ready" >&2
  return 1
}

stop_console() {
  kill "$console_pid"
  wait "$console_pid" || true
}

metric() {  # metric NAME: value from /metrics
  curl -kfs -u "admin:$admin_password" "${api:-http://127.0.0.1:$console_port}/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}

await_written() {  # waits (at most 5 min) until nothing is left to write: the start-up discount
  for _ in $(seq 1 3000); do
    [[ $(metric dc_pending_writes) == 0 ]] && return 0
    sleep 0.1
  done
  echo "the Console still has writes pending" >&2
  return 1
}

rss_mib() {  # rss_mib PID FIELD (VmRSS or VmHWM)
  awk -v f="$2:" '$1 == f { printf "%.0f\n", $2 / 1024 }' "/proc/$1/status"
}

wrk_rate() {  # wrk_rate URL: runs wrk with bench/heartbeat.lua, prints its output
  DC_DEFENDERS=$B1_DEFENDERS wrk -t2 -c"$B1_CONNECTIONS" -d"${B1_SECONDS}s" --latency \
    -s bench/heartbeat.lua "$1"
}

check_wrk() {  # fails when wrk saw errors or non-2xx replies
  if grep -q "Non-2xx" <<<"$1" || ! grep -q "0 status errors, 0 socket errors" <<<"$1"; then
    echo "wrk saw failed requests" >&2
    return 1
  fi
}

machine() {
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "cpus: $(nproc) x $(lscpu | sed -n 's/^Model name: *//p')"
  echo "memory: $(free -g | awk '/^Mem:/ { print $2 }') GiB"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
}

b1() {
  : "${B1_DEFENDERS:=1000000}" "${B1_SECONDS:=20}" "${B1_CONNECTIONS:=64}"
  local bare_rate console_rate
  inventory fleet "$B1_DEFENDERS"
  echo "== B1 bare handler on the ${B1_FRONT:-asio} front"
  "$build/bench/bare_server" --port "$bare_port" --threads 64 --front "${B1_FRONT:-asio}" >/dev/null &
  local bare_pid=$!
  pids+=("$bare_pid")
  # It listens once it has started (a sanitizer build on a busy machine takes more than a
  # moment): wait for the port, at most 30 s.
  local waited=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$bare_port") 2>/dev/null; do
    if ((waited >= 300)) || ! kill -0 "$bare_pid" 2>/dev/null; then
      echo "bare_server did not listen on port $bare_port" >&2
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  local out
  out=$(DC_AUTH="" wrk_rate "http://127.0.0.1:$bare_port")
  check_wrk "$out"
  echo "$out"
  bare_rate=$(echo "$out" | awk '/^Requests\/sec/ { print $2 }')
  kill "$bare_pid"
  wait "$bare_pid" || true
  echo "== B1 Console heartbeat, ${B1_DEFENDERS} Defenders"
  # G = 1 h: seeded Defenders stay connected whatever the run length, so every heartbeat is a
  # refresh (registrations and reconnections are durable before the reply: another figure).
  start_console "$work" "${db_args[@]}" --grace 3600 --defender-front "${B1_FRONT:-asio}"
  # Steady state: the downtime discount of the seeded fleet is stored before the load starts.
  await_written
  out=$(wrk_rate "http://127.0.0.1:$defender_port")
  echo "$out"
  check_wrk "$out"
  console_rate=$(echo "$out" | awk '/^Requests\/sec/ { print $2 }')
  echo "registrations: $(metric dc_registrations_total), reconnections: $(metric dc_reconnections_total), flush lag max: $(metric dc_flush_lag_max_seconds) s"
  stop_console
  echo "B1: bare $bare_rate req/s, Console $console_rate req/s, ratio $(echo "scale=3; $console_rate / $bare_rate" | bc)"
}

b2() {
  : "${B2_DEFENDERS:=500000}" "${B2_SECONDS:=600}" "${B2_CONNECTIONS:=64}"
  inventory fleet "$B2_DEFENDERS"
  echo "== B2 $B2_DEFENDERS Defenders every 30 s for $B2_SECONDS s"
  start_console "$work" "${db_args[@]}" --heartbeat-interval 30
  await_written  # the start-up discount (B5 measures restarts)
  local max_rss=0
  (
    while kill -0 "$console_pid" 2>/dev/null; do
      rss_mib "$console_pid" VmRSS
      sleep 5
    done
  ) >"$bench_dir/b2-rss" 2>/dev/null &
  local sampler=$!
  local paced_rc=0
  DC_BENCH_AUTH=$DC_AUTH "$build/bench/dc-bench" paced --port "$defender_port" --defenders "$B2_DEFENDERS" \
    --interval 30 --duration "$B2_SECONDS" --connections "$B2_CONNECTIONS" || paced_rc=$?
  max_rss=$(sort -n "$bench_dir/b2-rss" | tail -1)
  local summary
  summary=$(curl -fs -u "admin:$admin_password" "http://127.0.0.1:$console_port/api/v1/defenders/summary")
  echo "summary: $summary"
  echo "registrations: $(metric dc_registrations_total), reconnections (false disconnects): $(metric dc_reconnections_total), flush lag max: $(metric dc_flush_lag_max_seconds) s, flushes: $(metric dc_flushes_total)"
  echo "Console RSS: max sampled $max_rss MiB, peak (VmHWM) $(rss_mib "$console_pid" VmHWM) MiB"
  stop_console
  kill "$sampler" 2>/dev/null || true
  return "$paced_rc"
}

b3() {
  : "${B3_DEFENDERS:=1000000}" "${B3_REQUESTS:=200}"
  # 80 % Fargate, 60 % connected (last seen within 30 s), the rest last seen 30 min ago.
  inventory mixed "$B3_DEFENDERS" --fargate-fraction 0.8 --connected-fraction 0.6 \
    --disconnected-age 1800
  echo "== B3 queries over $B3_DEFENDERS Defenders${db_url:+ (PostgreSQL)}"
  # G = 15 min: the seeded state stays as seeded while the queries run (nothing is due).
  start_console "$work" "${db_args[@]}" --grace 900
  await_written  # the start-up discount (B5 measures restarts)
  local q="/api/v1/defenders?type=fargate&connected=true&sort=hostname&limit=50"
  local connected
  connected=$(curl -fsI -u "admin:$admin_password" "http://127.0.0.1:$console_port$q" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "total-count" { print $2 }')
  local deep=$((connected > 50 ? connected - 50 : 0))
  DC_BENCH_AUTH=$admin_basic "$build/bench/dc-bench" query --port "$console_port" --requests "$B3_REQUESTS" \
    --path "$q" --path "$q&offset=$((connected / 10))" --path "$q&offset=$((connected / 2))" \
    --path "$q&offset=$deep" --path "/api/v1/defenders/summary"
  if [[ -n $db_url ]]; then
    # The statements behind the list, as the PostgreSQL store sends them (inventory/pg_store.cpp,
    # select): the count, then the page; the cutoff is now − G.
    local cut=$(($(date +%s%3N) - 900000)) where
    where="WHERE type IN ('fargate') AND (graceful_at IS NULL AND judged_from >= $cut)"
    echo "-- EXPLAIN ANALYZE of the count and of the page at offset 0 and $deep"
    pg_in "$db_url" "EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM defenders $where" | sed 's/^/   /'
    local off
    for off in 0 "$deep"; do
      pg_in "$db_url" "EXPLAIN (ANALYZE, BUFFERS) SELECT hostname, type, version, cluster, app_id, container, details, registered_at, last_seen, judged_from, connected_since, graceful_at, clock_skew_ms FROM defenders $where ORDER BY key ASC LIMIT 50 OFFSET $off" | sed 's/^/   /'
    done
  fi
  local before peak=0
  before=$(rss_mib "$console_pid" VmRSS)
  (
    while kill -0 "$console_pid" 2>/dev/null; do
      rss_mib "$console_pid" VmRSS
      sleep 0.05
    done
  ) >"$bench_dir/b3-rss" 2>/dev/null &
  local sampler=$!
  DC_BENCH_AUTH=$admin_basic "$build/bench/dc-bench" download --port "$console_port" \
    --path "/api/v1/defenders/download?type=fargate&appID=service-00:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e00"
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  peak=$(sort -n "$bench_dir/b3-rss" | tail -1)
  echo "Console RSS during the download: before $before MiB, peak $peak MiB"
  stop_console
}

b4() {
  : "${B4_STALE:=100000}" "${B4_OBSERVATIONS:=10}" "${B4_LIVE:=100000}" "${B4_INTERVAL:=30}"
  local db=()
  if [[ -n ${BENCH_DATABASE:-} ]]; then
    pg_fresh dcb_sweep
    db=(--database "$(pg_url dcb_sweep)")
  fi
  echo "== B4 sweep${db[*]:+ (PostgreSQL)}"
  "$build/bench/sweep_bench" --stale "$B4_STALE" --observations "$B4_OBSERVATIONS" \
    --live "$B4_LIVE" --interval "$B4_INTERVAL" --threads 4 --baseline-seconds 10 --dir "$bench_dir/sweep" \
    "${db[@]}"
}

b5() {
  : "${B5_DEFENDERS:=1000000}"
  inventory mixed "$B5_DEFENDERS" --fargate-fraction 0.8 --connected-fraction 0.6 \
    --disconnected-age 1800
  echo "== B5 restart with $B5_DEFENDERS Defenders stored"
  sync
  start_console "$work" "${db_args[@]}" --grace 900
  echo "B5: launch to /readyz 200 in $ready_seconds s; RSS $(rss_mib "$console_pid" VmRSS) MiB"
  stop_console
  # A second start on the same files (page cache warm, downtime discount already applied).
  start_console "$work" "${db_args[@]}" --grace 900
  echo "B5: second start ready in $ready_seconds s"
  stop_console
}

# The list's latency by what the client offers in Accept-Encoding (a browser offers
# "gzip, deflate, br"), for 50 and 250 rows of 300 Fargate Defenders: median and p90 of curl's
# time_total over COMPRESS_REQUESTS requests, with the bytes sent and the coding used.
compress() {
  : "${COMPRESS_REQUESTS:=30}"
  local work="$bench_dir/compress"
  rm -rf "$work"
  mkdir -p "$work"
  echo "== compressed list responses"
  start_console "$work"
  local channel="http://127.0.0.1:$defender_port/api/v1/defender/heartbeat" i id
  for i in $(seq 1 300); do
    id=$(printf 'task%028d' "$i")
    curl -fs -o /dev/null -H "Authorization: $DC_AUTH" -H 'Content-Type: application/json' "$channel" -d \
      "{\"hostname\":\"$id\",\"type\":\"fargate\",\"appID\":\"service-0$((i % 8)):0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e0$((i % 8))\",\"cluster\":\"cluster-$((i % 2))\",\"version\":\"32.07.123\",\"cloudMetadata\":{\"provider\":\"aws\",\"accountID\":\"123456789012\",\"region\":\"us-east-1\",\"resourceID\":\"arn:aws:ecs:us-east-1:123456789012:task/cluster-$((i % 2))/$id\",\"image\":\"123456789012.dkr.ecr.us-east-1.amazonaws.com/service-0$((i % 8)):1.4.2\"}}"
  done
  local token
  token=$(curl -fs "http://127.0.0.1:$console_port/api/v1/authenticate" \
    -d "{\"username\":\"admin\",\"password\":\"$admin_password\"}" | jq -r .token)
  local limit enc
  for limit in 50 250; do
    for enc in "" gzip br "gzip, deflate, br"; do
      local url="http://127.0.0.1:$console_port/api/v1/defenders?limit=$limit"
      local coding
      coding=$(curl -fs -o /dev/null -D - -H "Authorization: Bearer $token" -H "Accept-Encoding: $enc" "$url" |
        tr -d '\r' | awk -F': ' 'tolower($1) == "content-encoding" { print $2 }')
      for i in $(seq 1 "$COMPRESS_REQUESTS"); do
        curl -fs -o /dev/null -w '%{time_total} %{size_download}\n' -H "Authorization: Bearer $token" \
          -H "Accept-Encoding: $enc" "$url"
      done | sort -n | awk -v l="$limit" -v e="${enc:-none}" -v c="${coding:-identity}" \
        '{ t[NR] = $1 * 1000; b = $2 } END { printf "%3d rows, Accept-Encoding %-18s -> %-8s %7d bytes  median %7.2f ms  p90 %7.2f ms\n", l, e, c, b, t[int((NR + 1) / 2)], t[int(NR * 0.9)] }'
    done
  done
  stop_console
}

# ---- C rows: one connection per simulated Defender (docs/benchmarks.md, "C rows") ----------------

# fleet N SECONDS TRANSPORT OUT_PREFIX [fleet-sim options…]: runs N per-connection Defenders
# against the Console started last, split over generator processes (--shard i/n) that each hold
# at most C_PER_PROCESS connections, spread over enough 127.0.0.x source addresses; waits for
# them. Each process writes OUT_PREFIX-<i>.json (its JSON summary, false-disconnect check
# included) and OUT_PREFIX-<i>.log (progress lines).
fleet() {
  local n=$1 seconds=$2 transport=$3 out=$4
  shift 4
  local hard per shards addresses last
  hard=$(ulimit -Hn)
  per=${C_PER_PROCESS:-$((hard - 200))}
  shards=$(((n + per - 1) / per))
  addresses=$(((n + ${C_PER_ADDRESS:-8000} - 1) / ${C_PER_ADDRESS:-8000}))
  ((addresses <= 250)) || { echo "more than 250 source addresses needed" >&2; return 1; }
  last=$((1 + addresses))
  echo "generator: $shards process(es) of <= $per connections, source addresses 127.0.0.2-127.0.0.$last"
  local i gens=()
  for ((i = 0; i < shards; i++)); do
    DC_API_PASSWORD=$admin_password "$build/tools/fleet_sim/defender-fleet-sim" --per-defender \
      --transport "$transport" --console "$channel" --insecure --credential "$credential" \
      --defenders "$n" --shard "$i/$shards" --families 40 --clusters 8 \
      --ramp-per-second "${C_RAMP:-1000}" --source-addresses "127.0.0.2-127.0.0.$last" \
      --duration "$seconds" --progress-seconds 10 --api "$api" --summary-json "$out-$i.json" \
      "$@" 2>"$out-$i.log" &
    gens+=($!)
    pids+=($!)
  done
  local rc=0
  for i in "${gens[@]}"; do wait "$i" || rc=$?; done
  return "$rc"
}

# fleet_report OUT_PREFIX: sums the shards' JSON summaries (latency: the worst shard's).
fleet_report() {
  jq -s '{defenders: (map(.defenders) | add), answeredDefenders: (map(.answeredDefenders) | add),
    heartbeats: (map(.heartbeats) | add), answered: (map(.answered) | add),
    errors: (map(.errors) | add), errorsByStatus: (map(.errorsByStatus) | reduce .[] as $e ({};
      reduce ($e | to_entries[]) as $kv (.; .[$kv.key] += $kv.value))),
    timeouts: (map(.connections.timeouts) | add), reconnects: (map(.connections.reconnects) | add),
    connectFailures: (map(.connections.connectFailures) | add),
    p50Ms: (map(.latencyMs.p50) | max), p99Ms: (map(.latencyMs.p99) | max),
    maxMs: (map(.latencyMs.max) | max),
    falseDisconnects: (map(.falseDisconnects.shownDisconnected // "unchecked") | if all(type == "number") then add else "unchecked" end),
    down: (map(.connections.down) | add), recoveries: (map(.connections.recoveries) | add),
    lastRecoveryAtMs: (map(.connections.lastRecoveryAtMs) | max),
    generatorPeakRssMiB: (map(.generatorPeakRssMiB) | add)}' "$1"-*.json
}

# rss_sampler FILE: samples the Console's RSS (MiB) every 5 s into FILE until it exits.
rss_sampler() {
  (
    while kill -0 "$console_pid" 2>/dev/null; do
      rss_mib "$console_pid" VmRSS
      sleep 5
    done
  ) >"$1" 2>/dev/null &
  pids+=($!)
}

c_connections() {  # c_connections ID N SECONDS TRANSPORT: C1 (ws) and C2 (http)
  local id=$1 n=$2 seconds=$3 transport=$4
  local work="$bench_dir/work"
  rm -rf "$work" "$bench_dir/$id"-*
  mkdir -p "$work"
  echo "== $id $n Defenders, each on its own TLS $transport connection, heartbeat every 30 s, $seconds s after a ${C_RAMP:-1000}/s ramp"
  CONSOLE_TLS=1 start_console "$work" --defender-front asio --heartbeat-interval 30
  rss_sampler "$bench_dir/$id-rss"
  local rc=0 ramp=$(((n + ${C_RAMP:-1000} - 1) / ${C_RAMP:-1000}))
  fleet "$n" $((seconds + ramp)) "$transport" "$bench_dir/$id" || rc=$?
  fleet_report "$bench_dir/$id"
  echo "Console: reconnections (false disconnects seen by the Console) $(metric dc_reconnections_total), shed $(metric dc_defender_channel_shed_total), RSS max sampled $(sort -n "$bench_dir/$id-rss" | tail -1) MiB, peak (VmHWM) $(rss_mib "$console_pid" VmHWM) MiB"
  stop_console
  return "$rc"
}

c1() {
  : "${C1_DEFENDERS:=100000}" "${C1_SECONDS:=600}"
  c_connections C1 "$C1_DEFENDERS" "$C1_SECONDS" ws
}

c2() {
  : "${C2_DEFENDERS:=100000}" "${C2_SECONDS:=600}"
  c_connections C2 "$C2_DEFENDERS" "$C2_SECONDS" http
}

c3() {
  : "${C3_DEFENDERS:=100000}" "${C3_SETTLE:=60}" "${C3_WINDOW:=120}" "${C3_TRANSPORT:=ws}"
  local work="$bench_dir/work"
  rm -rf "$work" "$bench_dir"/C3-*
  mkdir -p "$work"
  echo "== C3 SIGTERM + restart with $C3_DEFENDERS Defenders connected ($C3_TRANSPORT over TLS)"
  CONSOLE_TLS=1 start_console "$work" --defender-front asio --heartbeat-interval 30
  local ramp=$(((C3_DEFENDERS + ${C_RAMP:-1000} - 1) / ${C_RAMP:-1000}))
  fleet "$C3_DEFENDERS" $((ramp + C3_SETTLE + C3_WINDOW)) "$C3_TRANSPORT" "$bench_dir/C3" &
  local fleet_pid=$!
  pids+=("$fleet_pid")
  sleep $((ramp + C3_SETTLE))
  local killed_ms
  killed_ms=$(date +%s%3N)
  stop_console
  CONSOLE_TLS=1 start_console "$work" --defender-front asio --heartbeat-interval 30
  echo "C3: SIGTERM to ready again in $(($(date +%s%3N) - killed_ms)) ms"
  local rc=0
  wait "$fleet_pid" || rc=$?
  local report
  report=$(fleet_report "$bench_dir/C3")
  echo "$report"
  echo "C3: every Defender reconnected and answered $(jq -r --argjson k "$killed_ms" \
    'if .down == 0 and .recoveries >= .defenders then "\((.lastRecoveryAtMs - $k) / 1000) s after the SIGTERM" else "NOT: \(.down) still down, \(.recoveries) of \(.defenders) recovered" end' <<<"$report")"
  echo "Console after restart: reconnections $(metric dc_reconnections_total), shed $(metric dc_defender_channel_shed_total)"
  stop_console
  return "$rc"
}

c4() {
  : "${C4_DEFENDERS:=10000}" "${C4_IDLE:=5000}" "${C4_SLOW:=1000}" "${C4_SECONDS:=120}"
  : "${C4_REQUESTS:=500}" "${C4_TRANSPORT:=ws}"
  local work="$bench_dir/work"
  rm -rf "$work" "$bench_dir"/C4-*
  mkdir -p "$work"
  echo "== C4 $C4_IDLE idle + $C4_SLOW slow-header connections against each listener while $C4_DEFENDERS Defenders heartbeat ($C4_TRANSPORT, plain HTTP)"
  start_console "$work" --defender-front asio --heartbeat-interval 30
  local ramp=$(((C4_DEFENDERS + ${C_RAMP:-1000} - 1) / ${C_RAMP:-1000}))
  fleet "$C4_DEFENDERS" $((ramp + C4_SECONDS)) "$C4_TRANSPORT" "$bench_dir/C4" &
  local fleet_pid=$!
  pids+=("$fleet_pid")
  sleep "$ramp"
  # From 40 other loopback addresses (150 connections each at the target size): the Console caps
  # connections per address (256 on the Console API), and the operator below is 127.0.0.1.
  python3 bench/hold_connections.py --seconds $((C4_SECONDS - 10)) --idle "$C4_IDLE" \
    --slow "$C4_SLOW" --source-addresses "${C4_SOURCES:-127.0.0.100-127.0.0.139}" \
    "127.0.0.1:$defender_port" "127.0.0.1:$console_port" >"$bench_dir/C4-held" &
  local holder=$!
  pids+=("$holder")
  sleep 5
  # Operators list the fleet while the connections are held.
  DC_BENCH_AUTH=$admin_basic "$build/bench/dc-bench" query --port "$console_port" \
    --requests "$C4_REQUESTS" --path "/api/v1/defenders?limit=50" \
    --path "/api/v1/defenders?connected=true&sort=lastSeen&limit=50"
  local rc=0
  wait "$holder" || rc=$?
  echo "held: $(cat "$bench_dir/C4-held")"
  wait "$fleet_pid" || rc=$?
  fleet_report "$bench_dir/C4"
  echo "Console: reconnections $(metric dc_reconnections_total), shed $(metric dc_defender_channel_shed_total)"
  stop_console
  return "$rc"
}

# ---- Two replicas on one PostgreSQL database, write amplification ---------------------------------

need_pg() {
  [[ -n ${BENCH_DATABASE:-} ]] || { echo "$1 needs BENCH_DATABASE=postgresql://… (replicas share it)" >&2; return 1; }
}

# start_replicas [options…]: two Consoles on `db_args`, data directories work-r0 and work-r1,
# ports BENCH_PORT+3/+4 and BENCH_PORT+23/+24. Sets rep_pid, rep_api, rep_channel, rep_defender_port,
# rep_credential and rep_auth (arrays by replica).
start_replicas() {
  local r saved_c=$console_port saved_d=$defender_port
  rep_pid=() rep_api=() rep_channel=() rep_defender_port=() rep_credential=() rep_auth=()
  for r in 0 1; do
    console_port=$((saved_c + 20 * r))
    defender_port=$((saved_d + 20 * r))
    rm -rf "$bench_dir/work-r$r"
    mkdir -p "$bench_dir/work-r$r"
    start_console "$bench_dir/work-r$r" "${db_args[@]}" "$@"
    rep_pid[r]=$console_pid rep_api[r]=$api rep_channel[r]=$channel
    rep_defender_port[r]=$defender_port rep_credential[r]=$credential rep_auth[r]=$DC_AUTH
  done
  console_port=$saved_c
  defender_port=$saved_d
}

rep_metric() { api=${rep_api[$1]} metric "$2"; }

rep_report() {  # per replica: the Console's own counters
  local r
  for r in 0 1; do
    echo "replica $r: heartbeats $(rep_metric "$r" dc_heartbeats_total), registrations $(rep_metric "$r" dc_registrations_total), reconnections (false disconnects) $(rep_metric "$r" dc_reconnections_total), flushes $(rep_metric "$r" dc_flushes_total), flush failures $(rep_metric "$r" dc_flush_failures_total), flush lag max $(rep_metric "$r" dc_flush_lag_max_seconds) s, RSS $(rss_mib "${rep_pid[r]}" VmRSS) MiB"
  done
}

stop_replicas() {
  local r
  for r in 0 1; do
    kill "${rep_pid[r]}" 2>/dev/null || true
    wait "${rep_pid[r]}" 2>/dev/null || true
  done
}

# B2 on two replicas: R_DEFENDERS seeded (all connected) Defenders, the first half heartbeating to
# replica 0 and the second half to replica 1, every 30 s for R_SECONDS, R_CONNECTIONS keep-alive
# connections in all (`dc-bench paced`, one client per replica).
b2r() {
  need_pg b2r
  : "${R_DEFENDERS:=20000}" "${R_SECONDS:=120}" "${R_CONNECTIONS:=16}"
  inventory fleet "$R_DEFENDERS"
  local half=$((R_DEFENDERS / 2)) r rc=0 clients=()
  echo "== B2 on two replicas: $R_DEFENDERS Defenders ($half per replica) every 30 s for $R_SECONDS s"
  start_replicas --heartbeat-interval 30
  for r in 0 1; do api=${rep_api[r]} await_written; done
  for r in 0 1; do
    DC_BENCH_AUTH=${rep_auth[r]} "$build/bench/dc-bench" paced --port "${rep_defender_port[r]}" \
      --defenders "$half" --first $((r * half)) --interval 30 --duration "$R_SECONDS" \
      --connections $((R_CONNECTIONS / 2)) >"$bench_dir/b2r-$r.out" 2>"$bench_dir/b2r-$r.log" &
    clients+=($!)
    pids+=($!)
  done
  for r in 0 1; do wait "${clients[r]}" || rc=$?; done
  for r in 0 1; do echo "replica $r client:"; sed 's/^/  /' "$bench_dir/b2r-$r.out"; done
  sleep 2  # one flush interval and more: the last refreshes are stored
  rep_report
  echo "summary (replica 0): $(curl -fs -u "admin:$admin_password" "${rep_api[0]}/api/v1/defenders/summary")"
  echo "connected fargate (replica 1): $(curl -fsI -u "admin:$admin_password" "${rep_api[1]}/api/v1/defenders?type=fargate&connected=true&limit=1" | tr -d '\r' | awk -F': ' 'tolower($1) == "total-count" { print $2 }') of $R_DEFENDERS"
  stop_replicas
  return "$rc"
}

# C1 on two replicas: R_DEFENDERS per-connection TLS WebSocket Defenders (an empty database),
# shard 0 of 2 on replica 0 and shard 1 on replica 1, heartbeat every 30 s, R_SECONDS after the ramp.
c1r() {
  need_pg c1r
  : "${R_DEFENDERS:=10000}" "${R_SECONDS:=120}"
  local r rc=0 gens=() ramp=$(((R_DEFENDERS + ${C_RAMP:-1000} - 1) / ${C_RAMP:-1000}))
  pg_fresh dcb_work
  db_url=$(pg_url dcb_work)
  db_args=(--database "$db_url")
  rm -f "$bench_dir"/C1R-*
  echo "== C1 on two replicas: $R_DEFENDERS Defenders ($((R_DEFENDERS / 2)) per replica), each on its own TLS WebSocket, heartbeat every 30 s, $R_SECONDS s after a ${C_RAMP:-1000}/s ramp"
  CONSOLE_TLS=1 start_replicas --defender-front asio --heartbeat-interval 30
  local addresses=$(((R_DEFENDERS / 2 + ${C_PER_ADDRESS:-8000} - 1) / ${C_PER_ADDRESS:-8000}))
  for r in 0 1; do
    DC_API_PASSWORD=$admin_password "$build/tools/fleet_sim/defender-fleet-sim" --per-defender \
      --transport ws --console "${rep_channel[r]}" --insecure --credential "${rep_credential[r]}" \
      --defenders "$R_DEFENDERS" --shard "$r/2" --families 40 --clusters 8 \
      --ramp-per-second "${C_RAMP:-1000}" \
      --source-addresses "127.0.0.$((2 + r * addresses))-127.0.0.$((1 + (r + 1) * addresses))" \
      --duration $((R_SECONDS + ramp)) --progress-seconds 10 --api "${rep_api[r]}" \
      --summary-json "$bench_dir/C1R-$r.json" 2>"$bench_dir/C1R-$r.log" &
    gens+=($!)
    pids+=($!)
  done
  for r in 0 1; do wait "${gens[r]}" || rc=$?; done
  fleet_report "$bench_dir/C1R"
  rep_report
  stop_replicas
  return "$rc"
}

# pg_counters URL: "ins upd hot del" summed over the inventory's defenders table, then the
# replica_alive table, then the server's WAL: "records fpi bytes lsn_bytes".
pg_counters() {
  pg_in "$1" "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables WHERE relname = 'defenders'" | tr '|' ' '
  pg_in "$1" "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables WHERE relname = 'replica_alive'" | tr '|' ' '
  pg_in "$1" "SELECT wal_records, wal_fpi, wal_bytes, pg_current_wal_lsn() - '0/0' FROM pg_stat_wal" | tr '|' ' '
}

# task_wchar PID: "tid wchar" per thread (bytes passed to write/pwrite and friends).
task_wchar() {
  local t
  for t in /proc/"$1"/task/*; do
    echo "${t##*/} $(awk '$1 == "wchar:" { print $2 }' "$t/io" 2>/dev/null || echo 0)"
  done
}

# Write amplification: rows, bytes and (PostgreSQL) WAL per heartbeat of connected Defenders in the
# steady state, measured over the paced run plus the flushes that store it.
wamp() {
  : "${WAMP_DEFENDERS:=60000}" "${WAMP_INTERVAL:=30}" "${WAMP_SECONDS:=60}"
  inventory fleet "$WAMP_DEFENDERS"
  echo "== write amplification: $WAMP_DEFENDERS Defenders every $WAMP_INTERVAL s for $WAMP_SECONDS s${db_url:+ (PostgreSQL)}"
  start_console "$work" "${db_args[@]}" --grace 3600 --heartbeat-interval "$WAMP_INTERVAL"
  await_written
  sleep "${WAMP_SETTLE:-12}"  # PostgreSQL: idle backends report their table counters within 10 s
  local hb0 fl0 io0 pg0= hb1 fl1 io1 pg1=
  hb0=$(metric dc_heartbeats_total)
  fl0=$(metric dc_flushes_total)
  io0=$(awk '$1 == "write_bytes:" { print $2 }' "/proc/$console_pid/io")
  task_wchar "$console_pid" >"$bench_dir/wamp-wchar0"
  [[ -z $db_url ]] || pg0=$(pg_counters "$db_url")
  DC_BENCH_AUTH=$DC_AUTH "$build/bench/dc-bench" paced --port "$defender_port" --defenders "$WAMP_DEFENDERS" \
    --interval "$WAMP_INTERVAL" --duration "$WAMP_SECONDS" --connections 8
  await_written
  sleep "${WAMP_SETTLE:-12}"
  hb1=$(metric dc_heartbeats_total)
  fl1=$(metric dc_flushes_total)
  io1=$(awk '$1 == "write_bytes:" { print $2 }' "/proc/$console_pid/io")
  task_wchar "$console_pid" >"$bench_dir/wamp-wchar1"
  [[ -z $db_url ]] || pg1=$(pg_counters "$db_url")
  local hb=$((hb1 - hb0)) fl=$((fl1 - fl0)) io=$((io1 - io0))
  echo "heartbeats $hb, flushes $fl ($(echo "scale=1; $hb / $fl" | bc) heartbeats per flush), Console process bytes written to storage $io ($(echo "scale=0; $io / $hb" | bc) per heartbeat)"
  # The thread that wrote the most (SQLite: the flusher's WAL frames and checkpoints; on
  # PostgreSQL every thread writes only to sockets).
  [[ -n $db_url ]] || join <(sort "$bench_dir/wamp-wchar0") <(sort "$bench_dir/wamp-wchar1") |
    awk -v hb="$hb" '{ d = $3 - $2; if (d > m) { m = d; t = $1 } } END {
      printf "busiest writing thread (%s): %d bytes written (write/pwrite), %.0f per heartbeat\n", t, m, m / hb }'
  if [[ -n $db_url ]]; then
    paste -d' ' <(echo "$pg0" | tr '\n' ' ') <(echo "$pg1" | tr '\n' ' ') | awk -v hb="$hb" '{
      n = NF / 2
      for (i = 1; i <= n; i++) d[i] = $(i + n) - $i
      printf "defenders: %d inserted, %d updated (%d HOT), %d deleted: %.3f rows per heartbeat\n", d[1], d[2], d[3], d[4], (d[1] + d[2] + d[4]) / hb
      printf "replica_alive: %d inserted, %d updated, %d deleted\n", d[5], d[6], d[8]
      printf "WAL (server-wide): %d records, %d full-page images, %d bytes (pg_stat_wal), %d bytes (pg_current_wal_lsn): %.0f bytes and %.2f records per heartbeat\n", d[9], d[10], d[11], d[12], d[12] / hb, d[9] / hb
    }'
  fi
  stop_console
}

[[ $# -gt 0 ]] || { sed -n '2,33p' "$0"; exit 2; }
for cmd in "$@"; do
  case $cmd in
    machine | b1 | b2 | b3 | b4 | b5 | compress | c1 | c2 | c3 | c4 | b2r | c1r | wamp) "$cmd" ;;
    *) echo "unknown benchmark '$cmd'" >&2; exit 2 ;;
  esac
done
