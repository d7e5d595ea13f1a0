"""Parakeet-TDT (NeMo's ASR models, `kind = "nemo-asr"`): one `.nemo` archive per export.

Export: the repo's one top-level `.nemo`, unchanged. Load: read in place (localstt/loading/
nemo_archive.py), float32 weights; on a GPU the engine runs it under bfloat16 autocast, or only its
encoder under float16 where the GPU lacks bfloat16 (localstt/precision.py). Transcribe: one pass over
the whole recording with word timestamps, full attention when it fits (localstt/memory.py), else
local attention, and local attention again if full attention runs out of memory anyway. Live: NeMo's
buffered streaming pipeline over the same loaded model (localstt/models/parakeet_live.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from localstt import memory
from localstt.audio import DecodedAudio, silence
from localstt.languages import ENGLISH_ONLY, EUROPEAN_25, Languages
from localstt.loading.nemo_archive import UNPACKED_PATH_MARGIN, plan_one_nemo
from localstt.loading.nemo_restore import load_nemo
from localstt.manifest import Manifest
from localstt.models import parakeet_boost
from localstt.models.capabilities import (
    LiveDecoder,
    PhraseBooster,
    Progress,
    SegmentsDone,
    Streamer,
    Transcribed,
    Transcriber,
)
from localstt.models.family import LoadedModel, ModelFamily, register
from localstt.models.parakeet_attention import local_attention
from localstt.models.parakeet_live import ParakeetLive
from localstt.precision import ModelMakeup, Precision, autocast_context, autocast_forward, torch_dtype
from localstt.spec import FamilyOptions, Limit, LiveSettings, ModelSpec, Vocabulary, setting
from localstt.transcript import Segment, Word

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from localstt.hub import RemoteFile

logger = logging.getLogger(__name__)

AUTO_BATCH = 128  # the most recordings "auto" runs at once (the Open ASR leaderboard's batch)
# What each published Parakeet-TDT hears (its model card); any other repo is taken as English only.
# v3 detects the language itself and reports none.
LANGUAGES_BY_REPO: dict[str, Languages] = {
    "nvidia/parakeet-tdt-0.6b-v2": ENGLISH_ONLY,
    "nvidia/parakeet-tdt-0.6b-v3": Languages(transcribes=EUROPEAN_25, detects=True),
}


@dataclass(frozen=True)
class ParakeetOptions(FamilyOptions):
    # Full attention up to this length (never over NVIDIA's 24 minutes) and only while one encoder
    # layer's estimated attention memory fits in this fraction of the free memory.
    full_attention_max_minutes: float = setting(
        24.0,
        Limit(0, True, 24, False, "a number of minutes from 0 to 24 (NVIDIA's limit for full attention)"),
    )
    attention_memory_fraction: float = setting(
        0.8,
        Limit(
            0,
            False,
            1,
            False,
            "a number above 0 and at most 1 (the share of free memory full attention may use)",
        ),
    )
    # Recordings run at once when many are transcribed together (localstt/batch.py): a number, or
    # "auto" for as many as full attention's estimate lets fit in the free memory (at most AUTO_BATCH).
    parakeet_batch_size: int | str = setting(
        "auto", Limit(1, True, None, True, 'a whole number, 1 or more, or "auto"', words=("auto",))
    )


class Parakeet(ModelFamily, Transcriber[ParakeetOptions], Streamer, PhraseBooster):
    kind: ClassVar[str] = "nemo-asr"
    runtime_module: ClassVar[str] = "nemo.collections.asr"
    runtime_name: ClassVar[str] = "NeMo"
    makeup: ClassVar[ModelMakeup] = ModelMakeup("Parakeet", bfloat16_weights=True)
    options_type: ClassVar[type[FamilyOptions]] = ParakeetOptions
    loader_path_margin: ClassVar[int] = UNPACKED_PATH_MARGIN
    has_word_times: ClassVar[bool] = True

    def plan(self, api: HfApi, spec: ModelSpec) -> list[RemoteFile]:
        return plan_one_nemo(api, spec)

    def languages(self, spec: ModelSpec) -> Languages:
        return LANGUAGES_BY_REPO.get(spec.repo.lower(), ENGLISH_ONLY)

    def load(
        self, export_dir: Path, manifest: Manifest, device: str, precision: Precision
    ) -> tuple[Any, str]:
        model, method = load_nemo(export_dir, manifest, device, "ASRModel")
        if precision.weights != "float32":  # bfloat16 where the GPU has it: the whole model, as the
            model = model.to(torch_dtype(precision.weights))  # Open ASR Leaderboard runs it
        if precision.encoder_autocast:  # weights stay float32; the decoder runs float32
            autocast_forward(model.encoder, precision.encoder_autocast, precision.weights)
        return model, method

    def transcribe(
        self,
        loaded: LoadedModel,
        audio: DecodedAudio,
        options: ParakeetOptions,
        progress: Progress,
        segments_done: SegmentsDone | None = None,  # one pass: the engine hands them all on at the end
    ) -> Transcribed:
        """Full attention when the plan allows it; on running out of memory there, once more with local
        attention. The model's attention settings are as before afterwards, whatever happened."""
        plan = attention_plan(loaded, audio.duration, options)
        progress(0.1, plan.headline)
        progress(0.1, plan.reason)
        notes = [plan.reason]
        ran_out: memory.OutOfMemoryKind = ""
        try:
            hypothesis = _run(loaded, audio, options, local=plan.mode == "local")
        except Exception as error:
            ran_out = memory.out_of_memory(error) if plan.mode == "full" else ""
            if not ran_out:
                raise
        if ran_out:  # here, not in the `except` block, so that the failed attempt's tensors are freed
            memory.release_memory(loaded.device)
            said = memory.ran_out(ran_out)
            progress(0.1, f"{said} in full attention; transcribing again with local attention")
            hypothesis = _run(loaded, audio, options, local=True)
            notes.append(f"{said} in full attention; transcribed again with local attention")
        return _segments(hypothesis, audio), notes

    def phrase_problem(self, loaded: LoadedModel, phrase: str) -> str:
        return parakeet_boost.phrase_problem(loaded, phrase)

    def boosting(self, loaded: LoadedModel, vocabulary: Vocabulary) -> AbstractContextManager[None]:
        return parakeet_boost.boosting(loaded, vocabulary)

    def live_decoder(self, loaded: LoadedModel, settings: LiveSettings) -> LiveDecoder:
        key = f"live decoder {settings}"  # one per loaded model and settings, for every session
        if key not in loaded.cache:
            loaded.cache[key] = ParakeetLive(loaded, settings)
        decoder: LiveDecoder = loaded.cache[key]
        return decoder

    def first_run(self, loaded: LoadedModel) -> None:
        _run(loaded, silence(1.0), ParakeetOptions(), local=False)

    def transcribe_batch(
        self,
        loaded: LoadedModel,
        audios: Sequence[DecodedAudio],
        options: ParakeetOptions,
        progress: Progress,
    ) -> list[Transcribed]:
        """Long recordings alone (`transcribe`, with its long-audio rule); the others in groups, one
        model call per group (`batch_groups`). A group that runs out of memory anyway is done one by
        one instead, and their notes say so."""
        results: dict[int, Transcribed] = {}
        alone, groups = batch_groups(loaded, [audio.duration for audio in audios], options)
        for index in alone:
            loaded.lock.yield_to_first()
            results[index] = self.transcribe(loaded, audios[index], options, progress)
        for group in groups:
            loaded.lock.yield_to_first()  # a live step waiting for the model goes between two groups
            members = [audios[index] for index in group]
            ran_out: memory.OutOfMemoryKind = ""
            try:
                hypotheses = _run_together(loaded, members) if len(group) > 1 else None
            except Exception as error:
                ran_out = memory.out_of_memory(error)
                if not ran_out:
                    raise
                hypotheses = None
            if hypotheses is None:
                if ran_out:  # here, not in the `except` block, so that the failed batch's tensors are freed
                    memory.release_memory(loaded.device)
                for index in group:
                    segments, notes = self.transcribe(loaded, audios[index], options, progress)
                    if ran_out:
                        notes = [*notes, f"{memory.ran_out(ran_out)} with {len(group)} at once; done alone"]
                    results[index] = (segments, notes)
                continue
            note = f"full attention, {len(group)} recordings at once"
            for index, hypothesis in zip(group, hypotheses, strict=True):
                results[index] = (_segments(hypothesis, audios[index]), [note])
        return [results[index] for index in range(len(audios))]


def _segments(hypothesis: Any, audio: DecodedAudio) -> list[Segment]:
    segments = segments_of(hypothesis)
    if not segments and str(hypothesis.text).strip():
        segments = [Segment(0.0, round(audio.duration, 3), str(hypothesis.text).strip())]
    return segments


def segments_of(hypothesis: Any, offset: float = 0.0) -> list[Segment]:
    """Segments with their words, from a hypothesis NeMo made with timestamps=True."""
    stamps = getattr(hypothesis, "timestamp", None) or {}
    words = [
        Word(str(w["word"]), round(float(w["start"]) + offset, 3), round(float(w["end"]) + offset, 3))
        for w in stamps.get("word", [])
    ]
    segments: list[Segment] = []
    for raw in stamps.get("segment", []):
        start, end = float(raw["start"]) + offset, float(raw["end"]) + offset
        inside = tuple(w for w in words if start - 1e-3 <= w.start and w.end <= end + 1e-3)
        segments.append(Segment(round(start, 3), round(end, 3), str(raw["segment"]).strip(), inside))
    if not segments and words:
        segments.append(Segment(words[0].start, words[-1].end, " ".join(w.text for w in words), tuple(words)))
    return segments


def score_bytes(loaded: LoadedModel) -> tuple[int, int]:
    """Bytes of one attention-score element and of one softmax element in Parakeet's encoder."""
    import torch  # with the model, not before

    amp = loaded.precision.autocast or loaded.precision.encoder_autocast
    if loaded.device == "cuda" and amp in ("bfloat16", "float16"):
        # NeMo's attention turns float16 autocast into bfloat16 where the GPU has it natively (see
        # precision.native_bf16_in_nemo_attention), else float32.
        low = 2 if amp == "bfloat16" or torch.cuda.is_bf16_supported(including_emulation=False) else 4
        return low, 4  # autocast runs softmax in float32
    weights = int(next(loaded.model.parameters()).dtype.itemsize)
    return weights, weights


def attention_plan(loaded: LoadedModel, duration: float, options: ParakeetOptions) -> memory.AttentionPlan:
    """Full or local attention for this recording, from its length and the memory free right now."""
    score, softmax = score_bytes(loaded)
    dims = memory.attention_dims(loaded.model, dtype_bytes=score, softmax_bytes=softmax)
    return memory.choose_attention(
        duration,
        memory.free_memory_bytes(loaded.device),
        dims,
        full_attention_max_minutes=options.full_attention_max_minutes,
        memory_fraction=options.attention_memory_fraction,
        device=str(loaded.device),
    )


def _run(loaded: LoadedModel, audio: DecodedAudio, options: ParakeetOptions, local: bool) -> Any:
    import torch  # with the model, not before

    model = loaded.model
    with (
        local_attention(loaded, local),
        torch.inference_mode(),
        autocast_context(loaded.device, loaded.precision.autocast),
    ):
        hypotheses = model.transcribe([audio.samples], batch_size=1, timestamps=True, verbose=False)
    return hypotheses[0] if isinstance(hypotheses, list) else hypotheses[0][0]


def _run_together(loaded: LoadedModel, audios: Sequence[DecodedAudio]) -> list[Any]:
    """One model.transcribe call over several recordings (full attention, padded to the longest)."""
    import torch  # with the model, not before

    with torch.inference_mode(), autocast_context(loaded.device, loaded.precision.autocast):
        hypotheses = loaded.model.transcribe(
            [audio.samples for audio in audios], batch_size=len(audios), timestamps=True, verbose=False
        )
    return list(hypotheses if isinstance(hypotheses, list) else hypotheses[0])


def batch_groups(
    loaded: LoadedModel, durations: Sequence[float], options: ParakeetOptions
) -> tuple[list[int], list[list[int]]]:
    """(recordings to run alone, groups to run together), as indexes into `durations`.

    Alone: those the long-audio rule gives local attention. Together, longest first: as many as fit,
    that is, at most `parakeet_batch_size` ("auto": AUTO_BATCH) and only while full attention's
    estimate for the group (padded to its longest) fits in the memory free now.
    """
    most = AUTO_BATCH if options.parakeet_batch_size == "auto" else int(options.parakeet_batch_size)
    score, softmax = score_bytes(loaded)
    dims = memory.attention_dims(loaded.model, dtype_bytes=score, softmax_bytes=softmax)
    free = memory.free_memory_bytes(loaded.device)

    def fits(longest: float, count: int) -> bool:
        plan = memory.choose_attention(
            longest,
            free,
            dims,
            full_attention_max_minutes=options.full_attention_max_minutes,
            memory_fraction=options.attention_memory_fraction,
            batch=count,
        )
        return plan.mode == "full"

    alone: list[int] = []
    groups: list[list[int]] = []
    for index in sorted(range(len(durations)), key=lambda i: -durations[i]):
        if not fits(durations[index], 1):
            alone.append(index)
        elif groups and len(groups[-1]) < most and fits(durations[groups[-1][0]], len(groups[-1]) + 1):
            groups[-1].append(index)
        else:
            groups.append([index])
    return alone, groups


PARAKEET = register(Parakeet())
