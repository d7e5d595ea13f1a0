#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages named as arguments, only those that are missing.
# The app itself needs none: every recording format (m4a/aac/mp4/webm/opus included) is decoded
# in-process by soundfile and PyAV, whose wheels bundle libsndfile and FFmpeg's libraries. Only the
# tests use system packages (scripts/test.sh passes them):
#   espeak-ng sox libsox-fmt-all  real speech and audio files made by the tests
#   chromium fonts-dejavu-core    the browser the UI tests drive
# With no arguments it does nothing. Needs root or sudo; skipped with a note otherwise.
set -euo pipefail
want=("$@")
[ ${#want[@]} -gt 0 ] || exit 0
missing=()
for pkg in "${want[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "note: please install these packages yourself: ${missing[*]}" >&2; exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "note: not a Debian-like system; please install: ${missing[*]}" >&2; exit 0
fi
echo "installing system packages: ${missing[*]}" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
