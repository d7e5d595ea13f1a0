"""What a model family is: the one place that knows how models of one `kind` are exported, loaded and
run. The store, the export, the engine and the app ask the family; none of them switches on `kind`.

Adding a family is one module in this package that subclasses `ModelFamily`, registers an instance
(`register`) and is imported by `localstt/models/__init__.py`; config.toml then names its `kind`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from localstt.errors import ConfigError
from localstt.options import FamilyOptions, TranscribeOptions, settings_of
from localstt.precision import ModelMakeup

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from localstt.audio import DecodedAudio
    from localstt.config import ModelSpec
    from localstt.hub import RemoteFile
    from localstt.manifest import Manifest
    from localstt.precision import Precision
    from localstt.store import LoadedModel
    from localstt.transcript import Segment, SpeakerTurn

Progress = Callable[[float, str], None]
# Called with segments as soon as they are final, in order (the API streams them); a family that
# only has them all at the end may leave it uncalled: the engine hands on whatever was not handed.
SegmentsDone = Callable[[list["Segment"]], None]


class ModelFamily(ABC):
    """How models of one `kind` are exported, loaded and run. Stateless: one instance per family."""

    kind: ClassVar[str]  # config.toml's `kind = "..."` and the manifest's
    makeup: ClassVar[ModelMakeup]  # what the precision choice needs to know (localstt/precision.py)
    options_type: ClassVar[type[FamilyOptions]] = FamilyOptions
    answers_questions: ClassVar[bool] = False  # has a language model to ask about a transcript
    # A transcription model (listed in the app, the API and the CLI's --model), or a diarizer that
    # says who spoke (`diarize`): it is loaded beside the transcription model, never instead of it.
    transcribes: ClassVar[bool] = True
    diarizes: ClassVar[bool] = False
    has_word_times: ClassVar[bool] = False  # its segments carry timed words
    # What its load imports first (e.g. "nemo.collections.asr", ~10 s on a CPU): the store imports it
    # as a stage of the load of its own, so that the status can say so ("importing NeMo").
    runtime_module: ClassVar[str] = ""
    runtime_name: ClassVar[str] = ""
    # Longest path the loader writes inside an export beyond the exported files (the export refuses
    # paths Windows cannot open before downloading anything).
    loader_path_margin: ClassVar[int] = 0

    def check_spec(self, spec: ModelSpec) -> str | None:
        """What config.toml's table for this model lacks for this family (one sentence), or None."""
        return None

    # The export (localstt/export.py)

    @abstractmethod
    def plan(self, api: HfApi, spec: ModelSpec) -> list[RemoteFile]:
        """The hub files at the pinned commit(s) that make up the export, each with its place in it.
        Raises HubError when the repo does not hold what this family needs."""

    def check_downloaded(self, staging: Path, spec: ModelSpec, destination: str) -> None:
        """Called after each file lands in the staging folder, to stop early when it shows the
        export cannot work. Raises HubError."""
        return None

    def check_staged(self, staging: Path, spec: ModelSpec) -> None:
        """Called once every file is in the staging folder. Raises HubError."""
        return None

    # The store (localstt/store.py)

    @abstractmethod
    def load(
        self, export_dir: Path, manifest: Manifest, device: str, precision: Precision
    ) -> tuple[Any, str]:
        """(the model in eval mode on `device` in `precision`, how its weights were read), from a
        verified export. Raises LoadError."""

    # The engine (localstt/engine.py)

    @abstractmethod
    def transcribe(
        self,
        loaded: LoadedModel,
        audio: DecodedAudio,
        options: Any,
        progress: Progress,
        segments_done: SegmentsDone | None = None,
    ) -> tuple[list[Segment], list[str]]:
        """(segments, notes on how it was done) for one recording. `options` is an `options_type`.
        Called with `loaded.lock` held."""

    def first_run(self, loaded: LoadedModel) -> None:
        """Run the model once on a second of quiet, so that what only a first run costs (weights paged
        in from a mapped file, kernels chosen, the decoder's CUDA graphs captured) is paid by the app's
        background warm-up instead of the first job. Called with `loaded.lock` held; by default nothing."""
        return None

    def transcribe_batch(
        self, loaded: LoadedModel, audios: Sequence[DecodedAudio], options: Any, progress: Progress
    ) -> list[tuple[list[Segment], list[str]]]:
        """`transcribe` of each recording, in the order given; a family that can run several at once
        (Parakeet) does so. Called with `loaded.lock` held (localstt/batch.py)."""
        return [self.transcribe(loaded, audio, options, progress) for audio in audios]

    def diarize(self, loaded: LoadedModel, audio: DecodedAudio, progress: Progress) -> list[SpeakerTurn]:
        """Who speaks when in one recording, speakers numbered in order of first appearance. Only
        called for a family with `diarizes`, with `loaded.lock` held."""
        raise NotImplementedError(f"{type(self).__name__} tells no speakers apart")

    def ask(self, loaded: LoadedModel, transcript_text: str, question: str, max_new_tokens: int) -> str:
        """The language model's reply (with any <think> part) to `question` about a transcript.
        Only called for a family with `answers_questions` (the engine refuses the others)."""
        raise NotImplementedError(f"{type(self).__name__} answers no questions")


_families: dict[str, ModelFamily] = {}


def register(family: ModelFamily) -> ModelFamily:
    """Make `family` the one for its kind; its option names must not clash with another family's."""
    taken = set(settings_of(TranscribeOptions))
    for other in _families.values():
        if other.kind != family.kind:
            taken |= {f.name for f in dataclasses.fields(other.options_type)}
    if clash := taken & {f.name for f in dataclasses.fields(family.options_type)}:
        raise ValueError(f"{type(family).__name__}: option names already taken: {', '.join(sorted(clash))}")
    _families[family.kind] = family
    return family


def unregister(kind: str) -> None:
    _families.pop(kind, None)


def families() -> tuple[ModelFamily, ...]:
    return tuple(_families.values())


def family_for(kind: str) -> ModelFamily:
    """The family of `kind`, or ConfigError naming the kinds there are."""
    try:
        return _families[kind]
    except KeyError:
        known = ", ".join(_families)
        raise ConfigError(f"model kind must be one of {known}, not {kind!r}") from None
