#!/usr/bin/env bash
# Installs the Debian packages Sekisho needs (only the missing ones; one
# apt-get update), then configures and builds into build/.
#   appliance/setup.sh [--no-build]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

mapfile -t wanted < <(grep -v '^\s*#' appliance/debian-packages.txt | awk 'NF {print $1}')
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} Debian package(s): ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  # Postfix is a test server only (a private instance per test): install it unconfigured.
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo_cmd debconf-set-selections
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "${1:-}" = "--no-build" ] && exit 0
werror=false; [ -n "${CI:-}" ] && werror=true
if [ ! -f build/build.ninja ]; then
  meson setup build -Dwerror=$werror >/dev/null
else
  meson configure build -Dwerror=$werror >/dev/null
fi
meson compile -C build
