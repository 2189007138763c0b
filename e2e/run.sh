#!/usr/bin/env bash
# End-to-end checks of the reference server (examples/server.rs):
#   1. authentik-client.mjs: authentik's own TypeScript client (@goauthentik/api) logs in
#      as akadmin, enrolls a new user and logs in as that user;
#   2. browser.mjs: headless Chromium logs in through /if/flow/default-authentication-flow/;
#   3. page-stages.mjs: the page renders the MFA, email and captcha challenges (executor
#      answers mocked by the script) and runs WebAuthn with Chromium's virtual
#      authenticator;
# all three run twice: authflow at the server's root, then nested under /auth
# (AUTHFLOW_MOUNT_PATH), where every link the server gives out must follow the prefix.
#
# Before the server: qr-check.mjs decodes the page's QR codes with zbarimg. After:
# mfa-browser.mjs sets up and uses TOTP, static codes and a passkey through the page, on
# a server that applied authentik's MFA blueprints; captcha-browser.mjs runs a captcha
# stage through the page with a stub provider on another origin.
#
# Builds the server in release mode (AUTHFLOW_E2E_PROFILE=dev: the debug build), starts
# it on a free loopback port, runs the checks, stops the server on exit. Installs what is
# missing: the npm packages (`npm ci`) and Debian's chromium, zbar-tools and oathtool
# (apt-get, needs root). Prints "N passed, M failed"; exits non-zero
# on any failure. Server log and screenshots: e2e/artifacts/.
set -uo pipefail

E2E_DIR="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$E2E_DIR/.." && pwd)"
ARTIFACTS="$E2E_DIR/artifacts"
CHECKS=9
mkdir -p "$ARTIFACTS"

SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Setup failures count every check as failed.
setup_failed() {
    echo "e2e: setup failed: $*" >&2
    echo "0 passed, $CHECKS failed"
    exit 1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

# --- tools -------------------------------------------------------------------------
command -v node >/dev/null && command -v npm >/dev/null || setup_failed "node and npm are required"

# npm ci unless node_modules already holds exactly the locked versions.
deps_ok() {
    (cd "$E2E_DIR" && node -e '
        const fs = require("fs");
        const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
        for (const [path, meta] of Object.entries(lock.packages || {})) {
            if (!path) continue;
            const pkg = JSON.parse(fs.readFileSync(path + "/package.json", "utf8"));
            if (pkg.version !== meta.version) process.exit(1);
        }
    ' 2>/dev/null)
}
if ! deps_ok; then
    echo "== npm ci (e2e/)"
    (cd "$E2E_DIR" && npm ci --no-audit --no-fund) || setup_failed "npm ci failed"
fi

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    echo "== apt-get install chromium"
    as_root apt-get update -q || setup_failed "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || setup_failed "cannot install chromium"
    [ -x "$CHROMIUM" ] || setup_failed "$CHROMIUM missing after install"
fi
export CHROMIUM

# zbarimg decodes the page's QR codes; oathtool computes TOTP codes independently of authflow.
tools=()
command -v zbarimg >/dev/null || tools+=(zbar-tools)
command -v oathtool >/dev/null || tools+=(oathtool)
if [ ${#tools[@]} -gt 0 ]; then
    echo "== apt-get install ${tools[*]}"
    as_root apt-get update -q || setup_failed "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${tools[@]}" || setup_failed "cannot install ${tools[*]}"
fi

# --- server ------------------------------------------------------------------------
PROFILE="${AUTHFLOW_E2E_PROFILE:-release}"
# blueprints + python (expression policies) + webauthn: the MFA check runs authentik's
# flows-login-2fa, whose validate binding carries an expression policy; captcha: the
# captcha check's stage verifies tokens at its (stub) provider.
FEATURES="http,blueprints,python,webauthn,captcha"
echo "== cargo build --profile $PROFILE --example server --features $FEATURES"
(cd "$ROOT" && cargo build --profile "$PROFILE" --example server --features "$FEATURES") || setup_failed "cargo build failed"
if [ "$PROFILE" = dev ]; then SERVER_BIN="$ROOT/target/debug/examples/server"; else SERVER_BIN="$ROOT/target/$PROFILE/examples/server"; fi

passed=0
failed=0
failures=()
run_check() {
    local name="$1"
    shift
    echo "== $name"
    if (cd "$E2E_DIR" && timeout 300 "$@"); then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

# Starts the server with authflow mounted under $1 ("" = the root, or e.g. /auth) and
# the server arguments that follow; returns when it answers.
start_server() {
    local mount="$1" label="${1:-/}"
    shift
    local port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 19480)"
    export AUTHFLOW_LISTEN="127.0.0.1:$port"
    export AUTHFLOW_MOUNT_PATH="$mount"
    export AUTHFLOW_URL="http://$AUTHFLOW_LISTEN$mount"
    export AUTHFLOW_BOOTSTRAP_PASSWORD="${AUTHFLOW_BOOTSTRAP_PASSWORD:-e2e-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}"
    SERVER_LOG="$ARTIFACTS/server${mount//\//-}${SERVER_LOG_SUFFIX:-}.log"

    echo "== starting the server on $AUTHFLOW_URL, mounted at $label $* (log: ${SERVER_LOG#"$ROOT"/})"
    RUST_LOG="${RUST_LOG:-info}" "$SERVER_BIN" "$@" >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!

    local ready=0
    for _ in $(seq 1 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -n 20 "$SERVER_LOG" >&2
            setup_failed "the server exited during start-up"
        fi
        if node -e '
            fetch(process.env.AUTHFLOW_URL + "/api/v3/flows/executor/default-authentication-flow/?query=")
                .then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1));
        ' 2>/dev/null; then
            ready=1
            break
        fi
        sleep 0.2
    done
    [ "$ready" = 1 ] || { tail -n 20 "$SERVER_LOG" >&2; setup_failed "the server did not answer on $AUTHFLOW_URL"; }
}

# Runs the checks of the default flows against a server mounted under $1, stops it.
run_server_checks() {
    local label="${1:-/}"
    start_server "$1"
    run_check "authentik-client (@goauthentik/api), mounted at $label" node authentik-client.mjs
    run_check "browser (playwright-core + chromium), mounted at $label" node browser.mjs
    run_check "page stages (MFA, email, captcha; WebAuthn virtual authenticator), mounted at $label" node page-stages.mjs
    cleanup
    SERVER_PID=""
}

# MFA through the page: the server's built-in TOTP, static and WebAuthn setup flows, and
# authentik's flows-login-2fa (tests/fixtures copy; labelled as an example, hence
# --apply-examples), which replaces the default login flow; plus a passwordless flow
# (e2e/blueprints).
run_mfa_checks() {
    local dir
    dir="$(mktemp -d /tmp/authflow-e2e-blueprints.XXXXXX)"
    cp "$ROOT/tests/fixtures/blueprints/flows-login-2fa.yaml" "$E2E_DIR/blueprints/zz-e2e-passwordless.yaml" \
        "$E2E_DIR/blueprints/zz-e2e-captcha.yaml" "$dir/"
    # The captcha check's stub provider (captcha-browser.mjs) listens on 127.0.0.2.
    AUTHFLOW_E2E_CAPTCHA_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.2", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 19481)"
    export AUTHFLOW_E2E_CAPTCHA_PORT
    export AUTHFLOW_E2E_CAPTCHA_JS_URL="http://127.0.0.2:$AUTHFLOW_E2E_CAPTCHA_PORT/api.js"
    export AUTHFLOW_E2E_CAPTCHA_API_URL="http://127.0.0.2:$AUTHFLOW_E2E_CAPTCHA_PORT/siteverify"
    SERVER_LOG_SUFFIX=-mfa start_server "" --blueprints "$dir" --apply-examples
    run_check "MFA through the page (TOTP with oathtool, static codes, passkey with the virtual authenticator)" node mfa-browser.mjs
    run_check "captcha through the page (stub provider on another origin, CSP admits it while the stage is current)" node captcha-browser.mjs
    cleanup
    SERVER_PID=""
    rm -rf "$dir"
}

# --- checks ------------------------------------------------------------------------
run_check "QR encoder of the page (zbarimg decodes it)" node qr-check.mjs
run_server_checks ""
# The same checks with authflow nested under a prefix: every link must follow it.
run_server_checks "/auth"
run_mfa_checks

if [ "$failed" -gt 0 ]; then
    echo "e2e: failed: ${failures[*]} (server logs: $ARTIFACTS/server*.log)" >&2
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
