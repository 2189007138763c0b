#!/usr/bin/env bash
# The README's test command: installs what the tests need on a Debian machine
# (redis-server, postgresql, python3-dev), starts a throwaway PostgreSQL cluster for
# the `postgres` feature's tests (AUTHFLOW_TEST_POSTGRES), runs
# `cargo test --all-features` (extra arguments are passed on) and stops the cluster.
# `.ci/run` calls it. Run as root, or as a user who may sudo apt-get and su postgres.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)           # feature redis
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql) # feature postgres
if [ ${#need[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash ci/install-python.sh >/dev/null                                         # feature python
export PYO3_PYTHON=/usr/bin/python3

# A server given in AUTHFLOW_TEST_POSTGRES is used as it is (.ci/run starts one for
# the end-to-end tests too); otherwise a cluster lives as long as this script.
if [ -z "${AUTHFLOW_TEST_POSTGRES:-}" ]; then
  export AUTHFLOW_PG_DIR=${AUTHFLOW_PG_DIR:-$(mktemp -d /tmp/authflow-pg.XXXXXX)}
  AUTHFLOW_TEST_POSTGRES=$($sudo env AUTHFLOW_PG_DIR="$AUTHFLOW_PG_DIR" bash ci/start-postgres.sh)
  export AUTHFLOW_TEST_POSTGRES
  trap '$sudo env AUTHFLOW_PG_DIR="$AUTHFLOW_PG_DIR" bash ci/start-postgres.sh stop || true' EXIT
fi
echo "PostgreSQL for the tests: $AUTHFLOW_TEST_POSTGRES"

cargo test --all-features "$@"
