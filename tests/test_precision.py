"""Which precision runs where (localstt/precision.py), and that the pre-Ampere choice keeps the models finite.

The decision table is the rule itself, written out by hand. The finiteness checks load the tiny models of
the real classes through the real loader with the precision of a T4 (compute capability 7.5) applied,
on the CPU: torch's CPU backend runs float16 autocast and float16 matmuls (only oneDNN's float16 LSTM is
missing, and Parakeet's decoder LSTM runs float32 in this scheme anyway).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import localstt.store
from localstt.config import load_config
from localstt.loading import speechlm as salm_loading
from localstt.models import family_for
from localstt.precision import FLOAT16_MAX, Precision, autocast_context, autocast_forward
from localstt.precision import choose_precision as choose_for_makeup
from localstt.store import ModelStore
from testkit.simulated_gpu import CARDS, simulated_gpu
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV, transcribe_prompt

PHRASE = PHRASE_TXT.read_text(encoding="utf-8").strip()


def choose_precision(device: str, capability: tuple[int, int] | None, requested: str, kind: str) -> Precision:
    """localstt.precision.choose_precision for the family of `kind` ("nemo-asr", "salm")."""
    return choose_for_makeup(device, capability, requested, family_for(kind).makeup)


def pick(config: Any, kind: str) -> tuple[str, Precision]:
    return localstt.store.pick_device_and_precision(config, family_for(kind))


REQUESTS = ("auto", "bfloat16", "float16", "float32")

F32 = Precision("float32")  # an ASR model, all float32
F32_SALM = Precision("float32", llm="float32")
BF16_AUTOCAST = Precision("float32", autocast="bfloat16")  # an ASR model's float32 weights under autocast
BF16_WEIGHTS = Precision("bfloat16")  # Parakeet on Ampere and newer: cast whole, as the leaderboard runs it
BF16_SALM = Precision("bfloat16", autocast="bfloat16", llm="bfloat16")  # Canary-Qwen there, as before
FP16_ENCODER = Precision("float32", encoder_autocast="float16")
PRE_AMPERE_SALM = Precision("float32", encoder_autocast="float16", llm="float32")
FP16_SALM = Precision("float16", autocast="float16", llm="float16")  # only when config.toml says float16

# (family, compute capability or None for the CPU) -> the precision for auto, bfloat16, float16, float32
TABLE: dict[tuple[str, tuple[int, int] | None], tuple[Precision, ...]] = {
    ("nemo-asr", None): (F32, F32, F32, F32),
    ("nemo-asr", (6, 1)): (F32, F32, FP16_ENCODER, F32),
    ("nemo-asr", (7, 0)): (FP16_ENCODER, FP16_ENCODER, FP16_ENCODER, F32),
    ("nemo-asr", (7, 5)): (FP16_ENCODER, FP16_ENCODER, FP16_ENCODER, F32),
    ("nemo-asr", (8, 0)): (BF16_WEIGHTS, BF16_WEIGHTS, FP16_ENCODER, F32),
    ("nemo-asr", (8, 6)): (BF16_WEIGHTS, BF16_WEIGHTS, FP16_ENCODER, F32),
    ("nemo-asr", (9, 0)): (BF16_WEIGHTS, BF16_WEIGHTS, FP16_ENCODER, F32),
    ("salm", None): (F32_SALM, F32_SALM, F32_SALM, F32_SALM),
    ("salm", (6, 1)): (F32_SALM, F32_SALM, FP16_SALM, F32_SALM),
    ("salm", (7, 0)): (PRE_AMPERE_SALM, PRE_AMPERE_SALM, FP16_SALM, F32_SALM),
    ("salm", (7, 5)): (PRE_AMPERE_SALM, PRE_AMPERE_SALM, FP16_SALM, F32_SALM),
    ("salm", (8, 0)): (BF16_SALM, BF16_SALM, FP16_SALM, F32_SALM),
    ("salm", (8, 6)): (BF16_SALM, BF16_SALM, FP16_SALM, F32_SALM),
    ("salm", (9, 0)): (BF16_SALM, BF16_SALM, FP16_SALM, F32_SALM),
}
CASES = [
    (family, capability, requested, expected)
    for (family, capability), row in TABLE.items()
    for requested, expected in zip(REQUESTS, row, strict=True)
]

T4 = "this GPU (compute capability 7.5)"
T4_SALM = (
    "float32 weights, float16 autocast in the speech encoder; the language model stays float32, which "
    "float16 could overflow (about 10 GB for Canary-Qwen's 2.5 B parameters)"
)
FLOAT16_SALM_NOTE = (
    'note: dtype = "float16" puts all of Canary-Qwen in float16, whose largest value is 65504: its language '
    'model can overflow that (inf/NaN: empty or garbled text); dtype = "auto" uses {safe} on {card}'
)
NOTES = {
    (
        "nemo-asr",
        None,
        "bfloat16",
    ): 'note: dtype = "bfloat16" in config.toml is for GPUs; the CPU runs float32',
    ("salm", None, "float16"): 'note: dtype = "float16" in config.toml is for GPUs; the CPU runs float32',
    ("nemo-asr", (7, 5), "auto"): f"note: {T4} has no native bfloat16: float32 weights, float16 autocast in "
    "the speech encoder",
    (
        "nemo-asr",
        (7, 5),
        "bfloat16",
    ): f'note: {T4} has no native bfloat16 (dtype = "bfloat16" in config.toml):'
    " float32 weights, float16 autocast in the speech encoder",
    ("salm", (7, 5), "auto"): f"note: {T4} has no native bfloat16: {T4_SALM}",
    ("salm", (7, 5), "bfloat16"): f'note: {T4} has no native bfloat16 (dtype = "bfloat16" in config.toml): '
    + T4_SALM,
    ("salm", (7, 0), "float16"): FLOAT16_SALM_NOTE.format(
        safe="a float32 language model", card="this GPU (compute capability 7.0)"
    ),
    ("salm", (8, 6), "float16"): FLOAT16_SALM_NOTE.format(
        safe="bfloat16", card="this GPU (compute capability 8.6)"
    ),
    ("nemo-asr", (6, 1), "auto"): "note: this GPU (compute capability 6.1) has neither native bfloat16 nor "
    "fast float16: float32",
    ("salm", (6, 1), "auto"): "note: this GPU (compute capability 6.1) has neither native bfloat16 nor fast "
    "float16: float32 (about 10 GB for Canary-Qwen's 2.5 B parameters)",
}
# Every other case that explains itself: any GPU below 8.0 on auto/bfloat16, float16 for Canary-Qwen, the
# CPU asked for a GPU dtype. Their exact wording is checked on the representatives above.
NOTED = {
    (family, capability, requested)
    for family, capability, requested, _ in CASES
    if (capability is None and requested in ("bfloat16", "float16"))
    or (capability is not None and capability < (8, 0) and requested in ("auto", "bfloat16"))
    or (family == "salm" and capability is not None and requested == "float16")
}


@pytest.mark.parametrize(("family", "capability", "requested", "expected"), CASES)
def test_decision_table(family: str, capability: tuple[int, int] | None, requested: str, expected: Precision):
    device = "cpu" if capability is None else "cuda"
    chosen = choose_precision(device, capability, requested, family)
    assert dataclasses.replace(chosen, note="") == expected
    key = (family, capability, requested)
    assert bool(chosen.note) == (key in NOTED)
    if key in NOTES:
        assert chosen.note == NOTES[key]
    assert "\n" not in chosen.note
    if capability is None or capability < (8, 0):  # no GPU below Ampere runs (emulated) bfloat16
        assert "bfloat16" not in (chosen.weights, chosen.autocast, chosen.encoder_autocast, chosen.llm)


def test_descriptions_and_the_dtype_the_engine_sees():
    # describe(): the console line and the status panel; dtype: LoadedModel.dtype, the engine's autocast
    assert [(p.describe(), p.dtype) for p in (F32, BF16_AUTOCAST, BF16_SALM, FP16_ENCODER)] == [
        ("float32", "float32"),
        ("float32 weights, bfloat16 autocast", "bfloat16"),
        ("bfloat16", "bfloat16"),
        ("float32 weights, float16 autocast in the speech encoder", "float32"),
    ]
    assert (PRE_AMPERE_SALM.describe(), PRE_AMPERE_SALM.dtype) == (FP16_ENCODER.describe(), "float32")
    assert (FP16_SALM.describe(), FP16_SALM.dtype) == ("float16", "float16")
    assert Precision("float16", llm="float32").describe() == "float16 weights, float32 language model"


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="dtype must be one of"):
        choose_precision("cuda", (8, 0), "fp8", "salm")
    with pytest.raises(ValueError, match="model kind must be one of"):
        choose_precision("cuda", (8, 0), "auto", "whisper")


def test_engine_autocasts_only_where_the_precision_says(monkeypatch):
    from contextlib import nullcontext

    assert isinstance(autocast_context("cuda", None), nullcontext)  # e.g. a T4: the encoder autocasts itself
    assert isinstance(autocast_context("cpu", "bfloat16"), nullcontext)
    assert isinstance(autocast_context("cuda", "float32"), nullcontext)
    with simulated_gpu(CARDS["h100"]), warnings.catch_warnings():
        warnings.simplefilter("error")  # a GPU that has bfloat16: torch takes the context as it is
        context = autocast_context("cuda", "bfloat16")
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # no GPU: torch says so, and disables it
    with pytest.warns(UserWarning, match="CUDA is not available"):
        context = autocast_context("cuda", "bfloat16")
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16


# --------------------------------------------------------------------------- the loader's choice


class PackageLog(logging.Handler):
    """What the package logs (the lines an entry point shows on the console), kept for the test: a
    handler on the `localstt` logger itself, whatever the libraries do to the root logger."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def said(self, level: int = logging.WARNING) -> list[str]:
        """The messages at `level` and above, since the last call; forgotten once read."""
        lines = [r.getMessage() for r in self.records if r.levelno >= level]
        self.records.clear()
        return lines


@pytest.fixture
def package_log() -> Iterator[PackageLog]:
    logger = logging.getLogger("localstt")
    handler, level = PackageLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def config_with(exported_project: Any, device: str, dtype: str) -> Any:
    config = load_config(exported_project.config)
    return dataclasses.replace(
        config, runtime=dataclasses.replace(config.runtime, device=device, dtype=dtype)
    )


@pytest.mark.parametrize("requested", ["auto", "bfloat16"])
def test_a_t4_gets_float16_and_no_bfloat16(exported_project, monkeypatch, package_log, requested: str):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)  # emulated counts
    config = config_with(exported_project, "auto", requested)
    chosen = {kind: pick(config, kind) for kind in ("nemo-asr", "salm")}

    assert {kind: device for kind, (device, _) in chosen.items()} == {"nemo-asr": "cuda", "salm": "cuda"}
    parakeet, canary = chosen["nemo-asr"][1], chosen["salm"][1]
    assert dataclasses.replace(parakeet, note="") == FP16_ENCODER
    assert dataclasses.replace(canary, note="") == PRE_AMPERE_SALM
    for precision in (parakeet, canary):
        fields = (precision.weights, precision.autocast, precision.encoder_autocast, precision.llm)
        assert "bfloat16" not in fields and precision.dtype == "float32"
    err = package_log.said()
    assert err == [parakeet.note, canary.note]  # one line per load, and nothing else
    assert all(line.startswith(f"note: {T4} has no native bfloat16") for line in err)


def test_cpu_with_bfloat16_in_config_runs_float32_with_one_note(exported_project, monkeypatch, package_log):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device, precision = pick(config_with(exported_project, "cpu", "bfloat16"), "salm")
    assert (device, dataclasses.replace(precision, note="")) == ("cpu", F32_SALM)
    assert package_log.said() == [NOTES[("nemo-asr", None, "bfloat16")]]

    store = ModelStore(config_with(exported_project, "cpu", "bfloat16"))
    loaded = store.load("parakeet")
    said = package_log.said(logging.INFO)
    assert [line for line in said if "bfloat16" in line] == [
        'note: dtype = "bfloat16" in config.toml is for GPUs; the CPU runs float32'
    ]
    assert (loaded.device, loaded.dtype, loaded.precision.note) == ("cpu", "float32", precision.note)
    assert dataclasses.replace(loaded.precision, note="") == F32
    assert any("on cpu (float32)" in line for line in said)
    assert next(loaded.model.parameters()).dtype == torch.float32


# --------------------------------------------------------------------------- finite on the tiny models


def t4_store(exported_project: Any, monkeypatch: pytest.MonkeyPatch) -> ModelStore:
    """A store that loads on the CPU exactly what it would put on a T4 (the precision of compute 7.5)."""

    def as_on_a_t4(config: Any, family: Any) -> tuple[str, Precision]:
        return "cpu", choose_for_makeup("cuda", (7, 5), config.runtime.dtype, family.makeup)

    monkeypatch.setattr(localstt.store, "pick_device_and_precision", as_on_a_t4)
    return ModelStore(load_config(exported_project.config))


def test_parakeet_encoder_under_float16_autocast_is_finite_and_exact(
    exported_project, monkeypatch, package_log
):
    loaded = t4_store(exported_project, monkeypatch).load("parakeet")
    model = loaded.model
    assert loaded.precision == choose_precision("cuda", (7, 5), "auto", "nemo-asr")
    loaded_line = "(float32 weights, float16 autocast in the speech encoder)"
    assert any(loaded_line in line for line in package_log.said(logging.INFO))
    seen: dict[str, Any] = {}
    model.encoder.layers[0].register_forward_hook(lambda m, i, out: seen.update(inside=out))
    model.encoder.register_forward_hook(lambda m, i, out: seen.update(encoded=out[0]))
    lstm = next(m for m in model.decoder.modules() if isinstance(m, torch.nn.LSTM))
    lstm.register_forward_hook(lambda m, i, out: seen.update(decoder=out[0]))
    joint = [m for m in model.joint.modules() if isinstance(m, torch.nn.Linear)][-1]
    joint.register_forward_hook(lambda m, i, out: seen.update(joint=out))

    with torch.inference_mode():
        hypothesis = model.transcribe([str(PHRASE_WAV)], timestamps=True, verbose=False)[0]

    assert seen["inside"].dtype == torch.float16  # the encoder's layers really ran float16
    assert seen["encoded"].dtype == torch.float32 and torch.isfinite(seen["encoded"]).all()
    assert seen["decoder"].dtype == seen["joint"].dtype == torch.float32  # the LSTM decoder, the joint
    assert hypothesis.text == PHRASE
    assert " ".join(word["word"] for word in hypothesis.timestamp["word"]) == PHRASE
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # weights stay float32


def down_proj(model: Any, layer: int = 0) -> Any:
    return next(m for n, m in model.llm.named_modules() if n.endswith(f"layers.{layer}.mlp.down_proj"))


def blow_up(model: Any, factor: float = 1e3) -> None:
    """Scale one MLP output of the LLM so that its residual stream passes float16's 65504 (a new tensor:
    the mapped weights are never written)."""
    weight = down_proj(model).weight
    weight.data = weight.data * factor


def run_llm(model: Any, under_autocast: str | None = None) -> tuple[list[list[int]], torch.Tensor, float]:
    """(tokens, logits of every step, largest |value| in the residual stream after layer 0)."""
    layer = next(m for n, m in model.llm.named_modules() if n.endswith("layers.0"))
    peak: list[float] = []

    def record(module: Any, inputs: Any, output: Any) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        peak.append(hidden.detach().float().abs().max().item())

    handle = layer.register_forward_hook(record)
    context = torch.autocast("cpu", dtype=getattr(torch, under_autocast)) if under_autocast else None
    try:
        with torch.inference_mode(), context or torch.autocast("cpu", enabled=False):
            out = model.generate(
                prompts=transcribe_prompt(model, PHRASE_WAV),
                max_new_tokens=8,
                output_logits=True,
                return_dict_in_generate=True,
            )
    finally:
        handle.remove()
    return out.sequences.tolist(), torch.stack(out.logits), max(peak)


@pytest.fixture(scope="module")
def canary_dir(exported_project: Any) -> Path:
    return exported_project.root / "local_models" / "canary-qwen"


def test_canary_pre_ampere_precision_is_applied_at_load(exported_project, monkeypatch):
    loaded = t4_store(exported_project, monkeypatch).load("canary-qwen")
    model = loaded.model
    assert loaded.precision == choose_precision("cuda", (7, 5), "auto", "salm")
    assert (loaded.dtype, loaded.precision.autocast) == ("float32", None)  # the engine adds no autocast
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.perception._localstt_autocast == "float16"
    lm_head = next(m for n, m in model.llm.named_modules() if n.endswith("lm_head"))
    assert lm_head.weight.data_ptr() == model.embed_tokens.weight.data_ptr()  # still tied after the cast
    seen: dict[str, Any] = {}
    model.perception.encoder.register_forward_hook(lambda m, i, out: seen.update(inside=out[0]))
    model.perception.register_forward_hook(lambda m, i, out: seen.update(handed_on=out[0]))
    tokens, logits, _ = run_llm(model)
    assert seen["inside"].dtype == torch.float16  # the speech encoder ran under float16 autocast
    assert seen["handed_on"].dtype == torch.float32  # and handed float32 to the LLM
    assert torch.isfinite(logits).all()
    reference, _ = salm_loading.load_salm(loaded.export_dir, "cpu", torch.float32)
    assert tokens == run_llm(reference)[0]  # the same tokens as all-float32


def test_float16_overflow_in_the_llm_is_what_the_pre_ampere_precision_avoids(canary_dir: Path):
    t4 = choose_precision("cuda", (7, 5), "auto", "salm")
    reference, _ = salm_loading.load_salm(canary_dir, "cpu", torch.float32)
    naive, _ = salm_loading.load_salm(canary_dir, "cpu", torch.float16)  # the whole model cast to float16
    ours, _ = salm_loading.load_salm(canary_dir, "cpu", t4)
    for model in (reference, naive, ours):
        blow_up(model)

    want, reference_logits, peak = run_llm(reference)
    assert FLOAT16_MAX < peak < float("inf")  # float32 holds the activations, float16 cannot
    assert torch.isfinite(reference_logits).all()

    _, naive_logits, _ = run_llm(naive, under_autocast="float16")  # as the engine ran it: fp16 autocast too
    assert not torch.isfinite(naive_logits).all()

    tokens, logits, our_peak = run_llm(ours)
    assert torch.isfinite(logits).all() and FLOAT16_MAX < our_peak < float("inf")
    assert tokens == want
    assert logits.argmax(-1).tolist() == reference_logits.argmax(-1).tolist()


def test_autocast_forward_casts_outputs_and_is_installed_once():
    module = torch.nn.Linear(4, 4)
    autocast_forward(module, "float16", "float32")
    first = module.forward
    assert autocast_forward(module, "float16", "float32") is module and module.forward is first
    seen: list[torch.dtype] = []
    inner = torch.nn.Linear(4, 4)
    outer = torch.nn.Sequential(inner)
    inner.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    autocast_forward(outer, "float16", "float32")
    result = outer(torch.randn(2, 4))
    assert seen == [torch.float16] and result.dtype == torch.float32


def test_nemo_attention_leaves_float16_for_float32_not_emulated_bfloat16(monkeypatch):
    from nemo.collections.asr.parts.submodules import multi_head_attention
    from nemo.utils import cast_utils

    from localstt import precision

    monkeypatch.setattr(
        multi_head_attention, "avoid_float16_autocast_context", cast_utils.avoid_float16_autocast_context
    )
    was = torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")
    torch.set_autocast_enabled(
        "cuda", True
    )  # the state the encoder's float16 autocast leaves (no GPU needed)
    torch.set_autocast_dtype("cuda", torch.float16)
    try:
        with simulated_gpu(CARDS["t4"]):  # bfloat16 tensors can be made (emulation), no native bfloat16
            nemo_choice = multi_head_attention.avoid_float16_autocast_context()
            precision.native_bf16_in_nemo_attention()
            ours = multi_head_attention.avoid_float16_autocast_context()
    finally:
        torch.set_autocast_enabled("cuda", was[0])
        torch.set_autocast_dtype("cuda", was[1])
    assert nemo_choice.fast_dtype == torch.bfloat16  # what NeMo alone would run the attention in on a T4
    assert ours.fast_dtype == torch.float32
    assert multi_head_attention.avoid_float16_autocast_context is precision.avoid_float16_autocast_context

    torch.set_autocast_enabled("cuda", True)
    torch.set_autocast_dtype("cuda", torch.float16)
    try:
        with simulated_gpu(CARDS["h100"]):  # native bfloat16
            assert precision.avoid_float16_autocast_context().fast_dtype == torch.bfloat16  # as NeMo does
    finally:
        torch.set_autocast_enabled("cuda", was[0])
        torch.set_autocast_dtype("cuda", was[1])
    from contextlib import nullcontext

    assert isinstance(precision.avoid_float16_autocast_context(), nullcontext)  # no float16 autocast: nothing
