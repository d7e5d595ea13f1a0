"""Which precision each model runs in, from the device, the GPU's compute capability and config.toml.

`torch.cuda.is_bf16_supported()` also counts bfloat16 that the GPU only emulates, so the decision is
made from the compute capability (`torch.cuda.get_device_capability()`):

* 8.0 and up (A100, H100, L4, RTX 30xx/40xx): native bfloat16. An ASR model whose makeup says so
  (`bfloat16_weights`) is cast whole to bfloat16, as the Open ASR Leaderboard runs it; another keeps
  float32 weights and runs under bfloat16 autocast; a speech-LLM (a family whose makeup names a
  language model) is cast whole to bfloat16.
* 7.x (V100, T4, RTX 20xx): fast float16, no bfloat16. An ASR model's encoder runs under float16
  autocast, its decoder in float32. A speech-LLM's language model stays float32: float16 tops out at
  65504 and a large LLM's activations can pass that (inf, then NaN logits); its speech encoder runs
  under float16 autocast and hands float32 to the LLM. That costs 4 bytes per parameter.
* below 7.0 (GTX 10xx is 6.1): no fast float16 either, so float32.
* the CPU: float32 always.

NeMo's FastConformer attention swaps float16 autocast for bfloat16 where `torch.cuda.is_bf16_supported()`
says yes, else float32; `native_bf16_in_nemo_attention` makes it ask about native bfloat16 only, so
attention runs float32 (not emulated bfloat16) on the cards below 8.0.

An explicit `dtype = "float32"` on a GPU means float32 and no autocast; `dtype = "float16"` is taken
at its word (a speech-LLM whole in float16, with a warning); `dtype = "bfloat16"` on a GPU without
native bfloat16 falls back to what "auto" picks there, with a note.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

REQUESTS = ("auto", "bfloat16", "float16", "float32")
FLOAT16_MAX = 65504.0
NATIVE_BF16 = (8, 0)  # Ampere: bfloat16 tensor cores
FAST_FP16 = (7, 0)  # Volta: float16 tensor cores (Pascal consumer cards run float16 at 1/64 speed)


@dataclass(frozen=True)
class ModelMakeup:
    """What the choice needs to know about a model family (each family in localstt/models/ has one)."""

    name: str  # what the user calls the family's models, in the notes and the page's labels
    # A family with a language model: what keeping it float32 costs, for the notes (e.g. "about 10 GB
    # for its 2.5 B parameters"); "" for a family without one (an ASR model).
    language_model: str = ""
    # An ASR model whose weights are cast to bfloat16 where the GPU has it natively, as the Open ASR
    # Leaderboard runs it (`model.to(torch.bfloat16)`): half the weights' memory, and a bfloat16
    # decoder and joint too. Otherwise float32 weights under bfloat16 autocast.
    bfloat16_weights: bool = False


@dataclass(frozen=True)
class Precision:
    """Names of torch dtypes ("bfloat16", "float16", "float32") for one loaded model."""

    weights: str  # what the parameters are stored in
    autocast: str | None = None  # the engine runs the whole model under torch.autocast in this (CUDA only)
    encoder_autocast: str | None = None  # only the speech encoder runs under autocast in this (set at load)
    llm: str | None = None  # a speech-LLM: its language model's dtype (None for an ASR model)
    note: str = ""  # one line for the console when the choice needs explaining, else ""

    @property
    def dtype(self) -> str:
        """The one dtype name `LoadedModel.dtype` carries: the engine's autocast dtype, else the weights'."""
        return self.autocast or self.weights

    def describe(self) -> str:
        """E.g. "bfloat16", "float32 weights, bfloat16 autocast"."""
        extras = []
        if self.llm not in (None, self.weights):
            extras.append(f"{self.llm} language model")
        if self.autocast not in (None, self.weights):
            extras.append(f"{self.autocast} autocast")
        if self.encoder_autocast is not None:
            extras.append(f"{self.encoder_autocast} autocast in the speech encoder")
        return ", ".join([f"{self.weights} weights", *extras]) if extras else self.weights


def whole(dtype: str, makeup: ModelMakeup) -> Precision:
    """Every parameter and every operation in `dtype`."""
    return Precision(dtype, llm=dtype if makeup.language_model else None)


def choose_precision(
    device: str, capability: tuple[int, int] | None, requested: str, makeup: ModelMakeup
) -> Precision:
    """The precision for a model made up as `makeup` says, on `device` ("cuda" or "cpu").

    `capability`: the GPU's compute capability, e.g. (7, 5); None on the CPU. `requested`: config.toml's
    dtype ("auto", "bfloat16", "float16", "float32").
    """
    if requested not in REQUESTS:
        raise ValueError(f"dtype must be one of {', '.join(REQUESTS)}, not {requested!r}")
    if device != "cuda":
        note = ""
        if requested in ("bfloat16", "float16"):
            note = f'note: dtype = "{requested}" in config.toml is for GPUs; the CPU runs float32'
        return replace(whole("float32", makeup), note=note)
    if requested == "float32":
        return whole("float32", makeup)
    cc = tuple(capability or (0, 0))
    card = f"this GPU (compute capability {cc[0]}.{cc[1]})"
    if requested == "float16":
        return _float16(makeup, card, bf16_instead=cc >= NATIVE_BF16, asked=True)
    if cc >= NATIVE_BF16:
        if not makeup.language_model:
            if makeup.bfloat16_weights:
                return Precision("bfloat16")
            return Precision("float32", autocast="bfloat16")
        return Precision("bfloat16", autocast="bfloat16", llm="bfloat16")
    asked = ' (dtype = "bfloat16" in config.toml)' if requested == "bfloat16" else ""
    if cc >= FAST_FP16:
        chosen = _float16(makeup, card, bf16_instead=False, asked=False)
        why = f"note: {card} has no native bfloat16{asked}: {chosen.describe()}"
        if makeup.language_model:
            why += (
                f"; the language model stays float32, which float16 could overflow ({makeup.language_model})"
            )
        return replace(chosen, note=why)
    chosen = whole("float32", makeup)
    why = f"note: {card} has neither native bfloat16 nor fast float16{asked}: float32"
    return replace(chosen, note=why + (f" ({makeup.language_model})" if makeup.language_model else ""))


def _float16(makeup: ModelMakeup, card: str, bf16_instead: bool, asked: bool) -> Precision:
    if not makeup.language_model:  # an ASR model: the decoder's LSTM and the greedy loop stay float32
        return Precision("float32", encoder_autocast="float16")
    if not asked:  # the language model in float32, fed float32 by the speech encoder
        return Precision("float32", encoder_autocast="float16", llm="float32")
    safe = "bfloat16" if bf16_instead else "a float32 language model"
    note = (
        f'note: dtype = "float16" puts all of {makeup.name} in float16, whose largest value is '
        f"{FLOAT16_MAX:.0f}: its language model can overflow that (inf/NaN: empty or garbled text); "
        f'dtype = "auto" uses {safe} on {card}'
    )
    return Precision("float16", autocast="float16", llm="float16", note=note)


def autocast_context(device: str, dtype_name: str | None) -> Any:
    """torch.autocast in `dtype_name` (a loaded model's `precision.autocast`) on a GPU, else nothing.

    Where only the speech encoder runs under autocast, the loader installed that (`autocast_forward`).
    """
    import torch  # with the model, not before

    if device == "cuda" and dtype_name in ("bfloat16", "float16"):
        return torch.autocast("cuda", dtype=getattr(torch, dtype_name))
    return nullcontext()


def torch_dtype(name: str) -> Any:
    import torch  # with the model, not before

    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def autocast_forward(module: Any, dtype: str, output_dtype: str) -> Any:
    """From now on `module` runs under torch.autocast in `dtype` (on the device its parameters are on),
    and hands floating outputs on in `output_dtype`. Installed once; returns `module`."""
    import torch  # with the model, not before

    if getattr(module, "_localstt_autocast", None) is not None:
        return module
    inner = module.forward
    low, out = torch_dtype(dtype), torch_dtype(output_dtype)

    def forward(*args: Any, **kwargs: Any) -> Any:
        device_type = next(module.parameters()).device.type
        with torch.autocast(device_type, dtype=low):
            result = inner(*args, **kwargs)
        return _cast_floats(result, out)

    module.forward = forward
    module._localstt_autocast = dtype
    return module


def _cast_floats(value: Any, dtype: Any) -> Any:
    import torch  # with the model, not before

    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() and value.dtype != dtype else value
    if type(value) in (tuple, list):
        return type(value)(_cast_floats(item, dtype) for item in value)
    return value


def native_bf16_in_nemo_attention() -> None:
    """Make NeMo's FastConformer attention leave float16 autocast for bfloat16 only where the GPU has it
    natively, else for float32 (NeMo asks `torch.cuda.is_bf16_supported()`, which counts emulation)."""
    from nemo.collections.asr.parts.submodules import (
        multi_head_attention,
    )  # NeMo: ~10 s to import, so not before

    multi_head_attention.avoid_float16_autocast_context = avoid_float16_autocast_context


def avoid_float16_autocast_context() -> Any:
    """NeMo's `avoid_float16_autocast_context` (nemo/utils/cast_utils.py), minus emulated bfloat16."""
    import torch  # with the model, not before

    if not (torch.is_autocast_enabled("cuda") and torch.get_autocast_dtype("cuda") == torch.float16):
        return nullcontext()
    if torch.jit.is_scripting() or torch.jit.is_tracing():  # type: ignore[attr-defined,no-untyped-call]
        return torch.autocast("cuda", dtype=torch.float32)
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.autocast("cuda", dtype=torch.bfloat16 if native else torch.float32)
