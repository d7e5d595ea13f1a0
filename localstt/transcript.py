"""The result of one transcription, shared by the engine, the writers, the CLI and the UI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()


@dataclass
class Transcript:
    text: str
    segments: list[Segment]
    duration: float
    model_key: str
    revision: str
    timings: dict[str, float] = field(default_factory=dict)
    source_name: str = ""
    # How it was transcribed, when that is worth telling: e.g. which attention Parakeet used and why,
    # or that the GPU ran out of memory and what was done instead.
    notes: list[str] = field(default_factory=list)
    # The options it was made with (localstt/options.py, TranscribeOptions.used_by): the common ones
    # and those of the model's family, e.g. {"max_audio_minutes": 180.0, "parakeet_batch_size": 1}.
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def words(self) -> list[Word]:
        return [word for segment in self.segments for word in segment.words]

    def to_dict(self) -> dict[str, Any]:
        """The fields in order; "notes" and "options" only when there are any, so older readers see
        the same keys."""
        data = asdict(self)
        for optional in ("notes", "options"):
            if not data[optional]:
                del data[optional]
        return data
