"""Long audio and memory: the full-attention estimate against a measured NeMo forward, the choice of
attention, the retry in local attention after running out of memory, Canary's shrinking batch, and
the [transcription] settings."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from benchmarks.attention_memory import measure
from localstt import memory
from localstt.config import ConfigError, load_config
from localstt.engine import EngineError, TranscribeOptions, transcribe
from localstt.formats import JsonWriter, transcript_from_json
from localstt.memory import AttentionDims, choose_attention, encoder_frames, full_attention_bytes
from localstt.models.canary_qwen import CanaryQwenOptions
from localstt.models.parakeet import ParakeetOptions
from testkit.store_env import REPO_ROOT
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
OPTIONS = TranscribeOptions()
GB = 10**9
RETRIED = "the GPU ran out of memory in full attention; transcribed again with local attention"
GPU_SENTENCE = (
    "The GPU ran out of memory: close other GPU programs, or set keep_all_loaded = false "
    "in config.toml, or use a shorter recording."
)

# ------------------------------------------------------------------ the estimate against a measurement


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads peak RSS from Linux /proc")
def test_the_estimate_is_within_ten_percent_of_a_measured_nemo_forward():
    """240 s of audio = 3001 frames: 7 (4 x 3001 x 3001) float32 score tensors, about 980 MiB.

    Measured here: 977.9 MiB against 977.2 MiB estimated (0.999); also 0.999 with SDPA, 1.001 in
    bfloat16 and 0.995 at Parakeet's d_model 1024 / 8 heads (benchmarks/attention_memory.py). The
    bounds are +-10%: tighter than one T x T tensor's share (1/7 = 14%), so a tensor counted wrongly
    fails, and loose enough for allocator and thread-pool noise (a few MB)."""
    seconds, d_model, heads = 240.0, 64, 4
    frames = encoder_frames(seconds)
    assert frames == 3001
    estimate = full_attention_bytes(seconds, d_model=d_model, heads=heads, dtype_bytes=4)
    measured = measure(frames, d_model=d_model, heads=heads)  # benchmarks/attention_memory.py
    assert measured > 500 * 10**6  # several hundred MB: the scores, not noise
    assert 0.9 <= estimate / measured <= 1.1, (estimate, measured)


# ------------------------------------------------------------------ the plan


PARAKEET_GPU = AttentionDims(d_model=1024, heads=8, dtype_bytes=2, softmax_bytes=4)


def test_encoder_frames_follow_the_window_stride_and_subsampling():
    assert encoder_frames(0.0) == 1
    assert encoder_frames(1.0) == 13  # 101 feature frames of 10 ms, 8x subsampled (rounded up)
    assert encoder_frames(24 * 60) == 18001  # the 18,000 frames of 24 minutes at 80 ms
    assert encoder_frames(1.0, subsampling=4, window_ms=20) == 13


def test_the_formula_counts_seven_score_tensors_and_the_mask():
    frames = encoder_frames(600)
    fp32 = full_attention_bytes(600, d_model=1024, heads=8, dtype_bytes=4)
    assert fp32 == 8 * frames**2 * 7 * 4 + frames**2 + 10 * frames * 1024 * 4
    bf16 = full_attention_bytes(600, d_model=1024, heads=8, dtype_bytes=2, softmax_bytes=4)
    assert bf16 == 8 * frames**2 * (5 * 2 + 2 * 4) + frames**2 + 10 * frames * 1024 * 4
    sdpa = full_attention_bytes(600, d_model=1024, heads=8, dtype_bytes=2, sdpa=True)
    assert sdpa == 8 * frames**2 * 4 * 2 + frames**2 + 10 * frames * 1024 * 4
    assert full_attention_bytes(600, d_model=1024, heads=8, dtype_bytes=4, batch=2) == 2 * fp32
    # 24 minutes in bfloat16 autocast: about 48 GB for one layer's attention.
    assert full_attention_bytes(24 * 60, d_model=1024, heads=8, dtype_bytes=2, softmax_bytes=4) > 45 * GB


def test_full_attention_when_the_estimate_fits():
    plan = choose_attention(300, 16 * GB, PARAKEET_GPU, device="cuda")
    assert plan.mode == "full" and plan.cause == "fits" and plan.headline == "full attention"
    assert 2 * GB < plan.estimate_bytes < 3 * GB and plan.free_bytes == 16 * GB
    assert plan.reason == "full attention: 5.0 min of audio needs about 2.2 GB, 16.0 GB free on cuda"


def test_local_attention_when_the_estimate_does_not_fit_the_fraction():
    estimate = full_attention_bytes(600, d_model=1024, heads=8, dtype_bytes=2, softmax_bytes=4)
    just_enough = int(estimate / 0.8) + 1
    assert choose_attention(600, just_enough, PARAKEET_GPU).mode == "full"
    plan = choose_attention(600, just_enough - 2, PARAKEET_GPU, device="cuda")
    assert plan.mode == "local" and plan.cause == "memory"
    assert plan.headline == "local attention: not enough free memory for full attention"
    assert plan.reason == (
        "local attention: full attention on 10.0 min of audio would need about 8.5 GB, "
        "more than 0.8 of the 10.6 GB free on cuda"
    )
    assert choose_attention(600, just_enough - 2, PARAKEET_GPU, memory_fraction=1.0).mode == "full"
    with pytest.raises(ValueError, match="memory_fraction"):
        choose_attention(600, just_enough, PARAKEET_GPU, memory_fraction=0)


def test_local_attention_over_24_minutes_whatever_the_memory():
    plan = choose_attention(24 * 60 + 1, 10**15, PARAKEET_GPU)
    assert plan.mode == "local" and plan.headline == "local attention for long audio"
    assert (
        plan.reason
        == "local attention for long audio: 24.0 min is longer than full_attention_max_minutes = 24"
    )
    assert choose_attention(24 * 60, 10**15, PARAKEET_GPU).mode == "full"
    # A larger setting (made in code; config.toml refuses it) still stops at NVIDIA's 24 minutes.
    over = choose_attention(25 * 60, 10**15, PARAKEET_GPU, full_attention_max_minutes=30)
    assert over.mode == "local" and "NVIDIA's 24-minute limit" in over.reason
    shorter = choose_attention(120, 10**15, PARAKEET_GPU, full_attention_max_minutes=1)
    assert shorter.mode == "local" and shorter.cause == "too_long"
    assert choose_attention(1, 10**15, PARAKEET_GPU, full_attention_max_minutes=0).mode == "local"


def test_free_memory_on_the_cpu_is_the_available_ram():
    import psutil

    free = memory.free_memory_bytes("cpu")
    assert 0 < free <= psutil.virtual_memory().total


# ------------------------------------------------------------------ the engine on the tiny models


def attention_settings(model: Any) -> tuple[Any, ...]:
    """Everything about the encoder's attention that must be exactly as before a transcription."""
    encoder = model.encoder
    return (
        encoder.self_attention_model,
        list(encoder.att_context_size),
        encoder.subsampling_conv_chunking_factor,
        OmegaConf.to_container(model.cfg.encoder),
        OmegaConf.to_container(encoder._cfg),
        [type(layer.self_attn).__name__ for layer in encoder.layers],
        type(encoder.pos_enc).__name__,
    )


def attention_weights(model: Any) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.encoder.state_dict().items()}


def first_tensor(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    return next(v for v in [*args, *kwargs.values()] if isinstance(v, torch.Tensor))


@contextmanager
def out_of_memory_when(module: Any, fails: Callable[[torch.Tensor], bool]) -> Iterator[list[int]]:
    """`module` raises torch.OutOfMemoryError, before it runs, whenever `fails(first input)`; yields the
    batch sizes it was called with."""
    calls: list[int] = []

    def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        batch = first_tensor(args, kwargs)
        calls.append(int(batch.shape[0]))
        if fails(batch):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 5.00 GiB (a test)")

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def recording(tmp_path: Path, repeats: int) -> Path:
    """The phrase `repeats` times with 1 s of silence after each."""
    speech, rate = sf.read(PHRASE_WAV, dtype="float32")
    path = tmp_path / f"phrase-x{repeats}.flac"
    sf.write(path, np.tile(np.concatenate([speech, np.zeros(rate, dtype=np.float32)]), repeats), rate)
    return path


def test_the_dimensions_are_read_from_the_loaded_model(model_store):
    from types import SimpleNamespace

    from localstt.models.parakeet import score_bytes as _score_bytes
    from localstt.precision import Precision

    assert model_store.config.runtime.device == "cpu"  # the session's config says so, GPU or not
    loaded = model_store.load("parakeet")
    dims = memory.attention_dims(loaded.model, dtype_bytes=4)
    assert dims == AttentionDims(
        d_model=64, heads=4, subsampling=8, window_ms=10.0, dtype_bytes=4, softmax_bytes=4
    )
    assert _score_bytes(loaded) == (4, 4)  # the CPU: float32
    on_gpu = SimpleNamespace(
        device="cuda", model=loaded.model, precision=Precision("float32", autocast="bfloat16")
    )
    assert _score_bytes(on_gpu) == (2, 4)  # bfloat16 scores, float32 softmax
    plain = SimpleNamespace(device="cuda", model=loaded.model, precision=Precision("float32"))
    assert _score_bytes(plain) == (4, 4)


def test_a_short_recording_gets_full_attention_and_says_so(model_store):
    assert model_store.config.runtime.device == "cpu"  # "free on cpu" below: the config says so
    messages: list[str] = []
    transcript = transcribe(PHRASE_WAV, "parakeet", OPTIONS, model_store, lambda f, m: messages.append(m))
    assert transcript.text == PHRASE
    assert "full attention" in messages
    assert transcript.notes[0].startswith("full attention: 3 s of audio needs about ")
    assert transcript.notes[0].endswith("free on cpu") and transcript.notes[0] in messages
    data = json.loads(JsonWriter().render(transcript))
    assert list(data)[-2:] == ["notes", "options"] and data["notes"] == transcript.notes
    assert data["options"] == {  # how it was made: the common options and Parakeet's own
        "max_audio_minutes": 180.0,
        "batch_minutes": 10.0,
        "speakers": False,
        "speaker_names": [],
        "full_attention_max_minutes": 24.0,
        "attention_memory_fraction": 0.8,
        "parakeet_batch_size": "auto",
    }
    assert transcript_from_json(JsonWriter().render(transcript)) == transcript


def test_too_little_free_memory_means_local_attention_still_exact(model_store, monkeypatch):
    asked: list[str] = []

    def little(device: str) -> int:
        asked.append(str(device))
        return 1000

    assert model_store.config.runtime.device == "cpu"  # asked == ["cpu"] below: the config says so
    model = model_store.load("parakeet").model
    before = attention_settings(model)
    monkeypatch.setattr(memory, "free_memory_bytes", little)
    messages: list[str] = []
    transcript = transcribe(PHRASE_WAV, "parakeet", OPTIONS, model_store, lambda f, m: messages.append(m))
    assert asked == ["cpu"]
    assert transcript.text == PHRASE
    assert "local attention: not enough free memory for full attention" in messages
    assert transcript.notes[0].startswith("local attention: full attention on 3 s of audio would need")
    assert transcript.notes[0].endswith("more than 0.8 of the 0 MB free on cpu")
    assert attention_settings(model) == before


def test_out_of_memory_in_full_attention_is_retried_with_local_attention(model_store, tmp_path):
    path = recording(tmp_path, 3)
    normal = transcribe(path, "parakeet", OPTIONS, model_store)
    assert normal.text == " ".join([PHRASE] * 3)
    model = model_store.load("parakeet").model
    before, weights = attention_settings(model), attention_weights(model)
    modes: list[str] = []

    def full_attention(_batch: torch.Tensor) -> bool:
        modes.append(model.encoder.self_attention_model)
        return model.encoder.self_attention_model == "rel_pos"

    messages: list[str] = []
    with out_of_memory_when(model.encoder, full_attention):
        retried = transcribe(path, "parakeet", OPTIONS, model_store, lambda f, m: messages.append(m))
    assert modes == ["rel_pos", "rel_pos_local_attn"]
    assert retried.text == normal.text
    assert retried.segments == normal.segments
    assert len(retried.notes) == 2 and retried.notes[1] == RETRIED
    assert retried.notes[0].startswith("full attention: 13 s of audio needs about 4 MB, ")  # free RAM varies
    assert "the GPU ran out of memory in full attention; transcribing again with local attention" in messages
    assert attention_settings(model) == before
    assert all(torch.equal(value, weights[name]) for name, value in attention_weights(model).items())


def test_out_of_memory_in_both_modes_gives_the_sentence_and_restores_the_model(model_store):
    model = model_store.load("parakeet").model
    before, weights = attention_settings(model), attention_weights(model)
    modes: list[str] = []

    def always(_batch: torch.Tensor) -> bool:
        modes.append(model.encoder.self_attention_model)
        return True

    with out_of_memory_when(model.encoder, always), pytest.raises(EngineError) as caught:
        transcribe(PHRASE_WAV, "parakeet", OPTIONS, model_store)
    assert str(caught.value) == GPU_SENTENCE
    assert isinstance(caught.value.__cause__, torch.OutOfMemoryError)
    assert modes == ["rel_pos", "rel_pos_local_attn"]  # retried once, in local attention, not more
    assert attention_settings(model) == before
    assert all(torch.equal(value, weights[name]) for name, value in attention_weights(model).items())
    assert transcribe(PHRASE_WAV, "parakeet", OPTIONS, model_store).text == PHRASE


def test_planned_local_attention_is_not_retried(model_store, tmp_path):
    model = model_store.load("parakeet").model
    before = attention_settings(model)
    options = TranscribeOptions.build(full_attention_max_minutes=0)
    with out_of_memory_when(model.encoder, lambda batch: True) as calls, pytest.raises(EngineError):
        transcribe(PHRASE_WAV, "parakeet", options, model_store)
    assert calls == [1]
    assert attention_settings(model) == before


# The tiny LLM's words are random: keep them short. 12 s windows: 44 s of audio gives 5 windows.
CANARY = TranscribeOptions.build(canary_max_new_tokens=12, canary_window_seconds=12)


def test_canary_halves_its_batch_on_out_of_memory_and_keeps_it_small(model_store, tmp_path):
    path = recording(tmp_path, 10)
    one_at_a_time = transcribe(path, "canary-qwen", CANARY.replace(canary_batch_size=1), model_store)
    assert len(one_at_a_time.segments) == 5 and one_at_a_time.notes == []
    perception = model_store.load("canary-qwen").model.perception
    messages: list[str] = []
    with out_of_memory_when(perception, lambda batch: batch.shape[0] > 1) as calls:
        shrunk = transcribe(path, "canary-qwen", CANARY, model_store, lambda f, m: messages.append(m))
    assert calls == [5, 2, 1, 1, 1, 1, 1]  # all 5 at once (batch 8), then 2, then 1 for the rest
    assert "the GPU ran out of memory with 5 windows at once; now 2 at a time" in messages
    assert "the GPU ran out of memory with 2 windows at once; now 1 at a time" in messages
    assert shrunk.notes == [
        "the GPU ran out of memory with 5 windows at once; now 2 at a time, from window 1 on",
        "the GPU ran out of memory with 2 windows at once; now 1 at a time, from window 1 on",
    ]
    assert shrunk.text == one_at_a_time.text and shrunk.segments == one_at_a_time.segments

    with out_of_memory_when(perception, lambda batch: batch.shape[0] > 2) as calls:
        halved = transcribe(path, "canary-qwen", CANARY.replace(canary_batch_size=4), model_store)
    assert calls == [4, 2, 2, 1]  # 4 failed and was redone as 2; never 4 again
    windows = [(s.start, s.end) for s in one_at_a_time.segments]
    assert [(s.start, s.end) for s in halved.segments] == windows


def test_canary_out_of_memory_at_batch_one_gives_the_sentence(model_store, tmp_path):
    perception = model_store.load("canary-qwen").model.perception
    with out_of_memory_when(perception, lambda batch: True) as calls, pytest.raises(EngineError) as caught:
        transcribe(recording(tmp_path, 6), "canary-qwen", CANARY.replace(canary_batch_size=2), model_store)
    assert str(caught.value) == GPU_SENTENCE
    assert calls == [2, 1]
    assert transcribe(PHRASE_WAV, "canary-qwen", CANARY, model_store).segments


# ------------------------------------------------------------------ the [transcription] settings


def write_config(tmp_path: Path, transcription: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'models_dir = "models"\n\n[transcription]\n{transcription}\n', encoding="utf-8")
    return path


def test_the_shipped_config_has_the_default_settings():
    config = load_config(REPO_ROOT / "config.toml")
    assert config.transcription == TranscribeOptions()
    assert config.max_audio_minutes == 180.0


def test_settings_are_read_into_the_options(tmp_path):
    path = write_config(
        tmp_path,
        "max_audio_minutes = 60\nfull_attention_max_minutes = 10.5\nattention_memory_fraction = 1\n"
        "parakeet_batch_size = 2\ncanary_window_seconds = 30\ncanary_batch_size = 4",
    )
    config = load_config(path)
    assert config.max_audio_minutes == 60.0
    assert config.transcription == TranscribeOptions.build(
        max_audio_minutes=60.0,
        full_attention_max_minutes=10.5,
        attention_memory_fraction=1.0,
        parakeet_batch_size=2,
        canary_window_seconds=30.0,
        canary_batch_size=4,
    )
    options = config.transcription.replace(canary_max_new_tokens=20)
    parakeet, canary = options.of(ParakeetOptions), options.of(CanaryQwenOptions)
    assert (parakeet.full_attention_max_minutes, parakeet.attention_memory_fraction) == (10.5, 1.0)
    assert (parakeet.parakeet_batch_size, canary.canary_batch_size, canary.canary_window_seconds) == (
        2,
        4,
        30,
    )
    assert canary.canary_max_new_tokens == 20


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "attention_memory_fraction = 0",
            "attention_memory_fraction = 0 in .*; use a number above 0 and at most 1",
        ),
        ("attention_memory_fraction = 1.5", "use a number above 0 and at most 1"),
        ("full_attention_max_minutes = -1", "full_attention_max_minutes = -1 .*from 0 to 24"),
        ("full_attention_max_minutes = 30", "NVIDIA's limit for full attention"),
        ("max_audio_minutes = -5", "max_audio_minutes = -5 .*above 0"),
        ("canary_window_seconds = 60", "at most 40"),
        ("canary_batch_size = 0", "canary_batch_size = 0 .*a whole number, 1 or more"),
        ("parakeet_batch_size = 1.5", "parakeet_batch_size = 1.5 .*a whole number"),
        ('parakeet_batch_size = "lots"', "parakeet_batch_size = 'lots' .*1 or more, or \"auto\""),
        ('canary_batch_size = "8"', "canary_batch_size = '8'"),
        ("attention_memory_fraction = true", "attention_memory_fraction = True"),
        ("max_audio_minutes = nan", "max_audio_minutes = nan"),
    ],
)
def test_a_bad_setting_gets_one_sentence(tmp_path, line, expected):
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(write_config(tmp_path, line))
    message = str(caught.value)
    assert message.startswith("[transcription] ") and message.endswith(".") and "\n" not in message
