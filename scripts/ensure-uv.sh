#!/usr/bin/env bash
# Prints the path of a uv executable, installing uv from PyPI into the user's site if needed.
set -euo pipefail
if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
python3 -m pip install --quiet --user uv >&2 2>/dev/null || python3 -m pip install --quiet uv >&2
python3 -c 'import shutil, sysconfig, os, sys
for p in (shutil.which("uv"), os.path.join(sysconfig.get_path("scripts", f"{os.name}_user"), "uv"), os.path.join(sysconfig.get_path("scripts"), "uv")):
    if p and os.path.exists(p): print(p); sys.exit(0)
sys.exit("uv was installed but cannot be found on PATH")'
