#!/usr/bin/env bash
# Two reference-server processes sharing one Redis (feature redis): a login started on
# instance A is finished on B, A sees the login, and a logout on B is seen by A.
# Starts redis-server and both servers on free loopback ports; stops them on exit.
# Prints "N passed, M failed"; exits non-zero on failure.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

command -v redis-server >/dev/null || { echo "e2e: redis-server is required" >&2; echo "0 passed, 1 failed"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== cargo build --release --example server --features http,redis"
(cd "$ROOT" && cargo build --release --example server --features http,redis) || { echo "0 passed, 1 failed"; exit 1; }
BIN="$ROOT/target/release/examples/server"

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
export AUTHFLOW_SECRET_KEY="two-instances-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
export AUTHFLOW_BOOTSTRAP_PASSWORD="pw-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
A="127.0.0.1:$(free_port)"; B="127.0.0.1:$(free_port)"
sleep 0.3
for addr in "$A" "$B"; do
  AUTHFLOW_LISTEN="$addr" "$BIN" --redis "redis://127.0.0.1:$RPORT/" >"$WORK/server-$addr.log" 2>&1 &
  PIDS+=($!)
done
for addr in "$A" "$B"; do
  for _ in $(seq 1 100); do curl -sf "http://$addr/api/v3/flows/executor/default-authentication-flow/" >/dev/null && break; sleep 0.1; done
done

JAR="$WORK/jar"
exec_url() { echo "http://$1/api/v3/flows/executor/$2/?query="; }
component() { python3 -c 'import json,sys; print(json.load(sys.stdin).get("component",""))'; }
post() { curl -s -c "$JAR" -b "$JAR" -H 'Content-Type: application/json' "$@"; }
passed=0; failed=0
check() { if [ "$2" = "$3" ]; then echo "  ok   $1"; passed=$((passed+1)); else echo "  FAIL $1: got '$2', want '$3'" >&2; failed=$((failed+1)); fi; }

login=default-authentication-flow
check "A: identification" "$(curl -s -c "$JAR" -b "$JAR" "$(exec_url "$A" $login)" | component)" ak-stage-identification
check "A: password stage after identification" "$(post -d '{"component":"ak-stage-identification","uid_field":"akadmin"}' "$(exec_url "$A" $login)" | component)" ak-stage-password
check "B: the password finishes the login started on A" "$(post -d "{\"component\":\"ak-stage-password\",\"password\":\"$AUTHFLOW_BOOTSTRAP_PASSWORD\"}" "$(exec_url "$B" $login)" | component)" xak-flow-redirect
check "A: the session is logged in (password change applies)" "$(curl -s -c "$JAR" -b "$JAR" "$(exec_url "$A" default-password-change)" | component)" ak-stage-prompt
# Logout asks for confirmation on GET; the confirming POST (CSRF header) logs out.
confirm=$(curl -s -c "$JAR" -b "$JAR" "$(exec_url "$B" default-invalidation-flow)")
check "B: logout asks first" "$(echo "$confirm" | component)" ak-stage-consent
token=$(echo "$confirm" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("token",""))')
csrf=$(awk '$6 == "authentik_csrf" { print $7 }' "$JAR" | tail -n 1)
check "B: logout" "$(post -H "X-authentik-CSRF: $csrf" -d "{\"component\":\"ak-stage-consent\",\"token\":\"$token\"}" "$(exec_url "$B" default-invalidation-flow)" | component)" xak-flow-redirect
check "A: the logout is seen (password change refused)" "$(curl -s -c "$JAR" -b "$JAR" "$(exec_url "$A" default-password-change)" | component)" ak-stage-access-denied

[ "$failed" -eq 0 ] || { echo "server logs:" >&2; tail -n 5 "$WORK"/server-*.log >&2; }
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
