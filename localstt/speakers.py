"""Who said what: a diarizer's speaker turns merged with a transcript's words.

Sortformer (``SortformerEncLabelModel.diarize``) gives, per file, lines "begin end speaker_k"
grouped by speaker. ``parse_turns`` turns them into time-ordered ``SpeakerTurn``s, with speakers
renumbered in order of first appearance (the first voice heard is speaker 0, shown as
"Speaker 1"). ``assign_speakers`` then gives each word the speaker whose turns overlap it most
(as WhisperX's ``assign_word_speakers`` does; with ``fill_nearest`` a word in a gap takes the
nearest turn) and splits segments where the speaker changes. A segment without words (e.g. a
Canary-Qwen window) gets its dominant speaker as a whole.

The transcript types are not changed here: each result is a ``SpeakerSegment``, a ``Segment``
with its speaker and its words' speakers alongside, so that folding an optional ``speaker``
field into ``Word`` and ``Segment`` later only needs ``SpeakerSegment.segment`` rebuilt with it.
Speakers are ints from 0; ``None`` means no speaker could be given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from localstt.transcript import Segment, Word

log = logging.getLogger(__name__)

__all__ = [
    "SpeakerSegment",
    "SpeakerTurn",
    "assign_speakers",
    "dominant_speaker",
    "parse_names",
    "parse_turns",
    "speaker_label",
    "speaker_names",
    "speakers_in_order",
]


@dataclass(frozen=True)
class SpeakerTurn:
    """One stretch of time (s) in which ``speaker`` talks."""

    start: float
    end: float
    speaker: int


@dataclass(frozen=True)
class SpeakerSegment:
    """A segment of one speaker (``None``: none known), and the speaker of each of its words
    (parallel to ``segment.words``)."""

    segment: Segment
    speaker: int | None
    word_speakers: tuple[int | None, ...] = ()


def parse_turns(lines: Sequence[str]) -> list[SpeakerTurn]:
    """Sortformer's "begin end speaker_k" lines as turns sorted by time, speakers renumbered in
    order of first appearance. Blank lines and empty turns (end <= begin) are skipped; a
    malformed line raises ``ValueError``."""
    raw: list[tuple[float, float, str]] = []
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise ValueError(f"not a 'begin end speaker' line: {line!r}")
        start, end = float(fields[0]), float(fields[1])
        if end <= start:
            log.debug("skipping empty speaker turn %r", line)
            continue
        raw.append((start, end, fields[2]))
    raw.sort(key=lambda t: (t[0], t[1], _label_order(t[2])))
    numbers: dict[str, int] = {}
    turns = []
    for start, end, label in raw:
        speaker = numbers.setdefault(label, len(numbers))
        turns.append(SpeakerTurn(start, end, speaker))
    return turns


def _label_order(label: str) -> tuple[int, str]:
    # "speaker_10" after "speaker_9", should two turns start and end at the same time
    head, _, tail = label.rpartition("_")
    return (int(tail), head) if tail.isdigit() else (-1, label)


def _overlaps(start: float, end: float, turns: Sequence[SpeakerTurn]) -> dict[int, float]:
    """Total overlap (s) of [start, end] with each speaker's turns, for speakers that overlap it."""
    total: dict[int, float] = {}
    for turn in turns:
        overlap = min(end, turn.end) - max(start, turn.start)
        if overlap > 0:
            total[turn.speaker] = total.get(turn.speaker, 0.0) + overlap
    return total


def dominant_speaker(
    start: float, end: float, turns: Sequence[SpeakerTurn], fill_nearest: bool = True
) -> int | None:
    """The speaker whose turns overlap [start, end] most (ties: the lower number). With no
    overlap: the speaker of the turn that contains a zero-length span, else (``fill_nearest``)
    of the nearest turn (ties: the earlier turn), else ``None``."""
    total = _overlaps(start, end, turns)
    if total:
        return min(total, key=lambda spk: (-total[spk], spk))
    if not turns:
        return None

    def distance(turn: SpeakerTurn) -> float:
        return max(0.0, turn.start - end, start - turn.end)

    nearest = min(turns, key=lambda turn: (distance(turn), turn.start, turn.speaker))
    if fill_nearest or (start == end and distance(nearest) == 0.0):
        return nearest.speaker
    return None


def assign_speakers(
    segments: Sequence[Segment], turns: Sequence[SpeakerTurn], fill_nearest: bool = True
) -> list[SpeakerSegment]:
    """Each word gets ``dominant_speaker`` of its span; segments split where the speaker changes.

    A split part's text is its words joined by spaces, its start and end those of its words; a
    segment that is not split is kept as it is. A word without a speaker (``fill_nearest=False``,
    in a gap) does not split a segment: it stays with the words before it (or, at the start,
    after it). A segment without words gets its dominant speaker as a whole.
    """
    out: list[SpeakerSegment] = []
    for segment in segments:
        if not segment.words:
            out.append(
                SpeakerSegment(segment, dominant_speaker(segment.start, segment.end, turns, fill_nearest))
            )
            continue
        word_speakers = [dominant_speaker(w.start, w.end, turns, fill_nearest) for w in segment.words]
        runs = _runs(segment.words, word_speakers)
        if len(runs) == 1:
            out.append(SpeakerSegment(segment, runs[0][0], tuple(word_speakers)))
            continue
        for speaker, words, speakers in runs:
            text = " ".join(w.text for w in words)
            part = Segment(start=words[0].start, end=words[-1].end, text=text, words=tuple(words))
            out.append(SpeakerSegment(part, speaker, tuple(speakers)))
    return out


def _runs(
    words: Sequence[Word], speakers: Sequence[int | None]
) -> list[tuple[int | None, list[Word], list[int | None]]]:
    """Consecutive words of one speaker: (speaker, words, their speakers), words without a
    speaker joined to the run they are in."""
    runs: list[tuple[int | None, list[Word], list[int | None]]] = []
    for word, speaker in zip(words, speakers, strict=True):
        if runs and (speaker is None or speaker == runs[-1][0]):
            runs[-1][1].append(word)
            runs[-1][2].append(speaker)
        elif runs and runs[-1][0] is None:
            # only speakerless words so far: they open the first speaker's run
            runs[-1] = (speaker, [*runs[-1][1], word], [*runs[-1][2], speaker])
        else:
            runs.append((speaker, [word], [speaker]))
    return runs


def speakers_in_order(segments: Sequence[SpeakerSegment]) -> list[int]:
    """The speakers of ``segments`` in order of first appearance."""
    order: list[int] = []
    for part in segments:
        for speaker in (part.speaker, *part.word_speakers):
            if speaker is not None and speaker not in order:
                order.append(speaker)
    return order


def parse_names(text: str) -> list[str]:
    """ "Ana, Ben" -> ["Ana", "Ben"]; an empty place ("Ana,,Cy") stays "" (a default name)."""
    return [] if not text.strip() else [name.strip() for name in text.split(",")]


def speaker_names(order_of_first_appearance: Sequence[int], names: Sequence[str]) -> dict[int, str]:
    """Display names: the n-th speaker to appear takes ``names[n]``, the others (and blank names)
    "Speaker n+1". Names beyond the speakers are ignored."""
    out: dict[int, str] = {}
    for i, speaker in enumerate(order_of_first_appearance):
        name = names[i].strip() if i < len(names) else ""
        out[speaker] = name or speaker_label(i)
    return out


def speaker_label(index: int) -> str:
    """The default name of the speaker who appears ``index``-th (from 0): "Speaker 1", ..."""
    return f"Speaker {index + 1}"
