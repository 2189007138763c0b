#!/usr/bin/env bash
# Recovery by mail end to end (features http,smtp): the reference server with
# --database memory sends through a real SMTP server (aiosmtpd, started here, saving every
# message into a directory). akadmin (bootstrap password and email) asks for a recovery
# mail at default-recovery-flow; the mail arrives; its link starts with
# AUTHFLOW_EXTERNAL_URL; opened in a fresh cookie jar its GET shows the confirmation
# (twice, nothing used), the POST confirms; a new password is set and the browser is
# logged in. Then the new password logs in at default-authentication-flow, the old one is
# refused, the same link again is refused as used, and an unknown address gets the same
# ak-stage-email challenge with no mail sent. (Expired links: tests/recovery.rs.)
# Prints "N passed, M failed"; exits non-zero on failure.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# aiosmtpd is installed for Debian's python (ci/install-python.sh), which need not be the
# first python3 on PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

echo "== cargo build --example server --features http,smtp"
(cd "$ROOT" && cargo build -q --example server --features http,smtp) || { echo "0 passed, 1 failed"; exit 1; }
BIN="$ROOT/target/debug/examples/server"
"$PY" -c 'import aiosmtpd' 2>/dev/null || { echo "  FAIL: no aiosmtpd for $PY (bash ci/install-python.sh)" >&2; echo "0 passed, 1 failed"; exit 1; }
export AUTHFLOW_SECRET_KEY="recovery-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
unset AUTHFLOW_DATABASE_URL AUTHFLOW_REDIS_URL AUTHFLOW_BOOTSTRAP_TOKEN

passed=0; failed=0
check() { if [ "$2" = "$3" ]; then echo "  ok   $1"; passed=$((passed+1)); else echo "  FAIL $1: got '$2', want '$3'" >&2; failed=$((failed+1)); fi; }
exec_url() { echo "http://$1/api/v3/flows/executor/$2/?query=${3:-}"; }
component() { python3 -c 'import json,sys; print(json.load(sys.stdin).get("component",""))' 2>/dev/null; }
field() { python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1],""))' "$1" 2>/dev/null; }
post() { curl -s -c "$JAR" -b "$JAR" -H 'Content-Type: application/json' "$@"; }
get() { curl -s -c "$JAR" -b "$JAR" "$@"; }
wait_up() { for _ in $(seq 1 150); do curl -sf "http://$1/api/v3/flows/executor/default-authentication-flow/" >/dev/null && return 0; sleep 0.1; done; return 1; }
mails() { find "$MAIL" -name '*.json' | wc -l | tr -d ' '; }
wait_mails() { # wait_mails N: up to 10 s for N messages in $MAIL
  for _ in $(seq 1 100); do [ "$(mails)" -ge "$1" ] && return 0; sleep 0.1; done; return 1
}

# The SMTP server: each message as JSON {from, to, data} in $MAIL; runs until killed.
SMTP_PORT=$(free_port)
MAIL="$WORK/mail"; mkdir -p "$MAIL"
"$PY" - "$SMTP_PORT" "$MAIL" >"$WORK/smtp.log" 2>&1 <<'PY' &
import json, os, sys, time
from aiosmtpd.controller import Controller
port, directory = int(sys.argv[1]), sys.argv[2]
class Sink:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Sink.n += 1
        path = os.path.join(directory, "%04d.json" % Sink.n)
        with open(path + ".tmp", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                       "data": envelope.content.decode("utf8", "replace")}, f)
        os.rename(path + ".tmp", path)
        return "250 Message accepted"
controller = Controller(Sink(), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
PY
PIDS+=($!)
for _ in $(seq 1 100); do grep -q ready "$WORK/smtp.log" 2>/dev/null && break; sleep 0.1; done
check "the SMTP server is up" "$(grep -c ready "$WORK/smtp.log" 2>/dev/null)" 1

# The server: mail through it, links under an external URL that is not the listen
# address's spelling (localhost, not 127.0.0.1): links must not come from the Host header.
PORT=$(free_port)
A="127.0.0.1:$PORT"
EXTERNAL="http://localhost:$PORT"
AUTHFLOW_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT?timeout=5" AUTHFLOW_EMAIL_FROM="authflow-e2e@example.com" \
  AUTHFLOW_EXTERNAL_URL="$EXTERNAL" AUTHFLOW_BOOTSTRAP_PASSWORD=old-Pw-1234 \
  AUTHFLOW_BOOTSTRAP_EMAIL=admin@example.com \
  "$BIN" --database memory --listen "$A" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
wait_up "$A" || echo "  (server on $A did not come up)" >&2

login() { # login UID PASSWORD: a fresh cookie jar; the last challenge's component
  JAR="$WORK/jar-login-$RANDOM"
  get "$(exec_url "$A" default-authentication-flow)" >/dev/null
  post -d "{\"component\":\"ak-stage-identification\",\"uid_field\":\"$1\"}" "$(exec_url "$A" default-authentication-flow)" >/dev/null
  post -d "{\"component\":\"ak-stage-password\",\"password\":\"$2\"}" "$(exec_url "$A" default-authentication-flow)" | component
}
request() { # request UID: asks for a recovery mail in a fresh jar; the answer's JSON
  JAR="$WORK/jar-request-$RANDOM"
  local url; url=$(exec_url "$A" default-recovery-flow)
  get "$url" | component >"$WORK/first"
  post -d "{\"component\":\"ak-stage-identification\",\"uid_field\":\"$1\"}" "$url"
}
shape() { python3 -c 'import json,sys; v=json.load(sys.stdin); print(sorted(v.keys()), v.get("component"))' 2>/dev/null; }

check "the old password logs in before recovery" "$(login akadmin old-Pw-1234)" xak-flow-redirect

known=$(request admin@example.com)
check "recovery starts with identification" "$(cat "$WORK/first")" ak-stage-identification
check "a known address: ak-stage-email" "$(echo "$known" | component)" ak-stage-email
wait_mails 1
check "one mail arrived at the SMTP server" "$(mails)" 1
msg=$(find "$MAIL" -name '*.json' | sort | head -n1)
# The message's envelope, headers and the text part's link (decoded: quoted-printable
# turns "=" into "=3D").
read_mail() {
  python3 - "$msg" "$1" <<'PY'
import email, email.policy, json, re, sys
m = json.load(open(sys.argv[1]))
what = sys.argv[2]
parsed = email.message_from_string(m["data"], policy=email.policy.default)
if what == "to": print(",".join(m["to"]))
elif what == "from": print(m["from"])
elif what == "subject": print(parsed["subject"])
elif what == "link":
    body = parsed.get_body(preferencelist=("plain",))
    text = body.get_content() if body else ""
    found = re.search(r"https?://\S+", text)
    print(found.group(0) if found else "")
PY
}
check "the mail's recipient" "$(read_mail to)" admin@example.com
check "the envelope sender is AUTHFLOW_EMAIL_FROM" "$(read_mail from)" authflow-e2e@example.com
echo "  (subject: $(read_mail subject))"
link=$(read_mail link)
echo "  (link: ${link%%flow_token=*}flow_token=<redacted>)"
check "the link starts with AUTHFLOW_EXTERNAL_URL" \
  "$(case "$link" in "$EXTERNAL/if/flow/default-recovery-flow/?"*flow_token=*) echo yes;; *) echo "no";; esac)" yes
query=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1].split("?", 1)[1], safe=""))' "$link")
RECOVER=$(exec_url "$A" default-recovery-flow "$query")

# A mail scanner's GETs (fresh jars) see the confirmation and do not use the link.
for i in 1 2; do
  JAR="$WORK/jar-scanner-$i"
  check "GET of the link ($i): the confirmation" "$(get "$RECOVER" | component)" ak-stage-consent
done

open_link() { # open_link: GET (the confirmation), POST with its token, in $JAR; the answer
  local first; first=$(get "$RECOVER")
  if [ "$(echo "$first" | component)" != ak-stage-consent ]; then echo "$first"; return; fi
  local token; token=$(echo "$first" | field token)
  post -d "{\"component\":\"ak-stage-consent\",\"token\":\"$token\"}" "$RECOVER"
}
JAR="$WORK/jar-link" # a fresh jar: the link opened in another browser
out=$(open_link)
check "confirmed: the new-password prompt" "$(echo "$out" | component)" ak-stage-prompt
out=$(post -d '{"component":"ak-stage-prompt","password":"new-Pw-5678","password_repeat":"new-Pw-5678"}' "$RECOVER")
check "new password set: logged in" "$(echo "$out" | component)" xak-flow-redirect
check "the recovering browser is logged in (password change applies)" \
  "$(get "$(exec_url "$A" default-password-change)" | component)" ak-stage-prompt

check "the new password logs in" "$(login akadmin new-Pw-5678)" xak-flow-redirect
check "the old password is refused" "$(login akadmin old-Pw-1234)" ak-stage-password

JAR="$WORK/jar-link-again"
out=$(open_link)
check "the same link again: refused" "$(echo "$out" | component)" ak-stage-access-denied
check "the same link again: its 'used' message" "$(echo "$out" | field error_message)" \
  "This link has already been used. Please request a new one."

unknown=$(request nobody@example.com)
check "an unknown address: ak-stage-email" "$(echo "$unknown" | component)" ak-stage-email
check "an unknown address: the same challenge shape" "$(echo "$unknown" | shape)" "$(echo "$known" | shape)"
sleep 1.5
check "an unknown address: no mail arrived" "$(mails)" 1

# A request carrying a forged Host: the new mail's link still starts with the external URL.
JAR="$WORK/jar-host"
url=$(exec_url "$A" default-recovery-flow)
get -H 'Host: evil.example.com' "$url" >/dev/null
post -H 'Host: evil.example.com' -d '{"component":"ak-stage-identification","uid_field":"akadmin"}' "$url" >/dev/null
wait_mails 2
check "a forged Host: a second mail" "$(mails)" 2
msg=$(find "$MAIL" -name '*.json' | sort | tail -n1)
link=$(read_mail link)
check "a forged Host: its link starts with AUTHFLOW_EXTERNAL_URL" \
  "$(case "$link" in "$EXTERNAL/if/flow/default-recovery-flow/?"*) echo yes;; *) echo "no ($link)";; esac)" yes

[ "$failed" -eq 0 ] || { echo "logs:" >&2; tail -n 12 "$WORK"/*.log >&2; }
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
