#!/usr/bin/env bash
# Installs a built Defender Console as a systemd service (docs/operations.md, "Install"):
#   /usr/local/bin/defender-console                      the executable
#   /usr/local/share/defender-console/ui/                the web page
#   /usr/local/share/doc/defender-console/               operations.md and the other docs
#   /etc/systemd/system/defender-console.service         the unit (replaced on upgrade)
#   /etc/defender-console/defender-console.env           settings (created once, never replaced)
# The database lives in /var/lib/defender-console (the unit's StateDirectory=).
#
#   sudo packaging/install.sh [build directory, default build/release]
# It does not start or restart the service: `systemctl enable --now defender-console` the first
# time; on upgrade, back up and restart as docs/operations.md describes. DESTDIR=<dir> installs
# under <dir> instead of / (packaging, a look at the result) without root or daemon-reload.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$src/build/release}"
binary="$build/main/defender-console"
if [[ ! -x "$binary" ]]; then
  echo "no executable at $binary: build first (README, \"Build\"), or pass the build directory" >&2
  exit 1
fi
root="${DESTDIR:-}"
if [[ -z "$root" && $EUID -ne 0 ]]; then
  echo "run as root (it writes /usr/local and /etc), or set DESTDIR" >&2
  exit 1
fi
install -D -m 0755 "$binary" "$root/usr/local/bin/defender-console"
rm -rf "$root/usr/local/share/defender-console/ui"
install -d -m 0755 "$root/usr/local/share/defender-console"
cp -r "$src/web/ui" "$root/usr/local/share/defender-console/ui"
chmod -R a+rX "$root/usr/local/share/defender-console/ui"
install -d -m 0755 "$root/usr/local/share/doc/defender-console"
install -m 0644 "$src"/docs/*.md "$root/usr/local/share/doc/defender-console/"
install -D -m 0644 "$src/packaging/systemd/defender-console.service" \
  "$root/etc/systemd/system/defender-console.service"
install -d -m 0755 "$root/etc/defender-console"
if [[ ! -e "$root/etc/defender-console/defender-console.env" ]]; then
  install -m 0600 "$src/packaging/systemd/defender-console.env" \
    "$root/etc/defender-console/defender-console.env"
fi
if [[ -z "$root" ]]; then
  systemctl daemon-reload 2>/dev/null || echo "systemd is not running here: run systemctl daemon-reload later"
fi
echo "installed $("$root/usr/local/bin/defender-console" --version) under ${root:-/}"
