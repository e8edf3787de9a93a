#!/usr/bin/env bash
# The README's test command: set up every environment from scratch if needed, lint (code, and
# import direction with import-linter), then run all tests. The backend's tests run in the
# backend environment; the add-on's tests run in the Blender environment (real bpy) and start
# real backends from the backend environment.
# Extra arguments go to both pytest runs (e.g. -x, -k name).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
.venv/backend/bin/ruff check .
.venv/backend/bin/lint-imports --no-logo  # import direction: [tool.importlinter] in pyproject
.venv/backend/bin/python -m pytest tests/shared_protocol tests/backend tests/scripts \
    tests/benchmarks/test_hygiene.py "$@"  # the benchmarks' own smoke runs are not CI (minutes)
if [ -d tests/blender_addon ] && ls tests/blender_addon/test_*.py >/dev/null 2>&1; then
    DREAMCAD_BACKEND_PYTHON="$(pwd)/.venv/backend/bin/python" \
        .venv/blender/bin/python -m pytest tests/blender_addon "$@"
fi
