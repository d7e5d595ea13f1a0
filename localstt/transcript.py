"""The result of one transcription, shared by the engine, the writers, the CLI and the UI.

Speakers (when the transcript was made with `speakers` on, see localstt/speakers.py) are numbers
from 0 in order of first appearance; `Transcript.speaker_names[n]` is what speaker n is called
("Speaker 1" unless the user named them). `to_dict` writes the names, not the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    speaker: int | None = None  # None: no speakers asked for, or none could be given


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    speaker: int | None = None


@dataclass(frozen=True)
class SpeakerTurn:
    """One stretch of time (s) in which `speaker` talks, as the diarizer heard it."""

    start: float
    end: float
    speaker: int


def speaker_label(index: int) -> str:
    """The default name of the speaker who appears `index`-th (from 0): "Speaker 1", ..."""
    return f"Speaker {index + 1}"


def display_names(count: int, names: Sequence[str]) -> list[str]:
    """The names of `count` speakers: the n-th (in order of first appearance) takes `names[n]`; a
    blank or missing name is "Speaker n+1"; names beyond the speakers are ignored (as noScribe)."""
    given = [name.strip() for name in names]
    return [given[i] if i < len(given) and given[i] else speaker_label(i) for i in range(count)]


@dataclass
class Transcript:
    text: str
    segments: list[Segment]
    duration: float
    model_key: str
    revision: str
    timings: dict[str, float] = field(default_factory=dict)
    source_name: str = ""
    # How it was transcribed, when that is worth telling: e.g. which attention the encoder used and why,
    # or that the GPU ran out of memory and what was done instead.
    notes: list[str] = field(default_factory=list)
    # The options it was made with (localstt/options.py, TranscribeOptions.used_by): the common ones
    # and those of the model's family, e.g. {"max_audio_minutes": 180.0, "parakeet_batch_size": 1}.
    options: dict[str, Any] = field(default_factory=dict)
    # With speakers: the diarizer's turns, and the name of each speaker number.
    speaker_turns: list[SpeakerTurn] = field(default_factory=list)
    speaker_names: list[str] = field(default_factory=list)
    # Its spoken language (localstt/languages.py): the one given, the model's only one, or "auto"
    # where the model heard it without saying which; and, for a translation, the text's language.
    language: str = ""
    translated_to: str = ""

    @property
    def words(self) -> list[Word]:
        return [word for segment in self.segments for word in segment.words]

    @property
    def has_speakers(self) -> bool:
        return bool(self.speaker_names)

    def speaker_name(self, speaker: int | None) -> str:
        """What `speaker` is called here ("" for None)."""
        if speaker is None:
            return ""
        if 0 <= speaker < len(self.speaker_names):
            return self.speaker_names[speaker]
        return speaker_label(speaker)

    def to_dict(self) -> dict[str, Any]:
        """The fields in order; "notes", "options" and the speaker fields only when there are any,
        so older readers see the same keys. Speakers are written by name."""
        data: dict[str, Any] = {
            "text": self.text,
            "segments": [self._segment_dict(segment) for segment in self.segments],
            "duration": self.duration,
            "model_key": self.model_key,
            "revision": self.revision,
            "timings": dict(self.timings),
            "source_name": self.source_name,
        }
        if self.language:
            data["language"] = self.language
        if self.translated_to:
            data["translated_to"] = self.translated_to
        if self.notes:
            data["notes"] = list(self.notes)
        if self.options:
            data["options"] = dict(self.options)
        if self.has_speakers:
            data["speakers"] = list(self.speaker_names)
            data["speaker_turns"] = [
                {"start": turn.start, "end": turn.end, "speaker": self.speaker_name(turn.speaker)}
                for turn in self.speaker_turns
            ]
        return data

    def _segment_dict(self, segment: Segment) -> dict[str, Any]:
        words = [
            self._named({"text": w.text, "start": w.start, "end": w.end}, w.speaker) for w in segment.words
        ]
        fields = {"start": segment.start, "end": segment.end, "text": segment.text, "words": words}
        return self._named(fields, segment.speaker)

    def _named(self, fields: dict[str, Any], speaker: int | None) -> dict[str, Any]:
        """`fields`, with the speaker's name last when there is one."""
        return fields if speaker is None else {**fields, "speaker": self.speaker_name(speaker)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        """The Transcript that `to_dict` gave `data` (speaker names mapped back to their numbers)."""
        names: list[str] = list(data.get("speakers", ()))

        def number(name: str | None) -> int | None:
            return None if name is None else names.index(name)

        segments = [
            Segment(
                s["start"],
                s["end"],
                s["text"],
                tuple(
                    Word(w["text"], w["start"], w["end"], number(w.get("speaker")))
                    for w in s.get("words", ())
                ),
                number(s.get("speaker")),
            )
            for s in data["segments"]
        ]
        turns = [
            SpeakerTurn(t["start"], t["end"], names.index(t["speaker"]))
            for t in data.get("speaker_turns", ())
        ]
        plain = {k: v for k, v in data.items() if k not in ("segments", "speakers", "speaker_turns")}
        return cls(**plain, segments=segments, speaker_turns=turns, speaker_names=names)
