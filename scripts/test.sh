#!/usr/bin/env bash
# The test suite: real broker, real JPEG, real TFLite on the shipped models. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
.venv/bin/ruff check .
# two workers (pytest-xdist): the suite is single-threaded work, and CI has two cores; `-n 0` runs it in one
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 "$@"
