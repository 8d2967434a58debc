#!/bin/sh
# A throwaway PostgreSQL server for tests and benchmarks (Debian's
# postgresql-15 binaries; nothing of the system's clusters is touched).
#
#   pg-test-server.sh start DIR [--watch PID] [--durable]
#       initdb DIR/data, start the server listening on a unix socket in DIR
#       and on 127.0.0.1 at a free port, create the database sekisho_test
#       (with pg_trgm when contrib is installed), print its conninfo:
#         host=DIR port=PORT dbname=sekisho_test user=USER
#       --watch PID: stop the server and remove DIR when PID exits (a test
#       run that crashes leaves nothing running).
#       --durable: keep fsync and synchronous_commit on (benchmarks); the
#       default turns them off (tests only need the semantics).
#   pg-test-server.sh stop DIR
#       stop the server and remove DIR.
#
# postgres refuses to run as root: as root the server runs as the
# 'postgres' user (runuser), DIR is handed to it. Exit 1 with a reason on
# stderr when the server cannot start (e.g. PostgreSQL not installed).
set -eu

PGBIN=${PGBIN:-}
if [ -z "$PGBIN" ]; then
  for v in 17 16 15 14 13; do
    if [ -x /usr/lib/postgresql/$v/bin/pg_ctl ]; then PGBIN=/usr/lib/postgresql/$v/bin; break; fi
  done
fi

die() { echo "pg-test-server: $*" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 start DIR [--watch PID] [--durable] | stop DIR"
shift 2

case "$cmd" in
start)
  watch=""
  durable=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --watch) watch=$2; shift 2 ;;
      --durable) durable=1; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
  [ -n "$PGBIN" ] || die "PostgreSQL server binaries not found (apt-get install postgresql postgresql-contrib)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root and there is no 'postgres' user to run the server"
    chown postgres "$dir"
    user=postgres
  else
    user=$(id -un)
  fi
  as_owner "$PGBIN/initdb" -D "$dir/data" -U "$user" -A trust -E UTF8 --locale=C.UTF-8 -N \
    >"$dir/initdb.log" 2>&1 || die "initdb failed: $(tail -3 "$dir/initdb.log")"
  if [ $durable = 1 ]; then
    speed=""
  else
    speed="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  tries=0
  while :; do
    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # shellcheck disable=SC2086
    if as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c shared_buffers=128MB $speed" \
        >/dev/null 2>&1; then
      break
    fi
    tries=$((tries + 1))
    [ $tries -lt 3 ] || die "the server did not start: $(tail -3 "$dir/server.log" 2>/dev/null)"
  done
  psql=$PGBIN/psql
  [ -x "$psql" ] || psql=psql
  "$psql" -h "$dir" -p "$port" -U "$user" -d postgres -qAt -v ON_ERROR_STOP=1 \
      -c "CREATE DATABASE sekisho_test" >/dev/null 2>"$dir/psql.log" ||
    die "CREATE DATABASE failed: $(cat "$dir/psql.log")"
  # pg_trgm lives in public so that every test schema (search_path
  # "t_..., public") sees its operator classes.
  "$psql" -h "$dir" -p "$port" -U "$user" -d sekisho_test -qAt \
    -c "CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public" >/dev/null 2>&1 || true
  if [ -n "$watch" ]; then
    me=$(readlink -f "$0")
    setsid sh -c "while kill -0 $watch 2>/dev/null; do sleep 1; done; \"$me\" stop \"$dir\"" \
      </dev/null >/dev/null 2>&1 &
  fi
  echo "host=$dir port=$port dbname=sekisho_test user=$user"
  ;;
stop)
  [ -d "$dir" ] || exit 0
  if [ -n "$PGBIN" ] && [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  die "unknown command $cmd"
  ;;
esac
