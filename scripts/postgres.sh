#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback, for the tests that round-trip trips through a real database.
#
#   eval "$(bash scripts/postgres.sh start)"   # prints the exports below; the server runs until stopped
#   bash scripts/postgres.sh stop              # stops the server of $TAXI_DURATION_TEST_POSTGRES_DIR
#
# Uses Debian's PostgreSQL server, installed when missing if run as root; otherwise it
# says what to install and exports nothing, and those tests skip. The password is random and only
# travels in the URL the tests read.
set -euo pipefail

action=${1:-start}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

# PostgreSQL refuses to run as root: as root, run its programs as the `postgres` user the package creates.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then PATH="$PATH:/usr/sbin:/sbin" runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "$action" = stop ]; then
  dir=${TAXI_DURATION_TEST_POSTGRES_DIR:-}
  [ -n "$dir" ] || exit 0  # nothing was started
  as_postgres "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  exit 0
fi

if [ -z "$(pg_bin)" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 \
      || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2; }
  else
    echo "echo 'PostgreSQL tests skip: install postgresql (Debian/Ubuntu) to run them' >&2"
    exit 0
  fi
fi

dir=$(mktemp -d /tmp/taxi-pg.XXXXXX)
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '%s\n' "$password" >"$dir/pw"
[ "$(id -u)" = 0 ] && chown -R postgres "$dir"
as_postgres "$(pg_bin)/initdb" -D "$dir/data" -U taxi --pwfile="$dir/pw" -A scram-sha-256 >/dev/null
rm -f "$dir/pw"
as_postgres "$(pg_bin)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
PGPASSWORD=$password psql -q -h 127.0.0.1 -p "$port" -U taxi -d postgres -c "CREATE DATABASE taxi" >/dev/null
echo "export TAXI_DURATION_TEST_POSTGRES_URL='postgresql://taxi:$password@127.0.0.1:$port/taxi'"
echo "export TAXI_DURATION_TEST_POSTGRES_DIR='$dir'"
