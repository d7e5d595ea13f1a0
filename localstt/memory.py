"""How much memory a FastConformer encoder's full attention needs for one recording, how much is free,
and the choice between full and local attention.

Full (``rel_pos``) attention builds several (heads x T x T) tensors per encoder layer, T being the
number of encoder frames (one per ``subsampling * window_ms`` of audio: 80 ms at 8x subsampling). The
encoder runs its layers one after another and frees each layer's scores before the next, so the
extra memory of a recording is the peak of ONE layer. Reading NeMo's
``RelPositionMultiHeadAttention.forward`` (the path without PyTorch SDPA), these are alive at its
peak, each (batch, heads, T, T) unless noted:

* ``matrix_bd``: q·pos^T is (T, 2T-1); ``rel_shift`` pads it to (T, 2T) and keeps that buffer
  alive as a view, so 2 T² elements of the score dtype;
* ``matrix_ac`` = q·k^T: 1 T²;
* ``scores`` = (ac + bd) / sqrt(d_k): 1 T² (the sum in between is freed before the next step);
* in ``forward_attention``: ``scores.masked_fill(mask)``: 1 T²; ``softmax``: 1 T²; and its
  ``masked_fill(mask, 0)`` (the attention probabilities): 1 T², the softmax output still alive
  while it is made.

So 5 T² in the score dtype plus 2 T² in the softmax dtype: 7 T² x 4 bytes in float32 (the unpadded
q·pos^T, 2 T², is freed before ``matrix_ac`` exists, so ``rel_shift``'s moment, 4 T², is lower).
Under CUDA autocast the matmuls give bfloat16 (2 bytes; NeMo's attention turns float16 autocast
into bfloat16) but autocast runs softmax in float32 (4 bytes): 5 x 2 + 2 x 4 = 18 bytes per element
(reasoned from autocast's rules; the tests measure float32 and bfloat16 on the CPU).

On top of that: the (batch, T, T) boolean attention mask the encoder builds (1 byte per element)
and about ten (T x d_model) activations (q, k, v, q+bias_u, q+bias_v, the input, and the
(2T-1)-long position embedding and its projection), counted as float32. With ``use_pytorch_sdpa``
the peak is ``rel_shift``'s: the (T, 2T-1) product and its padded copy, 4 T² in the score dtype.

``tests/test_long_audio.py`` checks this estimate against the peak RSS of a real NeMo forward.
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass
from typing import Any, Literal

# NVIDIA's limit for its FastConformer ASR models' full attention: 24 minutes in one pass.
NVIDIA_FULL_ATTENTION_MAX_MINUTES = 24.0
ACTIVATIONS_PER_FRAME = 10  # (T x d_model) float32 tensors alive next to the scores, see above

AttentionMode = Literal["full", "local"]
AttentionCause = Literal["fits", "too_long", "memory"]


@dataclass(frozen=True)
class AttentionDims:
    """What the estimate needs to know about an encoder; `attention_dims(model)` reads it."""

    d_model: int
    heads: int
    subsampling: int = 8
    window_ms: float = 10.0
    dtype_bytes: int = 4  # one element of the attention scores (the matmul outputs)
    softmax_bytes: int = 4  # one element of the softmax output (float32 under autocast)
    sdpa: bool = False  # the encoder's attention uses torch's scaled_dot_product_attention


@dataclass(frozen=True)
class AttentionPlan:
    cause: AttentionCause  # "fits": full attention; "too_long" or "memory": local attention
    reason: str
    estimate_bytes: int
    free_bytes: int = 0

    @property
    def mode(self) -> AttentionMode:
        return "full" if self.cause == "fits" else "local"

    @property
    def headline(self) -> str:
        """A short progress line: which attention, and the kind of reason."""
        return {
            "fits": "full attention",
            "too_long": "local attention for long audio",
            "memory": "local attention: not enough free memory for full attention",
        }[self.cause]


def encoder_frames(duration_s: float, *, subsampling: int = 8, window_ms: float = 10.0) -> int:
    """Encoder frames for `duration_s` of audio: one feature frame per window stride (plus the centred
    first one), then each stride-2 subsampling step rounds up."""
    features = math.floor(round(max(0.0, duration_s) * 1000.0 / window_ms, 6)) + 1
    return math.ceil(features / max(1, subsampling))


def full_attention_bytes(
    duration_s: float,
    *,
    d_model: int,
    heads: int,
    dtype_bytes: int,
    subsampling: int = 8,
    window_ms: float = 10.0,
    softmax_bytes: int | None = None,
    sdpa: bool = False,
    batch: int = 1,
) -> int:
    """Peak extra memory, in bytes, of ONE full-attention (rel_pos) encoder layer on this recording:
    `frame_attention_bytes` for its `encoder_frames`."""
    return frame_attention_bytes(
        encoder_frames(duration_s, subsampling=subsampling, window_ms=window_ms),
        d_model=d_model,
        heads=heads,
        dtype_bytes=dtype_bytes,
        softmax_bytes=softmax_bytes,
        sdpa=sdpa,
        batch=batch,
    )


def frame_attention_bytes(
    frames: int,
    *,
    d_model: int,
    heads: int,
    dtype_bytes: int,
    softmax_bytes: int | None = None,
    sdpa: bool = False,
    batch: int = 1,
) -> int:
    """``batch * (heads * T² * (5 * dtype_bytes + 2 * softmax_bytes) + T² + 10 * T * d_model * 4)``
    for T = `frames`; with `sdpa` the first term is ``heads * T² * 4 * dtype_bytes``. `softmax_bytes`
    defaults to `dtype_bytes` (no autocast). The module docstring says where each term comes from."""
    square = frames * frames
    soft = dtype_bytes if softmax_bytes is None else softmax_bytes
    per_element = 4 * dtype_bytes if sdpa else 5 * dtype_bytes + 2 * soft
    scores = heads * square * per_element
    mask = square  # the (batch, T, T) bool attention mask
    activations = ACTIVATIONS_PER_FRAME * frames * d_model * 4
    return max(1, batch) * (scores + mask + activations)


def free_memory_bytes(device: Any) -> int:
    """Memory a new allocation on `device` can use now: on CUDA what the driver reports free plus what
    PyTorch's caching allocator holds unused (it reuses that first); on the CPU the available RAM."""
    import torch  # with the model, not before

    where = torch.device(device)
    if where.type == "cuda":
        index = where.index if where.index is not None else torch.cuda.current_device()
        free, _total = torch.cuda.mem_get_info(index)
        cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
        return int(free) + max(0, int(cached))
    import psutil  # only where memory is measured

    return int(psutil.virtual_memory().available)


def attention_dims(model: Any, *, dtype_bytes: int, softmax_bytes: int | None = None) -> AttentionDims:
    """The dimensions of a loaded NeMo ASR model's FastConformer encoder, read from the model."""
    encoder = model.encoder
    attention = encoder.layers[0].self_attn
    heads = getattr(attention, "h", None) or encoder._cfg.n_heads
    featurizer = model.preprocessor.featurizer
    window_ms = 1000.0 * float(featurizer.hop_length) / float(featurizer.sample_rate)
    return AttentionDims(
        d_model=int(encoder.d_model),
        heads=int(heads),
        subsampling=int(getattr(encoder, "subsampling_factor", 1) or 1),
        window_ms=window_ms,
        dtype_bytes=int(dtype_bytes),
        softmax_bytes=int(dtype_bytes if softmax_bytes is None else softmax_bytes),
        sdpa=bool(getattr(attention, "use_pytorch_sdpa", False)),
    )


def _size(count: float) -> str:
    if count >= 1e9:
        return f"{count / 1e9:.1f} GB"
    return f"{count / 1e6:.0f} MB"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def choose_attention(
    duration_s: float,
    free_bytes: int,
    dims: AttentionDims,
    *,
    full_attention_max_minutes: float = NVIDIA_FULL_ATTENTION_MAX_MINUTES,
    memory_fraction: float = 0.8,
    device: str = "",
    batch: int = 1,
) -> AttentionPlan:
    """Full attention only if the recording is at most `full_attention_max_minutes` long (never over
    NVIDIA's 24) AND one layer's estimate fits in `memory_fraction` of `free_bytes`; else local."""
    if not 0 < memory_fraction <= 1:
        raise ValueError(f"memory_fraction must be above 0 and at most 1, not {memory_fraction}")
    estimate = full_attention_bytes(
        duration_s,
        d_model=dims.d_model,
        heads=dims.heads,
        dtype_bytes=dims.dtype_bytes,
        subsampling=dims.subsampling,
        window_ms=dims.window_ms,
        softmax_bytes=dims.softmax_bytes,
        sdpa=dims.sdpa,
        batch=batch,
    )
    where = f" on {device}" if device else ""
    limit = min(float(full_attention_max_minutes), NVIDIA_FULL_ATTENTION_MAX_MINUTES)
    if duration_s > limit * 60:
        setting = (
            f"full_attention_max_minutes = {full_attention_max_minutes:g}"
            if limit == full_attention_max_minutes
            else f"NVIDIA's {NVIDIA_FULL_ATTENTION_MAX_MINUTES:g}-minute limit"
        )
        reason = f"local attention for long audio: {_minutes(duration_s)} is longer than {setting}"
        return AttentionPlan("too_long", reason, estimate, free_bytes)
    allowed = free_bytes * memory_fraction
    if estimate > allowed:
        reason = (
            f"local attention: full attention on {_minutes(duration_s)} of audio would need about "
            f"{_size(estimate)}, more than {memory_fraction:g} of the {_size(free_bytes)} free{where}"
        )
        return AttentionPlan("memory", reason, estimate, free_bytes)
    reason = (
        f"full attention: {_minutes(duration_s)} of audio needs about {_size(estimate)}, "
        f"{_size(free_bytes)} free{where}"
    )
    return AttentionPlan("fits", reason, estimate, free_bytes)


OUT_OF_MEMORY = {
    "GPU": "The GPU ran out of memory: close other GPU programs, or set keep_all_loaded = false "
    "in config.toml, or use a shorter recording.",
    "RAM": "The computer ran out of memory: close other programs, or set keep_all_loaded = false "
    "in config.toml, or use a shorter recording.",
}
OutOfMemoryKind = Literal["GPU", "RAM", ""]


def out_of_memory(error: BaseException) -> OutOfMemoryKind:
    """ "GPU" for a GPU out-of-memory error, "RAM" for the CPU allocator's, "" for any other error."""
    import torch  # with the model, not before

    if isinstance(error, torch.OutOfMemoryError) or type(error).__name__ == "OutOfMemoryError":
        return "GPU"
    if isinstance(error, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(error):
        return "RAM"
    return ""


def ran_out(kind: OutOfMemoryKind) -> str:
    return "the GPU ran out of memory" if kind == "GPU" else "the computer ran out of memory"


def release_memory(device: str) -> None:
    """Free what a failed attempt left behind (call outside its `except` block, whose traceback holds
    the attempt's tensors), and hand PyTorch's cached GPU memory back."""
    import torch  # with the model, not before

    gc.collect()
    if str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
