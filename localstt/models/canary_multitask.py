"""Canary-1B-v2 (NeMo's attention encoder-decoder `EncDecMultiTaskModel`, `kind = "nemo-multitask"`):
one `.nemo` per export, 25 languages, translation to and from English.

Export: the repo's one top-level `.nemo`, unchanged. Load: read in place like Parakeet
(localstt/loading/), float32 weights. Its archive carries a second model, the CTC aligner that gives
the words their times (`timestamps_asr_model_*`, about 2.5 GB of the 6.4): NeMo would restore it
inside the model's constructor from an unpacked copy; here the constructor is told not to, and the
aligner is restored from the same archive, its weights mapped in place too.

It cannot hear which language is spoken: every job names it (`SpokenLanguage`), and the text's
language, which is the same for a transcription or another for a translation. Long audio is read in
windows of at most `canary_1b_window_seconds` (it was trained on up to 40 s) cut at quiet points,
many at once, rather than by NeMo's own chunking, which runs one recording at a time (batch size 1)
and would let a folder of short recordings run one by one. Word times come from the aligner for a
transcription; a translation's words do not line up with the audio, so it is timed per window.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from localstt.audio import DecodedAudio, silence, split_at_quiet_points
from localstt.languages import EUROPEAN_25, Languages
from localstt.loading.nemo_archive import UNPACKED_PATH_MARGIN, NemoLayout, plan_one_nemo
from localstt.loading.nemo_restore import load_nemo, restore_nested
from localstt.manifest import Manifest
from localstt.models.capabilities import Progress, SegmentsDone, SpokenLanguage, Transcribed, Transcriber
from localstt.models.family import LoadedModel, ModelFamily, register
from localstt.models.parakeet import segments_of
from localstt.precision import ModelMakeup, Precision, autocast_context
from localstt.spec import FamilyOptions, Limit, ModelSpec, setting
from localstt.transcript import Segment

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from localstt.hub import RemoteFile

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
ALIGNER = "timestamps_asr"  # the nested model's prefix: timestamps_asr_model_{config.yaml,weights.ckpt}
LANGUAGES_KEY = "spoken and written"  # LoadedModel.cache: the languages of the job under way
AUTO_WINDOWS = {"cuda": 64, "cpu": 4}  # windows "auto" runs at once
# English to each of the others and each of them to English (the model card's pairs).
PAIRS = tuple(
    (source, target)
    for source in EUROPEAN_25
    for target in EUROPEAN_25
    if source != target and "en" in (source, target)
)
NO_ALIGNER = "no word times: this export of the model has no timestamps aligner (export it again)"


@dataclass(frozen=True)
class CanaryMultitaskOptions(FamilyOptions):
    canary_1b_window_seconds: float = setting(
        40.0,
        Limit(
            0, False, 40, False, "a number of seconds above 0 and at most 40 (Canary-1B-v2 reads up to 40 s)"
        ),
    )
    # "auto": 64 windows at once on a GPU, 4 on the CPU; or a whole number.
    canary_1b_batch_size: int | str = setting(
        "auto", Limit(1, True, None, True, 'a whole number, 1 or more, or "auto"', words=("auto",))
    )


class CanaryMultitask(ModelFamily, Transcriber[CanaryMultitaskOptions], SpokenLanguage):
    kind: ClassVar[str] = "nemo-multitask"
    runtime_module: ClassVar[str] = "nemo.collections.asr"
    runtime_name: ClassVar[str] = "NeMo"
    makeup: ClassVar[ModelMakeup] = ModelMakeup("Canary-1B")
    options_type: ClassVar[type[FamilyOptions]] = CanaryMultitaskOptions
    loader_path_margin: ClassVar[int] = UNPACKED_PATH_MARGIN
    has_word_times: ClassVar[bool] = True

    def languages(self, spec: ModelSpec) -> Languages:
        return Languages(transcribes=EUROPEAN_25, detects=False, translations=PAIRS)

    def plan(self, api: HfApi, spec: ModelSpec) -> list[RemoteFile]:
        return plan_one_nemo(api, spec)

    def load(
        self, export_dir: Path, manifest: Manifest, device: str, precision: Precision
    ) -> tuple[Any, str]:
        def with_aligner(model: Any, layout: NemoLayout, folder: Path, fast: bool) -> None:
            aligner = restore_nested(layout, folder, fast, ALIGNER, device)
            if aligner is None:
                logger.warning("%s: %s", layout.path.name, NO_ALIGNER)
            # As NeMo's constructor sets it: an attribute, not a submodule (its weights are its own).
            object.__setattr__(model, "timestamps_asr_model", aligner)

        # NeMo's constructor would restore the aligner from an unpacked copy of the archive (2.5 GB
        # written on every load), and on the meta device leave its weights empty: with_aligner does it.
        return load_nemo(
            export_dir,
            manifest,
            device,
            "EncDecMultiTaskModel",
            config_changes={"restore_timestamps_model": False},
            nested=with_aligner,
        )

    @contextmanager
    def spoken(self, loaded: LoadedModel, language: str, written: str) -> Iterator[None]:
        loaded.cache[LANGUAGES_KEY] = (language, written or language)
        try:
            yield
        finally:
            loaded.cache.pop(LANGUAGES_KEY, None)

    def transcribe(
        self,
        loaded: LoadedModel,
        audio: DecodedAudio,
        options: CanaryMultitaskOptions,
        progress: Progress,
        segments_done: SegmentsDone | None = None,
    ) -> Transcribed:
        return self.transcribe_batch(loaded, [audio], options, progress)[0]

    def transcribe_batch(
        self,
        loaded: LoadedModel,
        audios: Sequence[DecodedAudio],
        options: CanaryMultitaskOptions,
        progress: Progress,
    ) -> list[Transcribed]:
        """The windows of every recording, longest first, `canary_1b_batch_size` at a time, each
        recording put back together in order."""
        language, written = loaded.cache.get(LANGUAGES_KEY, ("en", "en"))
        timed = language == written and loaded.model.timestamps_asr_model is not None
        windows = [
            (recording, start, end)
            for recording, audio in enumerate(audios)
            for start, end in split_at_quiet_points(
                audio.samples, SAMPLE_RATE, options.canary_1b_window_seconds
            )
        ]
        windows.sort(key=lambda window: window[1] - window[2])
        size = _windows_at_once(loaded, options)
        segments: list[list[Segment]] = [[] for _ in audios]
        for first in range(0, len(windows), size):
            loaded.lock.yield_to_first()  # a live step waiting for the model goes between two batches
            batch = windows[first : first + size]
            progress(
                0.1 + 0.85 * first / len(windows),
                f"window {first + 1}-{first + len(batch)} of {len(windows)}",
            )
            pieces = [audios[recording].samples[start:end] for recording, start, end in batch]
            hypotheses = _run(loaded, pieces, language, written, timed)
            for (recording, start, end), hypothesis in zip(batch, hypotheses, strict=True):
                segments[recording] += _window_segments(hypothesis, start, end, timed)
        notes = [] if timed or language != written else [NO_ALIGNER]
        if language != written:
            notes.append(f"translated from {language} into {written}: timed per window, not per word")
        return [(sorted(found, key=lambda s: s.start), list(notes)) for found in segments]

    def first_run(self, loaded: LoadedModel) -> None:
        _run(loaded, [silence(1.0).samples], "en", "en", False)


def _windows_at_once(loaded: LoadedModel, options: CanaryMultitaskOptions) -> int:
    if options.canary_1b_batch_size != "auto":
        return max(1, int(options.canary_1b_batch_size))
    return AUTO_WINDOWS["cuda" if loaded.device == "cuda" else "cpu"]


def _run(
    loaded: LoadedModel, pieces: list[np.ndarray], language: str, written: str, timed: bool
) -> list[Any]:
    """One model.transcribe call over `pieces` (windows of at most 40 s)."""
    import torch  # with the model, not before

    with torch.inference_mode(), autocast_context(loaded.device, loaded.precision.autocast):
        hypotheses = loaded.model.transcribe(
            list(pieces),
            batch_size=len(pieces),
            source_lang=language,
            target_lang=written,
            pnc="yes",
            timestamps=timed,
            verbose=False,
        )
    return list(hypotheses)


def _window_segments(hypothesis: Any, start: int, end: int, timed: bool) -> list[Segment]:
    offset = start / SAMPLE_RATE
    if timed and (found := segments_of(hypothesis, offset)):
        return found
    text = str(getattr(hypothesis, "text", hypothesis)).strip()
    return [Segment(round(offset, 3), round(end / SAMPLE_RATE, 3), text)] if text else []


CANARY_MULTITASK = register(CanaryMultitask())
