#!/usr/bin/env bash
# Packs the Python packages that the GPU test machine lacks into .whl/site.tar.xz, so that one
# call can carry them there with the repository (the call carries 64 MiB in all).
#
# That machine has Python 3.12 (x86_64, glibc >= 2.28 as its torch wheel needs), torch 2.11.0+cu130
# and a large image of scientific packages (listed below in MACHINE_HAS), but not NeMo and most of
# what it needs.
# There, scripts/gpu-check.sh unpacks it and puts the folder first on PYTHONPATH, so that the
# packages carried here win over the machine's own where both exist (huggingface_hub, transformers,
# lightning: see FORCE below).
#
# Run here (x86_64 Linux with a package index): bash scripts/gpu-wheels.sh
# Needs: uv (to read uv.lock) and python3 with pip (downloads and unpacks the wheels).
# Re-runnable: the staging folders are wiped each time; downloaded wheels are reused.
set -euo pipefail
cd "$(dirname "$0")/.."

uv=${UV:-$(command -v uv || echo "$HOME/.local/bin/uv")}
py=${PYTHON:-python3}
# Scratch (requirement lists, wheels, the staging site folder) stays outside .whl/, so that
# carrying .whl/ carries only the archive.
work=${GPU_WHEELS_WORK:-${TMPDIR:-/tmp}/gpu-wheels}
wheels=$work/wheels      # downloaded wheels (kept between runs: pip skips ones already there)
site=$work/site          # the unpacked site folder, the same tree as /tmp/site over there
out=.whl/site.tar.xz

# --- What that machine already has (its image, read 2026-11-17). Packages named here are not
# carried, unless FORCE names them. Names as uv.lock spells them (lower case, dashes).
MACHINE_HAS="
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython
diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic
frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
hypothesis idna imageio iniconfig interface-meta jax jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml
markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda
numpy numpyro onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels
sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile
tiktoken timm tokenizers toolz torch torchaudio torch-geometric torchdiffeq torchmetrics
torchvision tqdm transformers triton typer typing-extensions typing-inspect urllib3 uvloop
wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
"
# The CUDA libraries come with the machine's torch; never carry them.
MACHINE_HAS_PREFIXES="nvidia-"

# --- Carried although the machine has them: its versions conflict with the lock.
#   huggingface-hub: machine 1.33.0; the project needs >=2.4,<3.
#   transformers:    machine 5.17.0 requires huggingface-hub<2; the lock's 5.23.0 takes 2.x.
#   lightning:       NeMo's asr extra needs lightning<=2.4.0.
FORCE="huggingface-hub transformers lightning"

# --- Not needed by the GPU check (the web UI/API and the cluster extra): pruned from the lock's
# tree with everything only they need. av is not carried either: localstt/audio.py imports it
# lazily and the check reads WAV/FLAC through soundfile.
PRUNE="gradio fastapi uvicorn python-multipart av ray"

# Quiet pip's warnings about configured file:// indexes that do not exist on this machine.
quiet_pip() { PIP_ROOT_USER_ACTION=ignore "$py" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor" >&2); }

# pip's options for "a wheel for CPython 3.12 on manylinux x86_64", whatever this machine is.
# Up to manylinux_2_28 (glibc 2.28), the same floor as torch 2.11's own wheel: whatever runs that
# torch runs these. A package with newer wheels only makes the download fail, loudly.
target=(--python-version 3.12 --implementation cp --abi cp312 --only-binary=:all:)
for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 \
         manylinux2014 manylinux_2_12 manylinux2010 manylinux_2_5 manylinux1; do
    target+=(--platform "${p}_x86_64")
done
target+=(--platform any)

# --- 1. Clean staging (re-runnable); keep the wheel cache.
rm -rf "$site" "$work/reqs.txt" "$work/locked.txt" "$out"
mkdir -p "$wheels" "$site" "$(dirname "$out")"

# --- 2. The runtime closure from uv.lock, less the pruned packages and their own-only deps.
prune_args=()
for p in $PRUNE; do prune_args+=(--prune "$p"); done
"$uv" export --frozen --no-dev --no-hashes --no-emit-project --no-header --no-annotate \
    "${prune_args[@]}" >"$work/locked.txt"

# --- 3. Keep the lines whose markers hold for CPython 3.12 on Linux x86_64 (pip would evaluate
# them for the Python running it, 3.11 here), and drop what the machine has, except FORCE.
# pip's vendored `packaging` evaluates the markers, so nothing needs installing for this.
MACHINE_HAS="$MACHINE_HAS" MACHINE_HAS_PREFIXES="$MACHINE_HAS_PREFIXES" FORCE="$FORCE" \
"$py" - "$work/locked.txt" >"$work/reqs.txt" <<'EOF'
import os, sys
from pip._vendor.packaging.markers import Marker
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
has = set(os.environ["MACHINE_HAS"].split())
prefixes = tuple(os.environ["MACHINE_HAS_PREFIXES"].split())
force = set(os.environ["FORCE"].split())
for line in open(sys.argv[1]):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    req, _, marker = line.partition(" ; ")
    if marker and not Marker(marker).evaluate(env):
        continue
    name = req.split("==")[0]
    if name not in force and (name in has or name.startswith(prefixes)):
        continue
    print(req)
EOF

# --- 4. antlr4-python3-runtime 4.9.3 (omegaconf/hydra) is an sdist only: build it as a wheel
# (pure Python, so the wheel built with this Python fits 3.12 too).
sdist_only="antlr4-python3-runtime"
for name in $sdist_only; do
    req=$(grep "^$name==" "$work/reqs.txt" || true)
    if [ -n "$req" ] && ! ls "$wheels/${name//-/_}-"*.whl >/dev/null 2>&1; then
        quiet_pip wheel --quiet --no-deps --no-binary=:all: -w "$wheels" "$req"
    fi
done

# --- 5. Download the rest as CPython 3.12 manylinux wheels, without their dependencies (the
# list above is already the whole closure).
grep -v -E "^($(echo $sdist_only | tr ' ' '|'))==" "$work/reqs.txt" >"$work/binary.txt"
quiet_pip download --quiet --no-deps "${target[@]}" -d "$wheels" -r "$work/binary.txt"

# --- 6. Unpack exactly the listed versions into the staging site folder (pip installs them
# properly: dist-info, data files; no dependency resolution, no scripts needed).
files=()
while read -r req; do
    name=${req%%==*}; version=${req#*==}
    pattern=$(echo "$name" | tr '-' '_' | tr 'A-Z' 'a-z')
    f=$(ls "$wheels" | grep -i -E "^${pattern}-${version//./\\.}-" | head -n1 || true)
    [ -n "$f" ] || { echo "no wheel for $req in $wheels" >&2; exit 1; }
    files+=("$wheels/$f")
done <"$work/reqs.txt"
# (--ignore-requires-python: pip checks local wheels against the Python running it, not 3.12.)
quiet_pip install --quiet --no-deps --no-compile --ignore-requires-python "${target[@]}" \
    --target "$site" "${files[@]}"

# --- 7. Trim what the check never needs (about 13 MiB packed):
#   bytecode: Python writes it afresh under /tmp/site on the first import over there;
#   bin/: console scripts;
#   wandb/bin/: wandb's service binaries (wandb-core, wandb-symon, a parquet library, ~50 MB):
#     NeMo's TTS modules only `import wandb` (reached from speechlm2, i.e. Canary-Qwen's SALM);
#     the binaries are looked up only by wandb.init/sync (wandb/util.py), which the check never
#     calls: it would raise WandbCoreNotAvailableError instead;
#   cytoolz's generated Cython C sources (*.c; the compiled .so files stay);
#   the test suites that some packages ship inside themselves (nothing imports them).
find "$site" -name __pycache__ -type d -prune -exec rm -rf {} +
find "$site" -name '*.pyc' -delete
rm -rf "${site:?}/bin" "$site/wandb/bin"
find "$site/cytoolz" -name '*.c' -delete
for d in pooch/tests multiprocess/tests dill/tests cytoolz/tests; do
    rm -rf "${site:?}/$d"
done

# --- 8. Pack with xz (-6: a fair trade of size and time) and report.
tar -C "$site" -cf - . | xz -T0 -6 >"$out"
echo "packed: $out $(awk "BEGIN{printf \"%.1f\", $(stat -c %s "$out")/1048576}") MiB ($(stat -c %s "$out") bytes);" \
    "unpacked $(du -sm "$site" | cut -f1) MiB"
echo "packages carried ($(wc -l <"$work/reqs.txt")):"
sed 's/^/  /' "$work/reqs.txt"
