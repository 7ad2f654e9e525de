#!/usr/bin/env bash
# Make .venv with the package and its dev tools; install Debian packages the tests need when running
# as root and they are absent. Sourced by demo.sh and test.sh; safe to run again (it skips what is done).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"

need_apt=()
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then need_apt+=(python3-venv); fi
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then need_apt+=(mosquitto); fi
if ! command -v systemd-analyze >/dev/null 2>&1; then need_apt+=(systemd); fi
if ! command -v shellcheck >/dev/null 2>&1; then need_apt+=(shellcheck); fi
if ! command -v chromium >/dev/null 2>&1; then need_apt+=(chromium); fi
# the typefaces training plates are set in (scripts/typeface_glyphs.py) and its tests
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ]; then need_apt+=(fonts-dejavu-core); fi
# the central side's PostgreSQL tests start a throw-away server from these binaries
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing Debian packages: ${need_apt[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: missing Debian packages (${need_apt[*]}); run as root or: sudo apt-get install ${need_apt[*]}" >&2
  fi
fi

"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed"' || exit 1
if [ ! -x "$VENV/bin/python" ]; then
  # On a Raspberry Pi, picamera2 comes from the OS package: let the venv see system packages there.
  extra=()
  if [ -r /proc/device-tree/model ] && grep -qi raspberry /proc/device-tree/model 2>/dev/null; then
    extra+=(--system-site-packages)
  fi
  "$PY" -m venv "${extra[@]}" "$VENV"
fi
stamp="$VENV/.anpr-edge-installed"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)-${ANPR_EDGE_EXTRAS:-dev}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing anpr-edge[${ANPR_EDGE_EXTRAS:-dev}] into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  "$VENV/bin/python" -m pip install -q -e "${ROOT}[${ANPR_EDGE_EXTRAS:-dev}]" 2>&1 | grep -v -E '^WARNING: Location' || true
  "$VENV/bin/python" -c 'import agent, cv2, pydantic, typer' || { echo "bootstrap: install failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
