#!/usr/bin/env bash
# The demo: simulated camera with traffic going from day to night. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
exec .venv/bin/anpr-edge demo "$@"
