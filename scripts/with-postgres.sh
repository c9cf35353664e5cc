#!/usr/bin/env bash
# Runs a command next to a throw-away PostgreSQL 15 server:
#
#   scripts/with-postgres.sh -- <command> [args...]
#
# initdb into a new temporary directory, trust authentication for loopback and the server's own
# Unix socket only, listening on 127.0.0.1 at a free port (another is tried if that one is taken
# before the server binds it), the socket in the temporary directory. Once pg_isready answers, a
# database is created and the command runs with
#
#   DC_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:<port>/dc_test
#
# The server is stopped and the directory removed when the script exits (also on failure,
# Ctrl-C or SIGTERM); the script exits with the command's status. Run as root, the server runs as
# the `postgres` system user (PostgreSQL refuses to run as root).
#
# The server is tuned for tests: fsync=off and synchronous_commit=off unless DC_PG_FSYNC=on
# (use that when measuring write throughput). DC_PG_BIN overrides the server binaries'
# directory (default /usr/lib/postgresql/15/bin, Debian's postgresql-15 package).
set -euo pipefail

usage() {
  echo "usage: $0 -- <command> [args...]" >&2
  exit 2
}
[[ "${1:-}" == "--" ]] && shift
(($# > 0)) || usage

bin=${DC_PG_BIN:-/usr/lib/postgresql/15/bin}
for tool in initdb pg_ctl pg_isready postgres psql; do
  if [[ ! -x "$bin/$tool" ]]; then
    echo "with-postgres.sh: $bin/$tool not found (PostgreSQL 15 server binaries):" \
      "run scripts/install-deps.sh --test" >&2
    exit 2
  fi
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/dc-postgres.XXXXXX")
data="$dir/data"
log="$dir/server.log"
as_server=()
if [[ $(id -u) -eq 0 ]]; then
  if ! id postgres >/dev/null 2>&1; then
    echo "with-postgres.sh: running as root needs the 'postgres' system user" \
      "(created by Debian's postgresql package): run scripts/install-deps.sh --test" >&2
    rm -rf "$dir"
    exit 2
  fi
  chown postgres:postgres "$dir"
  as_server=(runuser -u postgres --)
fi
# The server user may not be allowed into the caller's working directory.
server() { (cd "$dir" && "${as_server[@]}" "$@"); }

started=0
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if ((started)); then
    server "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! server "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C --auth=trust --no-sync \
  >"$dir/initdb.log" 2>&1; then
  echo "with-postgres.sh: initdb failed:" >&2
  cat "$dir/initdb.log" >&2
  exit 1
fi
# Only the server's own socket (in the private directory) and loopback TCP, without a password.
server tee "$data/pg_hba.conf" >/dev/null <<'EOF'
local all all trust
host  all all 127.0.0.1/32 trust
EOF

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

fsync=${DC_PG_FSYNC:-off}
port=
for attempt in 1 2 3 4 5; do
  candidate=$(free_port)
  if server "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 -s start -o \
    "-c listen_addresses=127.0.0.1 -c port=$candidate -c unix_socket_directories=$dir \
     -c fsync=$fsync -c synchronous_commit=$fsync -c full_page_writes=$fsync \
     -c max_connections=200" >/dev/null 2>&1; then
    port=$candidate
    started=1
    break
  fi
  # Taken between the probe and the bind: try another port. Anything else is fatal.
  if ! grep -q "could not bind\|Address already in use" "$log" 2>/dev/null; then
    echo "with-postgres.sh: the server did not start:" >&2
    cat "$log" >&2 2>/dev/null || true
    exit 1
  fi
  : >"$log"
done
if [[ -z "$port" ]]; then
  echo "with-postgres.sh: no free port after 5 attempts" >&2
  exit 1
fi

for _ in $(seq 1 100); do
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
  sleep 0.1
done
if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
  echo "with-postgres.sh: the server at 127.0.0.1:$port does not answer:" >&2
  cat "$log" >&2
  exit 1
fi
"$bin/psql" -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
  -c "CREATE DATABASE dc_test" >/dev/null

export DC_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/dc_test"
# In the background (stdin kept) so that a SIGINT or SIGTERM to this script is forwarded to the
# command at once instead of waiting for it to finish.
"$@" <&0 &
child=$!
forward() {
  kill "-$1" "$child" 2>/dev/null || true
  wait "$child" 2>/dev/null || true
  exit "$2"
}
trap 'forward INT 130' INT
trap 'forward TERM 143' TERM
set +e
wait "$child"
status=$?
set -e
exit "$status"
