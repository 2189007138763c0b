#!/usr/bin/env bash
# Installs what the `python` feature needs: PyO3 (feature `auto-initialize`) embeds a
# CPython that has a shared library and headers. Debian's python3-dev provides both for
# /usr/bin/python3 (a pyenv CPython may be static-only). Idempotent: installs nothing
# when they are already there. Build and test with:
#   PYO3_PYTHON=/usr/bin/python3 cargo test --features python
set -euo pipefail

python=/usr/bin/python3

have_embeddable_python() {
  [ -x "$python" ] || return 1
  "$python" - <<'PY'
import os, sys, sysconfig
v = sysconfig.get_config_var
lib = os.path.join(v("LIBDIR") or "", "libpython%s.so" % (v("LDVERSION") or ""))
header = os.path.join(sysconfig.get_paths()["include"], "Python.h")
sys.exit(0 if os.path.exists(lib) and os.path.exists(header) else 1)
PY
}

if ! have_embeddable_python; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends python3-dev >/dev/null
fi

if ! have_embeddable_python; then
  echo "ci/install-python.sh: $python has no shared libpython or no headers" >&2
  exit 1
fi

# The SMTP tests (feature smtp) run a real SMTP server: aiosmtpd for this python
# (tests/common/smtp_sink.py). Debian's package first, else pip.
if ! "$python" -c "import aiosmtpd" 2>/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq --no-install-recommends python3-aiosmtpd >/dev/null 2>&1 \
    || "$python" -m pip install --quiet aiosmtpd
fi
"$python" -c "import aiosmtpd" || { echo "ci/install-python.sh: no aiosmtpd for $python" >&2; exit 1; }
echo "embeddable CPython: $python ($("$python" -c 'import platform; print(platform.python_version())'))"
echo "build with: PYO3_PYTHON=$python"
