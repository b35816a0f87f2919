#!/usr/bin/env bash
# Set up a virtual environment (once) and run every check: lint, format, types, layers, tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -x`.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"

# Never attach to a Ray cluster that happens to run on this machine.
export RAY_ENABLE_AUTO_CONNECT=0

echo "== ruff check" && .venv/bin/ruff check .
echo "== ruff format --check" && .venv/bin/ruff format --check .
echo "== mypy (strict)" && .venv/bin/mypy
echo "== import-linter" && .venv/bin/lint-imports
echo "== pytest" && .venv/bin/python -m pytest "$@"
