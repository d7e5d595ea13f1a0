#!/usr/bin/env bash
# Debian/Ubuntu packages the app and its tests use:
#   ffmpeg        decodes m4a/aac/mp4/webm recordings (the app works without it for wav/flac/ogg/mp3)
#   espeak-ng sox real speech and audio files made by the tests
#   chromium      the browser the UI tests drive
# Installs only what is missing. Needs root or sudo; skipped with a note otherwise.
set -euo pipefail
want=("$@")
[ ${#want[@]} -gt 0 ] || want=(ffmpeg)
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
