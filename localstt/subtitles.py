"""Subtitle line controls: how long a line, how many lines, how long a cue and how far apart cues are
(config.toml's [subtitles], the CLI's flags, the page and the library's downloads), and the cutter
that re-cuts cues from word timestamps when they differ from the defaults.

With the defaults (42 characters, 2 lines, 7 s, no gap) the writers keep the cue builder they have
always had (localstt/formats.py), so today's files stay exactly as they were. Any other setting
re-cuts every segment here:

* where a segment has word timestamps, at word boundaries, choosing among the cuts that fit the
  limits the ones after a sentence's end, a clause's punctuation or a pause; each cue starts at its
  first word and ends at its last (a short one is stretched into free time, up to 0.7 s);
* where it has none (a model that reads in windows), at sentence ends, cutting inside a sentence only
  when a sentence alone breaks the limits; times are shared out by characters, and `CutCues.note`
  says so.

A pause of 1.5 s or more always ends a cue; a cue never holds two segments (two speakers).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from localstt.errors import ConfigError
from localstt.transcript import Segment, Transcript, Word

MIN_CUE_SECONDS = 0.7
PAUSE_BREAK_S = 1.5  # a pause this long between words always ends a cue
INTERPOLATED_NOTE = (
    "Some stretches have no word timestamps: their cues were cut at sentence ends and their times "
    "shared out by characters, so they may run slightly ahead of or behind the speech."
)

# What a cut costs after a word (the cutter picks the cheapest set of cues that fits the limits).
CUE_COST = 6.0  # each cue: fewer, fuller cues where the cuts are equally good
CUT_COST = {"sentence": 0.0, "pause": 1.0, "clause": 3.0, "short pause": 4.0, "word": 10.0}
NO_WORDS_INSIDE_SENTENCE = 30.0  # a window without words is cut inside a sentence only when it must
SENTENCE_INSIDE = 8.0  # a cue that ends one sentence and starts the next ("...noon. Then we")
SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)\]]*$")
CLAUSE_END = re.compile(r"[,;:—–][\"'”’)\]]*$")


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    lines: tuple[str, ...]

    @property
    def start(self) -> float:
        return self.start_ms / 1000

    @property
    def end(self) -> float:
        return self.end_ms / 1000

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


# (key in config.toml and on the command line, the field, lowest, highest, whole number)
LIMITS: tuple[tuple[str, str, float, float, bool], ...] = (
    ("max_chars_per_line", "max_chars", 10, 200, True),
    ("max_lines_per_cue", "max_lines", 1, 6, True),
    ("max_cue_seconds", "max_duration", 1, 60, False),
    ("min_gap_seconds", "min_gap", 0, 2, False),
)
WHOLE = {name for _, name, _, _, whole in LIMITS if whole}


@dataclass(frozen=True)
class SubtitleLayout:
    """The line controls of SRT and WebVTT files."""

    max_chars: int = 42  # characters per line, the speaker's "Name: " counted
    max_lines: int = 2  # lines per cue
    max_duration: float = 7.0  # seconds a cue stays on screen, at most
    min_gap: float = 0.0  # seconds between one cue's end and the next one's start, at least

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_LAYOUT

    def problem(self) -> str | None:
        """What is wrong with these settings, in one sentence naming the setting, or None."""
        for key, name, low, high, whole in LIMITS:
            value = getattr(self, name)
            fits = isinstance(value, int | float) and not isinstance(value, bool)
            if not fits or not low <= value <= high or (whole and value != int(value)):
                kind = "a whole number" if whole else "a number of seconds"
                return f"{key} is {value!r}; use {kind} from {low:g} to {high:g}."
        return None

    def replace(self, **changes: Any) -> SubtitleLayout:
        """These settings with `changes` (field names; None leaves a field as it is), checked.

        Raises:
            ValueError: the one sentence of `problem`.
        """
        known = {f.name for f in fields(self)}
        values = {name: getattr(self, name) for name in known}
        values |= {name: value for name, value in changes.items() if value is not None and name in known}
        values = {  # 42.0 from a form is the whole number 42
            name: int(value) if isinstance(value, float) and value.is_integer() and name in WHOLE else value
            for name, value in values.items()
        }
        layout = SubtitleLayout(**values)
        if (problem := layout.problem()) is not None:
            raise ValueError(problem)
        return layout

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> SubtitleLayout:
        """config.toml's [subtitles] (`where` names the file).

        Raises:
            ConfigError: a value out of its range or of the wrong type, or a key that is not one.
        """
        keys = {key: name for key, name, *_ in LIMITS}
        for key in table:
            if key not in keys:
                raise ConfigError(f"[subtitles] in {where} has no setting {key!r}; use {', '.join(keys)}.")
        try:
            return cls().replace(**{keys[key]: value for key, value in table.items()})
        except (ValueError, TypeError) as error:
            raise ConfigError(f"[subtitles] {error} (in {where})") from None


DEFAULT_LAYOUT = SubtitleLayout()


@dataclass(frozen=True)
class CutCues:
    """Cues, each with its speaker's name ("" when none), and the note to show with them."""

    cues: list[tuple[Cue, str]]
    note: str = ""


def wrap_balanced(words: Sequence[str], max_chars: int, max_lines: int) -> list[str] | None:
    """``words`` in at most ``max_lines`` lines whose longest is as short as possible.

    None when they do not fit in ``max_lines`` lines of ``max_chars`` characters.
    """
    text = " ".join(words)
    if len(text) <= max_chars:
        return [text] if text else []
    narrowest = max(max(len(w) for w in words), math.ceil((len(text) - max_lines + 1) / max_lines))
    for width in range(narrowest, max_chars + 1):
        lines = greedy_lines(words, width)
        if len(lines) <= max_lines:
            return lines
    return None


def greedy_lines(words: Sequence[str], width: int) -> list[str]:
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def spread(texts: Sequence[str], start: float, end: float) -> list[Word]:
    """Share ``start``..``end`` among ``texts`` in proportion to their length (plus a space)."""
    total = sum(len(t) + 1 for t in texts)
    span, words, cursor = max(0.0, end - start), [], 0
    for text in texts:
        begin = start + span * cursor / total
        cursor += len(text) + 1
        words.append(Word(text, begin, start + span * cursor / total))
    return words


def timed_words(segment: Segment) -> list[Word] | None:
    """The segment's words when they still spell its text (an edit realigns them), else None."""
    words = [Word(" ".join(w.text.split()), w.start, w.end) for w in segment.words if w.text.strip()]
    if not words or " ".join(w.text for w in words).split() != segment.text.split():
        return None
    return words


def recut_cues(transcript: Transcript, layout: SubtitleLayout, lead: bool) -> CutCues:
    """The transcript's cues under `layout` (see the module docstring). With `lead`, a cue with a
    speaker starts with "Name:", counted in its first line."""
    if (problem := layout.problem()) is not None:
        raise ValueError(problem)
    raw: list[tuple[Cue, str]] = []
    interpolated = False
    for segment in sorted(transcript.segments, key=lambda s: (s.start, s.end)):
        name = transcript.speaker_name(segment.speaker)
        prefix = _lead(name, layout) if lead and name else ()
        # On one line, the first word shares it with the name.
        width = layout.max_chars - (len(prefix[0]) + 1 if prefix and layout.max_lines == 1 else 0)
        words = timed_words(segment)
        if words is None and segment.text.split():
            interpolated = True
        tokens = _split_long(words or spread(segment.text.split(), segment.start, segment.end), width)
        for group in _cut(tokens, prefix, layout, timed=words is not None):
            texts = [*prefix, *(t.text for t in group)]
            lines = wrap_balanced(texts, layout.max_chars, layout.max_lines) or greedy_lines(
                texts, layout.max_chars
            )
            raw.append((Cue(_ms(group[0].start), _ms(group[-1].end), tuple(lines)), name))
    raw.sort(key=lambda pair: (pair[0].start_ms, pair[0].end_ms))
    cues = _fit_times([cue for cue, _ in raw], layout)
    return CutCues(
        list(zip(cues, [name for _, name in raw], strict=True)), INTERPOLATED_NOTE if interpolated else ""
    )


def _lead(name: str, layout: SubtitleLayout) -> tuple[str]:
    """`name` and ":", shortened with "…" where it does not fit a line or, when a cue has one line
    only, where it would leave that line less than 7 characters for the words."""
    room = max(3, layout.max_chars - 8) if layout.max_lines == 1 else layout.max_chars - 1
    return (f"{name}:" if len(name) <= room else f"{name[: room - 1].rstrip()}…:",)


def _split_long(words: list[Word], width: int) -> list[Word]:
    """A word longer than `width` is cut into parts that fit, its time shared out among them."""
    tokens: list[Word] = []
    for word in words:
        if len(word.text) <= width:
            tokens.append(word)
        else:
            parts = [word.text[i : i + width] for i in range(0, len(word.text), width)]
            tokens.extend(spread(parts, word.start, word.end))
    return tokens


def _cut_cost(tokens: list[Word], index: int, timed: bool) -> float:
    """What a cut after `tokens[index]` costs (nothing after the last)."""
    if index == len(tokens) - 1:
        return 0.0
    text = tokens[index].text
    if SENTENCE_END.search(text):
        return CUT_COST["sentence"]
    if not timed:
        return NO_WORDS_INSIDE_SENTENCE + (0.0 if CLAUSE_END.search(text) else CUT_COST["word"])
    pause = tokens[index + 1].start - tokens[index].end
    if pause >= 0.5:
        return CUT_COST["pause"]
    if CLAUSE_END.search(text):
        return CUT_COST["clause"]
    return CUT_COST["short pause"] if pause >= 0.25 else CUT_COST["word"]


def _cut(
    tokens: list[Word], prefix: tuple[str, ...], layout: SubtitleLayout, timed: bool
) -> list[list[Word]]:
    """The tokens in cues: the cheapest cuts (dynamic programming) among those whose every cue fits
    the lines, the duration, and holds no long pause."""
    count = len(tokens)
    if not count:
        return []
    best = [math.inf] * (count + 1)  # best[i]: the cost of cutting tokens[:i]
    back = [0] * (count + 1)
    best[0] = 0.0
    for first in range(count):
        if best[first] == math.inf:
            continue
        texts, inside = list(prefix), 0.0
        for last in range(first, count):
            if last > first and (
                tokens[last].start - tokens[last - 1].end >= PAUSE_BREAK_S
                or tokens[last].end - tokens[first].start > layout.max_duration
            ):
                break
            texts.append(tokens[last].text)
            if last > first and wrap_balanced(texts, layout.max_chars, layout.max_lines) is None:
                break
            if last > first and SENTENCE_END.search(tokens[last - 1].text):
                inside += SENTENCE_INSIDE
            cost = best[first] + CUE_COST + inside + _cut_cost(tokens, last, timed)
            if cost < best[last + 1]:
                best[last + 1], back[last + 1] = cost, first
    groups: list[list[Word]] = []
    end = count
    while end > 0:
        groups.append(tokens[back[end] : end])
        end = back[end]
    return groups[::-1]


def _fit_times(cues: list[Cue], layout: SubtitleLayout) -> list[Cue]:
    """Each cue within its words: no overlap, `min_gap` between cues (taken from the earlier one's
    end), at most `max_duration`, a short one stretched towards 0.7 s only into free time."""
    gap = round(layout.min_gap * 1000)
    max_ms, min_ms = round(layout.max_duration * 1000), round(MIN_CUE_SECONDS * 1000)
    spans = [[cue.start_ms, min(cue.end_ms, cue.start_ms + max_ms)] for cue in cues]
    for index, span in enumerate(spans):
        following = spans[index + 1][0] if index + 1 < len(spans) else None
        if following is not None and span[1] + gap > following:
            span[1] = max(span[0] + 1, following - gap)
        if index and span[0] < spans[index - 1][1] + gap:
            span[0] = spans[index - 1][1] + gap
        if span[1] - span[0] < min_ms:
            room = span[0] + min_ms if following is None else min(span[0] + min_ms, following - gap)
            span[1] = max(span[1], room)
        span[1] = max(span[1], span[0] + 1)
    return [Cue(start, end, cue.lines) for (start, end), cue in zip(spans, cues, strict=True)]


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
