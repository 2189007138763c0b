#!/usr/bin/env bash
# The reference server on SQL stores (features sqlite, postgres):
# - SQLite (the default database, a file in the working directory): log in, stop with
#   SIGTERM (a clean exit), start again with another bootstrap password: the account
#   and its password survived, and akadmin was not created twice;
# - PostgreSQL (when AUTHFLOW_TEST_POSTGRES is set, as ci/test.sh and .ci/run do): two
#   instances on one database, no Redis: a login started on A finishes on B, A sees it;
#   a flow edited through the API on A is served in its new version by A at once and by
#   B within its 1 s revision-check interval.
# Prints "N passed, M failed"; exits non-zero on failure.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== cargo build --example server --features http,sqlite,postgres"
(cd "$ROOT" && cargo build -q --example server --features http,sqlite,postgres) || { echo "0 passed, 1 failed"; exit 1; }
BIN="$ROOT/target/debug/examples/server"
export AUTHFLOW_SECRET_KEY="sql-instances-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
unset AUTHFLOW_DATABASE_URL AUTHFLOW_REDIS_URL

passed=0; failed=0
check() { if [ "$2" = "$3" ]; then echo "  ok   $1"; passed=$((passed+1)); else echo "  FAIL $1: got '$2', want '$3'" >&2; failed=$((failed+1)); fi; }
exec_url() { echo "http://$1/api/v3/flows/executor/$2/?query="; }
component() { python3 -c 'import json,sys; print(json.load(sys.stdin).get("component",""))' 2>/dev/null; }
post() { curl -s -c "$JAR" -b "$JAR" -H 'Content-Type: application/json' "$@"; }
wait_up() { for _ in $(seq 1 150); do curl -sf "http://$1/api/v3/flows/executor/default-authentication-flow/" >/dev/null && return 0; sleep 0.1; done; return 1; }
start() { # start ADDR LOG [ARGS...]: in $WORK (the SQLite default file lands there)
  local addr=$1 log=$2; shift 2
  (cd "$WORK" && AUTHFLOW_LISTEN="$addr" exec "$BIN" "$@" >"$log" 2>&1) &
  LAST=$!; PIDS+=($LAST)
  wait_up "$addr" || echo "  (server on $addr did not come up)" >&2
}
login() { # login FIRST SECOND PASSWORD: identification on FIRST, password on SECOND (cookies in $JAR)
  curl -s -c "$JAR" -b "$JAR" "$(exec_url "$1" default-authentication-flow)" >/dev/null
  post -d '{"component":"ak-stage-identification","uid_field":"akadmin"}' "$(exec_url "$1" default-authentication-flow)" >/dev/null
  post -d "{\"component\":\"ak-stage-password\",\"password\":\"$3\"}" "$(exec_url "$2" default-authentication-flow)" | component
}

A="127.0.0.1:$(free_port)"
JAR="$WORK/jar"
AUTHFLOW_BOOTSTRAP_PASSWORD=first-Pw-1 start "$A" "$WORK/sqlite-1.log"
check "sqlite: akadmin logs in" "$(login "$A" "$A" first-Pw-1)" xak-flow-redirect
check "sqlite: the default database file was created" "$([ -f "$WORK/authflow.db" ] && echo yes)" yes
kill -TERM "$LAST"; wait "$LAST"; code=$?
check "sqlite: SIGTERM stops the server cleanly" "$code" 0
AUTHFLOW_BOOTSTRAP_PASSWORD=second-Pw-2 start "$A" "$WORK/sqlite-2.log"
JAR="$WORK/jar-2"
check "sqlite: after a restart the stored password still logs in" "$(login "$A" "$A" first-Pw-1)" xak-flow-redirect
JAR="$WORK/jar-3"
check "sqlite: the new bootstrap password did not replace it" "$(login "$A" "$A" second-Pw-2)" ak-stage-password
kill -TERM "$LAST"; wait "$LAST"

if [ -n "${AUTHFLOW_TEST_POSTGRES:-}" ]; then
  db="authflow_e2e_$RANDOM$RANDOM"
  python3 - "$AUTHFLOW_TEST_POSTGRES" "$db" <<'PY' || true
import subprocess, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
subprocess.run([next(p for p in __import__("glob").glob("/usr/lib/postgresql/*/bin/createdb")),
                "-h", u.hostname, "-p", str(u.port), "-U", u.username or "postgres", sys.argv[2]], check=True)
PY
  url="${AUTHFLOW_TEST_POSTGRES%/*}/$db"
  B="127.0.0.1:$(free_port)"
  export AUTHFLOW_BOOTSTRAP_TOKEN="e2e-token-$RANDOM$RANDOM"
  AUTHFLOW_BOOTSTRAP_PASSWORD=pg-Pw-1 start "$A" "$WORK/pg-a.log" --database "$url"
  PID_A=$LAST
  AUTHFLOW_BOOTSTRAP_PASSWORD=pg-Pw-other start "$B" "$WORK/pg-b.log" --database "$url"
  PID_B=$LAST
  JAR="$WORK/jar-pg"
  check "postgres: a login started on A finishes on B" "$(login "$A" "$B" pg-Pw-1)" xak-flow-redirect
  check "postgres: A sees the login (password change applies)" "$(curl -s -c "$JAR" -b "$JAR" "$(exec_url "$A" default-password-change)" | component)" ak-stage-prompt
  JAR="$WORK/jar-pg-2"
  check "postgres: B bootstrapped no second akadmin" "$(login "$B" "$A" pg-Pw-other)" ak-stage-password
  # A flow edited through the API on A: A serves it at once (its own write), B within
  # the reference server's 1 s revision-check interval (it trusts its cached definition
  # that long), measured here with a 2.5 s margin for slow machines.
  title_of() { curl -s "$(exec_url "$1" default-authentication-flow)" | python3 -c 'import json,sys; print(json.load(sys.stdin)["flow_info"]["title"])' 2>/dev/null; }
  title_of "$B" >/dev/null # B has the definition cached
  new_title="Edited on A $RANDOM"
  status=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H "Authorization: Bearer $AUTHFLOW_BOOTSTRAP_TOKEN" \
    -H 'Content-Type: application/json' -d "{\"title\":\"$new_title\"}" "http://$A/api/v3/flows/instances/default-authentication-flow/")
  check "postgres: the flow edited through the API on A" "$status" 200
  check "postgres: A serves the edit at once" "$(title_of "$A")" "$new_title"
  seen=no; started=$(date +%s%N)
  while [ $(( ($(date +%s%N) - started) / 1000000 )) -lt 5000 ]; do
    [ "$(title_of "$B")" = "$new_title" ] && { seen=yes; break; }
    sleep 0.1
  done
  elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
  echo "  (B served the edit after ${elapsed} ms)"
  check "postgres: B serves the edit made on A" "$seen" yes
  check "postgres: B serves it within the interval (+ margin)" "$([ "$elapsed" -lt 2500 ] && echo yes || echo "no (${elapsed} ms)")" yes
  # An account enrolled on A logs in on B; a password changed on B is refused on A.
  JAR="$WORK/jar-enroll"
  enroll=$(exec_url "$A" default-enrollment-flow)
  curl -s -c "$JAR" -b "$JAR" "$enroll" >/dev/null
  post -d '{"component":"ak-stage-prompt","username":"erin","password":"Erin-Pw-1234","password_repeat":"Erin-Pw-1234"}' "$enroll" >/dev/null
  check "postgres: enrolled on A (logged in)" "$(post -d '{"component":"ak-stage-prompt","name":"Erin","email":"erin@example.com"}' "$enroll" | component)" xak-flow-redirect
  user_login() { # user_login FIRST SECOND UID PASSWORD (fresh cookies in $JAR)
    rm -f "$JAR"
    curl -s -c "$JAR" -b "$JAR" "$(exec_url "$1" default-authentication-flow)" >/dev/null
    post -d "{\"component\":\"ak-stage-identification\",\"uid_field\":\"$3\"}" "$(exec_url "$1" default-authentication-flow)" >/dev/null
    post -d "{\"component\":\"ak-stage-password\",\"password\":\"$4\"}" "$(exec_url "$2" default-authentication-flow)" | component
  }
  JAR="$WORK/jar-erin"
  check "postgres: the account enrolled on A logs in on B" "$(user_login "$B" "$B" erin Erin-Pw-1234)" xak-flow-redirect
  change=$(exec_url "$B" default-password-change)
  csrf=$(awk '$6 == "authentik_csrf" {print $7}' "$JAR" | tail -n1)
  curl -s -c "$JAR" -b "$JAR" "$change" >/dev/null
  check "postgres: password changed on B" "$(post -H "X-authentik-CSRF: $csrf" -d '{"component":"ak-stage-prompt","password":"Erin-New-5678","password_repeat":"Erin-New-5678"}' "$change" | component)" xak-flow-redirect
  check "postgres: the old password is refused on A" "$(user_login "$A" "$A" erin Erin-Pw-1234)" ak-stage-password
  check "postgres: the new password logs in on A" "$(user_login "$A" "$A" erin Erin-New-5678)" xak-flow-redirect
  # Both restarted: the account (and its new password) is still there.
  kill -TERM "$PID_A" "$PID_B"; wait "$PID_A" "$PID_B" 2>/dev/null
  AUTHFLOW_BOOTSTRAP_PASSWORD=pg-Pw-1 start "$A" "$WORK/pg-a2.log" --database "$url"
  AUTHFLOW_BOOTSTRAP_PASSWORD=pg-Pw-other start "$B" "$WORK/pg-b2.log" --database "$url"
  check "postgres: after restarting both, the account logs in (A to B)" "$(user_login "$A" "$B" erin Erin-New-5678)" xak-flow-redirect
  # The database goes away mid-flow (only a cluster of ci/start-postgres.sh, whose data
  # is in $AUTHFLOW_PG_DIR/data): 503 JSON within 5 s, then the same flow completes
  # within 10 s of it coming back.
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  data="${AUTHFLOW_PG_DIR:-}/data"
  if [ -n "${AUTHFLOW_PG_DIR:-}" ] && [ -f "$data/postgresql.conf" ]; then
    as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
    JAR="$WORK/jar-outage"
    curl -s -c "$JAR" -b "$JAR" "$(exec_url "$A" default-authentication-flow)" >/dev/null
    check "postgres: identification before the outage" "$(post -d '{"component":"ak-stage-identification","uid_field":"akadmin"}' "$(exec_url "$A" default-authentication-flow)" | component)" ak-stage-password
    as_pg "'$pgbin/pg_ctl' -D '$data' -m immediate stop" >/dev/null
    started=$(date +%s%N)
    status=$(post -o "$WORK/outage.json" -w '%{http_code}' -d '{"component":"ak-stage-password","password":"pg-Pw-1"}' "$(exec_url "$A" default-authentication-flow)")
    elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
    check "postgres: database gone: 503" "$status" 503
    check "postgres: database gone: the answer is JSON" "$(python3 -c 'import json,sys; json.load(open(sys.argv[1])); print("json")' "$WORK/outage.json" 2>/dev/null)" json
    check "postgres: database gone: answered within 5 s" "$([ "$elapsed" -lt 5000 ] && echo yes || echo "no (${elapsed} ms)")" yes
    as_pg "'$pgbin/pg_ctl' -D '$data' -l '$AUTHFLOW_PG_DIR/log' -w start" >/dev/null
    back=""; started=$(date +%s)
    while [ $(( $(date +%s) - started )) -lt 10 ]; do
      back=$(post -d '{"component":"ak-stage-password","password":"pg-Pw-1"}' "$(exec_url "$A" default-authentication-flow)" | component)
      [ "$back" = xak-flow-redirect ] && break
      sleep 0.5
    done
    check "postgres: back: the same flow completes within 10 s" "$back" xak-flow-redirect
  else
    echo "  SKIPPED the outage: AUTHFLOW_PG_DIR does not name a cluster of ci/start-postgres.sh"
  fi
else
  echo "  SKIPPED the PostgreSQL instances: AUTHFLOW_TEST_POSTGRES is not set"
  [ -n "${CI:-}" ] && { echo "  FAIL: under CI the PostgreSQL half must run" >&2; failed=$((failed+1)); }
fi

[ "$failed" -eq 0 ] || { echo "server logs:" >&2; tail -n 8 "$WORK"/*.log >&2; }
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
