#!/usr/bin/env bash
# The test command: set up ./.venv, then run the whole suite on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest -n 2 "$@"
