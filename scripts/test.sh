#!/usr/bin/env bash
# Sets everything up and runs the test suite: system packages, the locked Python environment,
# ruff, mypy, then pytest. Offline: tests talk only to servers they start on 127.0.0.1, except
# tests/test_setup.py, which installs uv from the package index through pip as a new user would.
#
#   scripts/test.sh [PYTEST ARGS...]          everything (what CI runs)
#   scripts/test.sh --fast [PYTEST ARGS...]   the fast tier: every test not marked slow
#                                             (docs/development.md, "The fast tier")
set -euo pipefail
cd "$(dirname "$0")/.."
tier=()
if [[ "${1:-}" == "--fast" ]]; then
    shift
    tier=(-m "not slow")
fi
bash scripts/install-system-packages.sh espeak-ng sox libsox-fmt-all chromium fonts-dejavu-core
uv=$(bash scripts/ensure-uv.sh)
"$uv" sync --locked --extra cluster --compile-bytecode  # bytecode: each NeMo process starts ~15 s faster
"$uv" run --no-sync ruff check .
"$uv" run --no-sync ruff format --check .
"$uv" run --no-sync mypy  # strict, over the files pyproject.toml [tool.mypy] names
exec "$uv" run --no-sync pytest --durations=15 ${tier[@]+"${tier[@]}"} "$@"
