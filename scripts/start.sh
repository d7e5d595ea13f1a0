#!/usr/bin/env bash
# Sets everything up and starts the app: uv, the Python environment, the one-time model export
# (a no-op with zero network requests once done), then the web app on http://127.0.0.1:7860.
# No system packages needed: audio is decoded with PyAV; uv provides a Python 3.11+ where none fits.
# Arguments go to transcribe_ui.py, e.g. scripts/start.sh --port 8000
set -euo pipefail
cd "$(dirname "$0")/.."
uv=$(bash scripts/ensure-uv.sh)
"$uv" sync --locked --no-dev --compile-bytecode  # bytecode: NeMo starts ~15 s faster
if ! "$uv" run --no-sync python export_models.py; then
  echo "Some models are not exported yet (see above); the app starts and shows what is missing." >&2
fi
exec "$uv" run --no-sync python transcribe_ui.py "$@"
