#!/usr/bin/env bash
# The test suite: real broker, real JPEG, real TFLite on the shipped models. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
