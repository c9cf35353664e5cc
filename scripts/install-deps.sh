#!/usr/bin/env bash
# Installs the Debian 12 packages Defender Console needs to build, run and test (and curl, jq and
# python3, which the README's examples use).
# Idempotent: does nothing when everything is present. Needs root or sudo for apt-get.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libcpp-httplib-dev libsqlite3-dev sqlite3 nlohmann-json3-dev libboost-dev
  libspdlog-dev catch2 libyaml-cpp-dev libcli11-dev libssl-dev uuid-dev libxxhash-dev libpq-dev
  curl jq python3
)
# Extra packages for the test command (browser tests, load tools, the fuzzing stage: Clang and
# libclang-rt-14-dev, which provides libFuzzer's libclang_rt.fuzzer-x86_64.a; systemd for
# `systemd-analyze verify` of the unit; e2fsprogs for the read-only file-system test's ext4 image;
# the registry tests: docker-registry, the CNCF distribution server, with htpasswd from
# apache2-utils for its bcrypt password file; and postgresql, whose server binaries
# scripts/with-postgres.sh starts for the PostgreSQL store tests; haproxy, the load balancer in
# front of the replicas of tests/reliability/replicas_test.cpp).
if [[ "${1:-}" == "--test" ]]; then
  packages+=(chromium nodejs npm jq wrk bc clang libclang-rt-14-dev systemd e2fsprogs docker-registry apache2-utils postgresql
    haproxy)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from elsewhere than Debian; accept any working node and npm.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
fi
((${#missing[@]} == 0)) && exit 0

echo "Installing: ${missing[*]}"
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
