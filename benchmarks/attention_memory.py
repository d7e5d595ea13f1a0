"""localstt.memory's full-attention estimate against the measured peak memory of a real NeMo layer.

Each row runs one ``RelPositionMultiHeadAttention`` forward at Parakeet-TDT-0.6B-v2's sizes
(d_model 1024, 8 heads) on the CPU in a fresh interpreter, and reads the peak RSS it added from
/proc/self/status (VmHWM, reset through /proc/self/clear_refs after a warm-up at a small T). Then
what the estimate means for Parakeet: the memory one layer needs per recording length, and the
longest recording that gets full attention for a given amount of free memory.

    uv run python benchmarks/attention_memory.py            # about a minute, at most ~4 GB of RAM
    uv run python benchmarks/attention_memory.py --frames 1000 2000

Linux only (it reads /proc).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from localstt.memory import (  # noqa: E402
    NVIDIA_FULL_ATTENTION_MAX_MINUTES,
    AttentionDims,
    choose_attention,
    frame_attention_bytes,
)

D_MODEL, HEADS = 1024, 8  # Parakeet-TDT-0.6B-v2's encoder
MIB = 2**20

CHILD = r"""
import json, sys
import torch
from nemo.collections.asr.parts.submodules.multi_head_attention import RelPositionMultiHeadAttention

def status(key):
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)

d_model, heads, frames = (int(value) for value in sys.argv[1:4])
dtype, sdpa = getattr(torch, sys.argv[4]), sys.argv[5] == "1"
torch.manual_seed(0)
torch.set_num_threads(2)
attention = RelPositionMultiHeadAttention(
    n_head=heads, n_feat=d_model, dropout_rate=0.0, pos_bias_u=None, pos_bias_v=None, use_pytorch_sdpa=sdpa
).eval().to(dtype)

def forward(t):
    x = torch.randn(1, t, d_model, dtype=dtype)
    pos_emb = torch.randn(1, 2 * t - 1, d_model, dtype=dtype)
    mask = torch.zeros(1, t, t, dtype=torch.bool)
    with torch.inference_mode():
        return attention(x, x, x, mask, pos_emb).shape

forward(64)
try:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    reset = True
except OSError:
    reset = False
rss, hwm = status("VmRSS"), status("VmHWM")
forward(frames)
after = status("VmHWM")
print(json.dumps({"peak": after - rss, "valid": reset or after > hwm}))
"""


def measure(
    frames: int, dtype: str = "float32", sdpa: bool = False, *, d_model: int = D_MODEL, heads: int = HEADS
) -> int:
    """Peak RSS, in bytes, that one forward over `frames` encoder frames added (in a fresh process).

    The test suite checks the estimate against this same measurement (tests/test_long_audio.py)."""
    command = [
        sys.executable,
        "-c",
        CHILD,
        str(d_model),
        str(heads),
        str(frames),
        dtype,
        "1" if sdpa else "0",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"the measurement at T={frames} failed:\n{result.stderr[-3000:]}")
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    if not numbers["valid"]:
        raise RuntimeError(
            "could not reset the peak RSS (/proc/self/clear_refs) and the forward set no new peak"
        )
    return int(numbers["peak"])


def measured_table(frames_list: list[int]) -> None:
    rows = [(frames, "float32", False) for frames in frames_list]
    rows += [(frames_list[-1], "float32", True), (frames_list[-1], "bfloat16", False)]
    print(f"One full-attention layer, d_model {D_MODEL}, {HEADS} heads, CPU (80 ms per frame)")
    print(f"{'T':>6} {'audio':>7} {'dtype':>9} {'sdpa':>5} {'estimate':>12} {'measured':>12} {'est/meas':>9}")
    for frames, dtype, sdpa in rows:
        size = 2 if dtype == "bfloat16" else 4
        estimate = frame_attention_bytes(frames, d_model=D_MODEL, heads=HEADS, dtype_bytes=size, sdpa=sdpa)
        measured = measure(frames, dtype, sdpa)
        print(
            f"{frames:>6} {frames * 0.08:>6.0f}s {dtype:>9} {'yes' if sdpa else 'no':>5} "
            f"{estimate / MIB:>8.0f} MiB {measured / MIB:>8.0f} MiB {estimate / measured:>9.3f}",
            flush=True,
        )


def parakeet_table() -> None:
    gpu = AttentionDims(d_model=D_MODEL, heads=HEADS, dtype_bytes=2, softmax_bytes=4)
    cpu = AttentionDims(d_model=D_MODEL, heads=HEADS, dtype_bytes=4, softmax_bytes=4)
    print("\nParakeet, estimate for one layer (GPU: bfloat16 autocast, softmax in float32; CPU: float32)")
    print(f"{'minutes':>8} {'GPU':>9} {'CPU':>9}")
    for minutes in (1, 5, 10, 15, 20, 24):
        row = [choose_attention(minutes * 60, 10**15, dims).estimate_bytes / 1e9 for dims in (gpu, cpu)]
        print(f"{minutes:>8} {row[0]:>7.1f}GB {row[1]:>7.1f}GB")
    print("\nLongest recording in full attention (attention_memory_fraction 0.8, at most 24 minutes)")
    print(f"{'free':>8} {'GPU':>9} {'CPU':>9}")
    for free_gb in (4, 8, 12, 20, 40, 70):
        row = [_longest(free_gb * 10**9, dims) for dims in (gpu, cpu)]
        print(f"{free_gb:>6}GB {row[0]:>6.1f}min {row[1]:>6.1f}min")


def _longest(free: int, dims: AttentionDims) -> float:
    low, high = 0.0, NVIDIA_FULL_ATTENTION_MAX_MINUTES * 60
    if choose_attention(high, free, dims).mode == "full":
        return high / 60
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if choose_attention(middle, free, dims).mode == "full" else (low, middle)
    return low / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1000, 2000, 3000, 4000])
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        raise SystemExit("benchmarks/attention_memory.py reads /proc: Linux only")
    measured_table(sorted(args.frames))
    parakeet_table()


if __name__ == "__main__":
    main()
