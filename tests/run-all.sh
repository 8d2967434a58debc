#!/usr/bin/env bash
# Every test, as CI runs it: installs what is missing, then
#   1. build/        g++ (werror under CI): suites unit, replay, wire, web
#   2. build-asan/   g++ with ASan+UBSan: suites unit and wire (the dataplane
#                    itself runs sanitized on the virtual wire)
#   3. build-fuzz/   clang with libFuzzer: suite fuzz (short runs)
# and ends with one summary line "N passed, N failed, N skipped".
#   tests/run-all.sh [--quick]   (--quick: build/ only)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ "$(id -u)" -eq 0 ] || { echo "run-all: the wire tests need root (network namespaces); try: sudo $0" >&2; exit 2; }
appliance/setup.sh --no-build || exit 1
werror=false; [ -n "${CI:-}" ] && werror=true
jobs=$(nproc)
status=0
ran=()

configure() {  # dir, meson args...
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then meson configure "$dir" "$@" >/dev/null
  else meson setup "$dir" "$@" >/dev/null; fi
}

stage() {  # title, dir, test args...
  local title=$1 dir=$2; shift 2
  echo "=== $title"
  rm -f "$dir/meson-logs/testlog.json"
  ran+=("$dir")
  if ! meson compile -C "$dir" -j "$jobs" > "$dir/compile.log" 2>&1; then
    tail -40 "$dir/compile.log"; echo "=== $title: build failed"; status=1; return
  fi
  meson test -C "$dir" --print-errorlogs --num-processes 1 "$@" || status=1
}

configure build -Dwerror=$werror -Dbuildtype=debugoptimized
stage "g++ build: unit, replay and wire tests" build --no-suite fuzz

if [ "${1:-}" != "--quick" ]; then
  configure build-asan -Dwerror=$werror -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
  stage "ASan+UBSan build: unit and wire tests" build-asan --suite unit --suite wire

  CC=clang CXX=clang++ configure build-fuzz -Dfuzzing=true -Dwire_tests=false -Db_lundef=false -Dbuildtype=debugoptimized
  stage "clang libFuzzer build: short fuzz runs" build-fuzz --suite fuzz
fi

/usr/bin/python3 - "${ran[@]}" <<'PY'
import json, os, sys
p = f = s = 0
for d in sys.argv[1:]:
    log = os.path.join(d, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        continue  # no test in that stage (its exit status is in ours)
    for line in open(log):
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"): p += 1
        elif r == "SKIP": s += 1
        else: f += 1
print(f"{p} passed, {f} failed, {s} skipped")
PY
exit $status
