#!/usr/bin/env bash
# Install anpr-edge on Raspberry Pi OS (bookworm): OS packages, a venv that sees the OS picamera2,
# the package, a service user in the video/gpio/dialout groups, and the systemd unit.
# Usage: sudo scripts/install-pi.sh [--dry-run] [--prefix /opt/anpr-edge]
# --dry-run prints every action instead of doing it.
set -euo pipefail

DRY_RUN=0
PREFIX=/opt/anpr-edge
SERVICE_USER=anpr-edge
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

while [ "$#" -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --prefix) PREFIX="$2"; shift ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

run() {
  if [ "$DRY_RUN" = 1 ]; then
    printf 'would run:'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
  echo "run as root (sudo), or with --dry-run to see the actions" >&2
  exit 1
fi

APT_PACKAGES=(python3-venv python3-picamera2 python3-lgpio mosquitto-clients systemd)
run apt-get update
run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"

if ! id "$SERVICE_USER" >/dev/null 2>&1; then
  run useradd --system --home-dir /var/lib/anpr-edge --shell /usr/sbin/nologin "$SERVICE_USER"
fi
for group in video gpio dialout; do
  if getent group "$group" >/dev/null 2>&1 || [ "$DRY_RUN" = 1 ]; then
    run usermod -a -G "$group" "$SERVICE_USER"
  fi
done

run mkdir -p "$PREFIX"
run cp -r "$SRC/agent" "$SRC/hal" "$SRC/sim" "$SRC/calibration" "$SRC/models" "$SRC/systemd" \
  "$SRC/docs" "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/config.example.toml" "$PREFIX/"
# --system-site-packages: picamera2 and libcamera come from the OS packages above.
run python3 -m venv --system-site-packages "$PREFIX/.venv"
run "$PREFIX/.venv/bin/pip" install --upgrade pip
run "$PREFIX/.venv/bin/pip" install "$PREFIX"
run install -d -m 0755 /etc/anpr-edge
run install -d -m 0700 -o "$SERVICE_USER" -g "$SERVICE_USER" /var/lib/anpr-edge
run ln -sf "$PREFIX/.venv/bin/anpr-edge" /usr/local/bin/anpr-edge  # on PATH for the installer's next steps
run install -m 0644 "$SRC/systemd/anpr-edge.service" /etc/systemd/system/anpr-edge.service
run systemctl daemon-reload
echo "installed (anpr-edge is on PATH as /usr/local/bin/anpr-edge)."
echo "Next: sudo anpr-edge provision --site SITE --camera CAM --broker mqtts://HOST:8883 --ca CA.pem"
echo "Runbook: $PREFIX/docs/runbook.md"
echo "then: systemctl enable --now anpr-edge"
