"""Who said what: a diarizer's speaker turns merged with a transcript's words.

The diarizer family (localstt/models/) gives time-ordered ``SpeakerTurn``s, speakers numbered in
order of first appearance (the first voice heard is speaker 0, shown as "Speaker 1").
``assign_speakers`` gives each word the speaker whose turns overlap it most
(as WhisperX's ``assign_word_speakers`` does; with ``fill_nearest`` a word in a gap takes the
nearest turn) and splits segments where the speaker changes. A segment without words (a window of
a family without word times) gets its dominant speaker as a whole. ``label_speakers`` does both and
numbers the speakers in the order the transcript first shows them.

Speakers are ints from 0; ``None`` means no speaker could be given.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from localstt.transcript import Segment, SpeakerTurn, Word, display_names, speaker_label

log = logging.getLogger(__name__)

__all__ = [
    "SpeakerTurn",
    "assign_speakers",
    "dominant_speaker",
    "label_speakers",
    "parse_names",
    "display_names",
    "speaker_label",
    "speakers_in_order",
]


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
) -> list[Segment]:
    """Each word gets ``dominant_speaker`` of its span; segments split where the speaker changes.

    A split part's text is its words joined by spaces, its start and end those of its words; a
    segment that is not split keeps its text and times. A word without a speaker
    (``fill_nearest=False``, in a gap) does not split a segment: it stays with the words before it
    (or, at the start, after it). A segment without words gets its dominant speaker as a whole.
    """
    out: list[Segment] = []
    for segment in segments:
        if not segment.words:
            speaker = dominant_speaker(segment.start, segment.end, turns, fill_nearest)
            out.append(dataclasses.replace(segment, speaker=speaker))
            continue
        words = [
            dataclasses.replace(w, speaker=dominant_speaker(w.start, w.end, turns, fill_nearest))
            for w in segment.words
        ]
        runs = _runs(words)
        if len(runs) == 1:
            out.append(dataclasses.replace(segment, words=tuple(words), speaker=runs[0][0]))
            continue
        for speaker, part in runs:
            text = " ".join(w.text for w in part)
            out.append(Segment(part[0].start, part[-1].end, text, tuple(part), speaker))
    return out


def _runs(words: Sequence[Word]) -> list[tuple[int | None, list[Word]]]:
    """Consecutive words of one speaker: (speaker, words), words without a speaker joined to the
    run they are in."""
    runs: list[tuple[int | None, list[Word]]] = []
    for word in words:
        if runs and (word.speaker is None or word.speaker == runs[-1][0]):
            runs[-1][1].append(word)
        elif runs and runs[-1][0] is None:
            # only speakerless words so far: they open the first speaker's run
            runs[-1] = (word.speaker, [*runs[-1][1], word])
        else:
            runs.append((word.speaker, [word]))
    return runs


def speakers_in_order(segments: Sequence[Segment]) -> list[int]:
    """The speakers of ``segments`` (and of their words) in order of first appearance."""
    order: list[int] = []
    for segment in segments:
        for speaker in (segment.speaker, *(w.speaker for w in segment.words)):
            if speaker is not None and speaker not in order:
                order.append(speaker)
    return order


def label_speakers(
    segments: Sequence[Segment], turns: Sequence[SpeakerTurn], fill_nearest: bool = True
) -> tuple[list[Segment], list[SpeakerTurn], int]:
    """(segments with speakers, the turns, how many speakers), every speaker renumbered in the
    order the segments first show them (speakers heard only where no word is come after)."""
    assigned = assign_speakers(segments, turns, fill_nearest)
    order = speakers_in_order(assigned)
    order += [t.speaker for t in sorted(turns, key=lambda t: t.start) if t.speaker not in order]
    order = list(dict.fromkeys(order))
    new = {old: index for index, old in enumerate(order)}

    def renumber(speaker: int | None) -> int | None:
        return None if speaker is None else new[speaker]

    relabelled = [
        dataclasses.replace(
            s,
            speaker=renumber(s.speaker),
            words=tuple(dataclasses.replace(w, speaker=renumber(w.speaker)) for w in s.words),
        )
        for s in assigned
    ]
    return relabelled, [SpeakerTurn(t.start, t.end, new[t.speaker]) for t in turns], len(order)


def parse_names(text: str) -> list[str]:
    """ "Ana, Ben" -> ["Ana", "Ben"]; an empty place ("Ana,,Cy") stays "" (a default name)."""
    return [] if not text.strip() else [name.strip() for name in text.split(",")]
