"""Canary-Qwen's windows pooled across the recordings of a batch: each recording's text as when it
runs alone, in fewer model calls; and `canary_batch_size = "auto"` sized from the free memory."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from localstt import memory
from localstt.audio import split_at_quiet_points
from localstt.engine import TranscribeOptions, transcribe
from localstt.models.canary_qwen import (
    AUTO_WINDOWS,
    CPU_AUTO_WINDOWS,
    CanaryQwenOptions,
    window_bytes,
    windows_at_once,
)
from localstt.runs.batch import transcribe_all
from testkit.tiny_models import PHRASE_WAV

# The tiny LLM's words are random: keep them short. 12 s windows: a recording of n phrases (4 s each)
# has ceil(4n / 12) windows.
OPTIONS = TranscribeOptions.build(canary_max_new_tokens=12, canary_window_seconds=12, canary_batch_size=4)
REPEATS = [1, 4, 2, 1, 7, 1, 3]


def recordings(tmp_path: Path) -> list[Path]:
    speech, rate = sf.read(PHRASE_WAV, dtype="float32")
    paths = []
    for number, repeats in enumerate(REPEATS):
        path = tmp_path / f"note-{number}.flac"
        sf.write(path, np.tile(np.concatenate([speech, np.zeros(rate, np.float32)]), repeats), rate)
        paths.append(path)
    return paths


@contextmanager
def batch_sizes(module: Any) -> Iterator[list[int]]:
    """The batch size of every call of `module` (Canary-Qwen's audio encoder: one call a batch)."""
    calls: list[int] = []
    handle = module.register_forward_pre_hook(
        lambda _module, args, kwargs: calls.append(int(next(iter([*args, *kwargs.values()])).shape[0])),
        with_kwargs=True,
    )
    try:
        yield calls
    finally:
        handle.remove()


def test_pooled_windows_give_each_recording_its_own_text_in_fewer_calls(model_store, tmp_path: Path):
    paths = recordings(tmp_path)
    perception = model_store.load("canary-qwen").model.perception
    with batch_sizes(perception) as alone_calls:
        alone = [transcribe(path, "canary-qwen", OPTIONS, model_store) for path in paths]
    with batch_sizes(perception) as pooled_calls:
        pooled = transcribe_all(paths, "canary-qwen", OPTIONS, model_store)
    assert [r.index for r in pooled] == list(range(len(paths)))
    for one, together in zip(alone, pooled, strict=True):
        assert together.transcript is not None, together.failure
        assert together.transcript.segments == one.segments  # same windows, same words
        assert together.transcript.notes == one.notes
    # Alone, each recording's windows go 4 at a time; pooled, all of them do.
    windows = [len(split_at_quiet_points(sf.read(path, dtype="float32")[0], 16000, 12)) for path in paths]
    assert alone_calls == [size for count in windows for size in fours(count)]
    assert pooled_calls == fours(sum(windows))
    assert len(pooled_calls) < len(alone_calls)


def fours(count: int) -> list[int]:
    return [min(4, count - first) for first in range(0, count, 4)]


def test_pooled_windows_halve_on_out_of_memory_and_the_notes_go_where_they_apply(model_store, tmp_path):
    import torch

    paths = recordings(tmp_path)
    perception = model_store.load("canary-qwen").model.perception
    seen: list[int] = []

    def refuse_big_batches_after_the_first(
        _module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        seen.append(next(iter([*args, *kwargs.values()])).shape[0])
        if len(seen) > 1 and seen[-1] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 5.00 GiB (a test)")

    handle = perception.register_forward_pre_hook(refuse_big_batches_after_the_first, with_kwargs=True)
    try:
        results = transcribe_all(paths, "canary-qwen", OPTIONS, model_store)
    finally:
        handle.remove()
    cuts = [split_at_quiet_points(sf.read(p, dtype="float32")[0], 16000, 12) for p in paths]
    windows = sum(len(c) for c in cuts)
    rest = windows - 4
    assert seen == [4, 4] + [2] * (rest // 2) + [1] * (rest % 2)  # the second 4 failed: 2 at a time after
    # The note goes to the recordings that had windows left when it happened: not to those whose
    # windows were all among the first 4 (the longest).
    longest_first = sorted(
        ((number, end - start) for number, cut in enumerate(cuts) for start, end in cut), key=lambda w: -w[1]
    )
    finished_first = {n for n in range(len(paths)) if n not in {number for number, _ in longest_first[4:]}}
    note = "the GPU ran out of memory with 4 windows at once; now 2 at a time, from window 5 on"
    assert finished_first and len(finished_first) < len(paths)
    for number, result in enumerate(results):
        assert result.transcript is not None
        assert result.transcript.notes == ([] if number in finished_first else [note]), number


def test_a_windows_memory_is_estimated_from_the_language_models_shape():
    # Qwen3-1.7B as its config.json says: 28 layers, 8 key-value heads of 128.
    qwen3 = SimpleNamespace(
        num_hidden_layers=28, num_key_value_heads=8, num_attention_heads=16, hidden_size=2048, head_dim=128
    )
    model = SimpleNamespace(llm=SimpleNamespace(config=qwen3))
    # 40 s windows: 500 audio embeddings + 64 for the prompt + 320 new tokens, in bfloat16, twice over
    assert window_bytes(model, CanaryQwenOptions(), "bfloat16") == 2 * 28 * 2 * 8 * 128 * 884 * 2
    assert window_bytes(model, CanaryQwenOptions(), "float32") == 2 * 28 * 2 * 8 * 128 * 884 * 4
    shorter = CanaryQwenOptions(canary_window_seconds=20, canary_max_new_tokens=160)
    assert window_bytes(model, shorter, "bfloat16") == 2 * 28 * 2 * 8 * 128 * 474 * 2


def test_auto_fits_the_free_memory(model_store, monkeypatch: pytest.MonkeyPatch):
    loaded = model_store.load("canary-qwen")
    auto = CanaryQwenOptions(canary_batch_size="auto")
    per_window = window_bytes(loaded.model, auto, "float32")
    free = {"bytes": 0}
    monkeypatch.setattr(memory, "free_memory_bytes", lambda device: free["bytes"])
    on_gpu = dataclasses.replace(loaded, device="cuda")
    for windows, on_the_cpu, on_a_gpu in ((3, 3, 3), (50, CPU_AUTO_WINDOWS, 50), (10_000, 8, AUTO_WINDOWS)):
        free["bytes"] = int(per_window * windows / 0.8) + 1
        assert windows_at_once(loaded, auto) == on_the_cpu
        assert windows_at_once(on_gpu, auto) == on_a_gpu
    free["bytes"] = 0
    assert windows_at_once(loaded, auto) == 1  # never none: running out halves it anyway
    assert windows_at_once(loaded, CanaryQwenOptions(canary_batch_size=5)) == 5
