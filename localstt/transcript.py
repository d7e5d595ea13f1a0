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

    @property
    def words(self) -> list[Word]:
        return [word for segment in self.segments for word in segment.words]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
