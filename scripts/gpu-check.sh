#!/usr/bin/env bash
# Run benchmarks/gpu_check.py on a CUDA machine that has Python and PyTorch but not this project's
# other packages, and cannot download them.
#
# Prepare on a machine with internet access and espeak-ng (from the repository's root):
#     bash scripts/gpu-wheels.sh                                       # the missing packages: .whl/site.tar.xz
#     uv run python benchmarks/gpu_check.py --prepare-audio .whl/audio  # the utterances (espeak-ng)
# then copy the repository, .whl/ included, to the GPU machine and run there:
#     bash scripts/gpu-check.sh OUTDIR
# OUTDIR receives gpu-results.json, the console log and docs/benchmarks.md with its "GPU check"
# section written. Extra arguments go to gpu_check.py (e.g. --budget-s 300 --skip speakers).
set -euo pipefail

out=${1:?usage: bash scripts/gpu-check.sh OUTDIR [gpu_check.py arguments]}
shift
cd "$(dirname "$0")/.."
mkdir -p "$out"

if [ -f .whl/site.tar.xz ]; then
    # The packages unpacked beside the machine's own: they come first on the path.
    site=${GPU_CHECK_SITE:-/tmp/localstt-site}
    mkdir -p "$site"
    tar xJf .whl/site.tar.xz -C "$site"
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
# No editable install there: the checkout itself (localstt, testkit, benchmarks) goes on the path.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
audio=()
[ -d .whl/audio ] && audio=(--audio .whl/audio)

export PYTHONUNBUFFERED=1
status=0
python3 benchmarks/gpu_check.py "${audio[@]}" --results "$out/gpu-results.json" --doc docs/benchmarks.md "$@" \
    2>&1 | tee "$out/gpu-check.log" || status=$?
cp docs/benchmarks.md "$out/benchmarks.md"
exit "$status"
