#!/usr/bin/env bash
# Prints the path of a working uv: on stdout only that path, all other output goes to stderr.
# It looks in this order:
#   1. uv on PATH;
#   2. the uv this script installed before, in ${XDG_DATA_HOME:-~/.local/share}/localstt/uv/bin/uv;
#   3. installs uv there from the package index with the first Python on PATH that can do it:
#      "python -m venv" + that venv's pip (allowed under PEP 668 "externally managed" Pythons),
#      or, where venv has no ensurepip, "python -m pip install --target" (PEP 668 does not apply).
# Any Python 3 that can run pip is enough; the app's own Python is chosen later by uv. pip keeps the
# machine's settings (PIP_* variables, pip.conf, SSL_CERT_FILE). The install goes into a temporary
# folder next to the final one and is renamed into place, so a killed run leaves nothing half-made.
# Where nothing works it prints one sentence saying how to install uv, and exits with status 1.
set -euo pipefail

docs=https://docs.astral.sh/uv/getting-started/installation/

works() { # true if $1 runs and reports "uv X.Y.Z"
  local version
  version=$("$1" --version 2>/dev/null) || return 1
  [[ $version == "uv "[0-9]* ]]
}

fail() {
  echo "uv could not be installed ($1); install it as described at $docs and run this again." >&2
  exit 1
}

if found=$(command -v uv 2>/dev/null) && works "$found"; then
  echo "$found"
  exit 0
fi

if [[ ${XDG_DATA_HOME:-} == /* ]]; then data=$XDG_DATA_HOME; else data=${HOME:?HOME is not set}/.local/share; fi
tools=$data/localstt
dest=$tools/uv
uv=$dest/bin/uv
if [[ -x $uv ]] && works "$uv"; then
  echo "$uv"
  exit 0
fi

pythons=()
seen=$'\n'
for name in python3 python3.14 python3.13 python3.12 python3.11 python3.10 python3.9 python3.8 python; do
  py=$(command -v "$name" 2>/dev/null) || continue
  [[ $py == /* && $seen != *$'\n'"$py"$'\n'* ]] || continue
  seen+=$py$'\n'
  pythons+=("$py")
done
[[ ${#pythons[@]} -gt 0 ]] || fail "no Python found on PATH to install it with"

mkdir -p "$tools"
# Temporary folders of runs that were killed midway.
find "$tools" -maxdepth 1 -name '.uv-tmp.*' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
tmp=$(mktemp -d "$tools/.uv-tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM HUP

new=$tmp/uv
for py in "${pythons[@]}"; do
  "$py" -c 'import sys; sys.exit(sys.version_info[0] != 3)' >/dev/null 2>&1 || continue
  rm -rf "$new"
  echo "Installing uv into $dest with $py ..." >&2
  if "$py" -m venv "$new" >/dev/null 2>&1 && [[ -x $new/bin/python ]] \
    && "$new/bin/python" -m pip install --no-input uv >&2 && works "$new/bin/uv"; then
    :
  elif rm -rf "$new" && "$py" -m pip --version >/dev/null 2>&1; then
    echo "($py has no working venv; using pip install --target)" >&2
    if ! { "$py" -m pip install --no-input --target "$new" uv >&2 && works "$new/bin/uv"; }; then continue; fi
  else
    continue
  fi
  # A broken earlier install is set aside; then the new one is renamed into place in one step.
  if [[ -e $dest ]]; then mv "$dest" "$tmp/old.$RANDOM"; fi
  if ! "$py" -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' "$new" "$dest" 2>/dev/null; then
    works "$uv" || continue # another run finished first: use its uv, else try the next Python
  fi
  works "$uv" || continue
  echo "Installed $("$uv" --version) as $uv" >&2
  echo "$uv"
  exit 0
done
fail "none of the Pythons on PATH (${pythons[*]}) could install it with pip"
