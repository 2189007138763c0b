#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests (feature `postgres`) and prints
# its URL on stdout: `export AUTHFLOW_TEST_POSTGRES=$(bash ci/start-postgres.sh)`.
# Installs Debian's `postgresql` if missing. PostgreSQL refuses to run as root, so the
# cluster belongs to the `postgres` user, in a temp dir, on a free loopback port, with
# trust authentication on 127.0.0.1 only. Stop it with `bash ci/start-postgres.sh stop`.
set -euo pipefail
dir=${AUTHFLOW_PG_DIR:-/tmp/authflow-ci-pg}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
fi
as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}
if [ "${1:-}" = stop ]; then
  [ -d "$dir/data" ] && as_pg "'$bin/pg_ctl' -D '$dir/data' -m fast stop" >&2 || true
  rm -rf "$dir"
  exit 0
fi
if [ -d "$dir/data" ]; then as_pg "'$bin/pg_ctl' -D '$dir/data' -m fast stop" >/dev/null 2>&1 || true; fi
rm -rf "$dir"
mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "'$bin/initdb' -D '$dir/data' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >/dev/null
# In the config file (not on the command line), so a plain `pg_ctl start` restarts it
# as it was (e2e/sql-instances.sh stops and starts it mid-flow).
cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
CONF
as_pg "'$bin/pg_ctl' -D '$dir/data' -l '$dir/log' -w start" >/dev/null
as_pg "'$bin/createdb' -h 127.0.0.1 -p $port -U postgres authflow_test"
echo "postgres://postgres@127.0.0.1:$port/authflow_test"
