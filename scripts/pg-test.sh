#!/usr/bin/env bash
# Throwaway PostgreSQL on 127.0.0.1 for tests (never for production: fsync is off).
#
#   scripts/pg-test.sh [start] [DIR] [PORT]   start (or reuse) a server; prints its URL on stdout
#   scripts/pg-test.sh stop [DIR]             stop it (the directory is left for the caller)
#   scripts/pg-test.sh url [DIR] [PORT]       print the URL only
#
# DIR defaults to /tmp/keyferry-pg-test, PORT to 55432. A lone numeric argument is a PORT.
# Typical use:
#   export KEYFERRY_TEST_POSTGRES_URL=$(scripts/pg-test.sh start)
#   cargo test -p keyferry-store
#   scripts/pg-test.sh stop
# Needs the Debian/Ubuntu `postgresql` package (any major version). PostgreSQL refuses to run
# as root, so as root the server runs as the `postgres` user via runuser. PG_BIN overrides
# the binary directory.
set -euo pipefail

cmd=start
case "${1:-}" in
  start|stop|url) cmd=$1; shift ;;
esac
dir=/tmp/keyferry-pg-test
port=55432
if [[ $# -ge 1 && $1 =~ ^[0-9]+$ ]]; then
  port=$1; shift
fi
if [[ $# -ge 1 ]]; then dir=$1; shift; fi
if [[ $# -ge 1 ]]; then port=$1; shift; fi
[[ $port =~ ^[0-9]+$ ]] || { echo "pg-test.sh: bad port '$port'" >&2; exit 2; }

user=kms
url="postgres://${user}@127.0.0.1:${port}/postgres"
if [[ $cmd == url ]]; then echo "$url"; exit 0; fi

find_bin() {
  if [[ -n ${PG_BIN:-} ]]; then echo "$PG_BIN"; return; fi
  local newest
  # Newest installed major version, e.g. /usr/lib/postgresql/15/bin.
  newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -n $newest && -x $newest/pg_ctl ]]; then echo "$newest"; return; fi
  if command -v pg_config >/dev/null 2>&1 && [[ -x $(pg_config --bindir)/pg_ctl ]]; then
    pg_config --bindir; return
  fi
  if command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; return; fi
  echo "pg-test.sh: no PostgreSQL binaries found; apt-get install -y postgresql" >&2
  exit 1
}
bin=$(find_bin)

# Run a PostgreSQL binary as a non-root user.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

data=$dir/data
sock=$dir/sock
log=$dir/log

if [[ $cmd == stop ]]; then
  if [[ -f $data/postmaster.pid ]]; then
    as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >&2
  else
    echo "pg-test.sh: nothing running in $dir" >&2
  fi
  exit 0
fi

mkdir -p "$dir" "$sock"
if [[ $(id -u) -eq 0 ]]; then
  chown postgres: "$dir" "$sock"
  # The server user must be able to reach DIR (mktemp -d makes it 0700).
  chmod 0755 "$dir"
fi

if [[ ! -f $data/PG_VERSION ]]; then
  as_pg "$bin/initdb" -D "$data" -U "$user" --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2; exit 1; }
fi

if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  echo "pg-test.sh: already running in $dir" >&2
else
  # fsync/full_page_writes/synchronous_commit off: fast and fine for throwaway test data.
  as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-p $port -k $sock -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200" \
    start >&2 || { cat "$log" >&2; exit 1; }
fi
echo "pg-test.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at 127.0.0.1:$port (data in $dir); stop with: $0 stop $dir" >&2
echo "$url"
