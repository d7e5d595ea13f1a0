"""Transcript writers (TXT, SRT, WebVTT, JSON) behind one interface, and the cue builder.

Cues (with the default line controls of localstt/subtitles.py; any other setting re-cuts them there):
at most ``max_lines`` lines of at most ``max_chars`` characters, broken at word
boundaries into lines of even length; at most ``max_duration`` seconds; at least 0.7 s where the
next cue leaves room; never overlapping; end > start. Times are whole milliseconds from the
start, so what is written is exactly what was checked. A segment too long for one cue is split
at words, timed by the word timestamps when the segment has them and otherwise by sharing the
segment's time out in proportion to character counts.

TXT: one paragraph per stretch of speech. Segments are joined with spaces, and a blank line
starts a new paragraph after a pause of 2 s or more, or once a paragraph passes 600 characters.
Lines are not hard-wrapped, so editors and word processors reflow them.

Speakers (a transcript made with speakers on): in TXT each speaker's turn is a paragraph that
starts "Name: "; an SRT cue starts with "Name: " (counted in its line length); a WebVTT cue is a
voice span, "<v Name>..."; JSON has the speaker of every word and segment, and the turns.
"""

from __future__ import annotations

import itertools
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from localstt.portability import safe_file_stem, write_new_file, write_temporary
from localstt.subtitles import (
    DEFAULT_LAYOUT,
    MIN_CUE_SECONDS,
    PAUSE_BREAK_S,
    Cue,
    CutCues,
    SubtitleLayout,
    recut_cues,
    spread,
    wrap_balanced,
)
from localstt.subtitles import greedy_lines as _greedy_lines
from localstt.transcript import Segment, Transcript, Word

__all__ = ["Cue", "SubtitleLayout", "wrap_balanced"]  # with the names defined here

PARAGRAPH_PAUSE_S = 2.0
PARAGRAPH_CHARS = 600


def build_cues(
    transcript: Transcript, max_chars: int = 42, max_lines: int = 2, max_duration: float = 7.0
) -> list[Cue]:
    """The transcript as readable subtitle cues, in time order (see the module docstring)."""
    return [cue for cue, _ in speaker_cues(transcript, max_chars, max_lines, max_duration, lead=False)]


def speaker_cues(
    transcript: Transcript, max_chars: int, max_lines: int, max_duration: float, lead: bool
) -> list[tuple[Cue, str]]:
    """`build_cues`, each cue with the name of its speaker ("" when none). With `lead`, a cue with a
    speaker starts with "Name: ", counted in its first line's length."""
    if max_chars < 1 or max_lines < 1 or max_duration <= 0:
        raise ValueError("max_chars, max_lines and max_duration must be positive")
    raw: list[tuple[Cue, str]] = []
    for segment in sorted(transcript.segments, key=lambda s: (s.start, s.end)):
        name = transcript.speaker_name(segment.speaker)
        prefix = (f"{name}:",) if lead and name else ()
        tokens = _tokens(segment, max_chars)
        groups = _group(tokens, max_chars, max_lines, max_duration, None, prefix)
        if len(groups) > 1:  # same number of cues with a more even share of the text
            target = math.ceil(sum(len(t.text) + 1 for t in tokens) / len(groups))
            even = _group(tokens, max_chars, max_lines, max_duration, target, prefix)
            groups = even if len(even) == len(groups) else groups
        for group in groups:
            texts = [*prefix, *(t.text for t in group)]
            lines = wrap_balanced(texts, max_chars, max_lines) or _greedy_lines(texts, max_chars)
            raw.append((Cue(_ms(group[0].start), _ms(group[-1].end), tuple(lines)), name))
    cues = _fix_timing([cue for cue, _ in raw], round(MIN_CUE_SECONDS * 1000), round(max_duration * 1000))
    names = [name for _, name in sorted(raw, key=lambda pair: (pair[0].start_ms, pair[0].end_ms))]
    return list(zip(cues, names, strict=True))


class SubtitleWriter(ABC):
    """Renders a Transcript as the text of one file type."""

    extension: ClassVar[str]

    @abstractmethod
    def render(self, transcript: Transcript) -> str: ...


@dataclass(frozen=True)
class TxtWriter(SubtitleWriter):
    extension: ClassVar[str] = "txt"

    def render(self, transcript: Transcript) -> str:
        paragraphs: list[list[str]] = []
        size, previous_end, previous_speaker = 0, 0.0, None
        for segment in transcript.segments:
            text = " ".join(segment.text.split())
            if not text:
                continue
            turn = transcript.has_speakers and (not paragraphs or segment.speaker != previous_speaker)
            if (
                turn
                or not paragraphs
                or segment.start - previous_end >= PARAGRAPH_PAUSE_S
                or size >= PARAGRAPH_CHARS
            ):
                paragraphs.append([])
                size = 0
                if turn and (name := transcript.speaker_name(segment.speaker)):
                    paragraphs[-1].append(f"{name}:")
            paragraphs[-1].append(text)
            size += len(text) + 1
            previous_end, previous_speaker = segment.end, segment.speaker
        body = "\n\n".join(" ".join(p) for p in paragraphs) if paragraphs else transcript.text
        body = body.strip()
        return body + "\n" if body else ""


@dataclass(frozen=True)
class SrtWriter(SubtitleWriter):
    extension: ClassVar[str] = "srt"
    layout: SubtitleLayout = DEFAULT_LAYOUT

    def render(self, transcript: Transcript) -> str:
        cues = layout_cues(transcript, self.layout, lead=True).cues
        return "\n".join(
            f"{number}\n{format_timestamp(cue.start_ms, ',')} --> "
            f"{format_timestamp(cue.end_ms, ',')}\n{cue.text.replace('-->', '->')}\n"
            for number, (cue, _) in enumerate(cues, start=1)
        )


@dataclass(frozen=True)
class VttWriter(SubtitleWriter):
    extension: ClassVar[str] = "vtt"
    layout: SubtitleLayout = DEFAULT_LAYOUT

    def render(self, transcript: Transcript) -> str:
        cut = layout_cues(transcript, self.layout, lead=False)
        cues = cut.cues
        blocks = [
            f"{format_timestamp(cue.start_ms, '.')} --> {format_timestamp(cue.end_ms, '.')}\n"
            + (f"<v {_vtt_escape(name)}>" if name else "")
            + _vtt_escape(cue.text)
            + "\n"
            for cue, name in cues
        ]
        note = [f"NOTE {_vtt_escape(cut.note)}\n"] if cut.note else []
        return "\n".join(["WEBVTT\n", *note, *blocks])


def layout_cues(transcript: Transcript, layout: SubtitleLayout, lead: bool) -> CutCues:
    """The cues under `layout`: the cue builder below with the defaults, else re-cut."""
    if layout.is_default:
        cues = speaker_cues(transcript, layout.max_chars, layout.max_lines, layout.max_duration, lead)
        return CutCues(cues)
    return recut_cues(transcript, layout, lead)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class JsonWriter(SubtitleWriter):
    """The whole Transcript, keys in the dataclasses' field order; read back by transcript_from_json."""

    extension: ClassVar[str] = "json"

    def render(self, transcript: Transcript) -> str:
        return json.dumps(transcript.to_dict(), ensure_ascii=False, indent=2, default=_plain) + "\n"


WRITERS: dict[str, SubtitleWriter] = {
    writer.extension: writer for writer in (TxtWriter(), SrtWriter(), VttWriter(), JsonWriter())
}


def writer_for(key: str, layout: SubtitleLayout = DEFAULT_LAYOUT) -> SubtitleWriter:
    """The writer of format `key` (one of WRITERS), its subtitles under `layout`."""
    writer = WRITERS[key]
    return replace(writer, layout=layout) if isinstance(writer, SrtWriter | VttWriter) else writer


def transcript_from_json(text: str) -> Transcript:
    """The Transcript that JsonWriter rendered as ``text``."""
    data: dict[str, Any] = json.loads(text)
    return Transcript.from_dict(data)


def format_timestamp(ms: int, separator: str) -> str:
    """``HH:MM:SS<separator>mmm``; hours grow past two digits when they must."""
    hours, rest = divmod(max(0, ms), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def write_outputs(
    transcript: Transcript,
    formats: Iterable[str],
    out_dir: Path,
    stem: str,
    layout: SubtitleLayout = DEFAULT_LAYOUT,
) -> list[Path]:
    """Write ``stem.<ext>`` in ``out_dir`` for each format (subtitles under `layout`); return the
    paths, in order.

    Each file is written to a temporary file and moved into place atomically. A different file
    already at the name is never replaced: the next free ``stem-1.<ext>``, ``stem-2.<ext>``...
    is used instead. A file with exactly the same content is left as it is and returned.

    The stem is made a valid name on every OS (portability.safe_file_stem): characters Windows
    forbids become "_", and a Windows device name gets "_" appended (``CON`` -> ``CON_.srt``), so
    the files can be copied to Windows. Where the file system has no hard links (FAT32, exFAT, some
    network shares) the file is created exclusively instead, which still never overwrites.
    """
    return publish_outputs(render_outputs(transcript, formats, layout), out_dir, stem)


def render_outputs(
    transcript: Transcript, formats: Iterable[str], layout: SubtitleLayout = DEFAULT_LAYOUT
) -> list[tuple[str, bytes]]:
    """Each format's extension and file content, in order, nothing written yet (ValueError for an
    unknown format)."""
    keys: list[str] = []
    for name in formats:
        key = name.strip().lower().lstrip(".")
        if key not in WRITERS:
            raise ValueError(f"Unknown output format {name!r}; choose from {', '.join(WRITERS)}.")
        if key not in keys:
            keys.append(key)
    return [(key, writer_for(key, layout).render(transcript).encode("utf-8")) for key in keys]


def publish_outputs(rendered: Iterable[tuple[str, bytes]], out_dir: Path, stem: str) -> list[Path]:
    """Write `render_outputs`' files as ``stem.<ext>`` in `out_dir`, as `write_outputs` says."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    safe_stem = safe_file_stem(stem)
    return [_write_new_file(out_dir, safe_stem, key, data) for key, data in rendered]


def _write_new_file(out_dir: Path, stem: str, extension: str, data: bytes) -> Path:
    temporary = write_temporary(out_dir / f"{stem}.{extension}", data)
    try:
        for number in itertools.count():
            target = out_dir / (f"{stem}.{extension}" if number == 0 else f"{stem}-{number}.{extension}")
            if target.exists():
                if target.is_file() and target.read_bytes() == data:
                    return target
                continue
            try:
                write_new_file(temporary, target, data)  # fails rather than replace a new arrival
            except FileExistsError:
                continue
            return target
        raise AssertionError("unreachable")
    finally:
        temporary.unlink(missing_ok=True)


def _tokens(segment: Segment, max_chars: int) -> list[Word]:
    """The segment's words with times; a word longer than a line is cut into line-sized parts."""
    if segment.words:
        words = [Word(" ".join(w.text.split()), w.start, w.end) for w in segment.words if w.text.strip()]
    else:
        words = spread(segment.text.split(), segment.start, segment.end)
    tokens: list[Word] = []
    for word in words:
        if len(word.text) <= max_chars:
            tokens.append(word)
        else:
            parts = [word.text[i : i + max_chars] for i in range(0, len(word.text), max_chars)]
            tokens.extend(spread(parts, word.start, word.end))
    return tokens


def _group(
    tokens: list[Word],
    max_chars: int,
    max_lines: int,
    max_duration: float,
    target: int | None,
    prefix: tuple[str, ...] = (),
) -> list[list[Word]]:
    """Tokens in cues; each cue's lines also hold `prefix` (the speaker's "Name:") before its words."""
    groups: list[list[Word]] = []
    for token in tokens:
        current = groups[-1] if groups else []
        if current:
            texts = [*prefix, *(t.text for t in current)]
            if (
                token.end - current[0].start > max_duration
                or token.start - current[-1].end >= PAUSE_BREAK_S
                or (target is not None and len(" ".join(texts)) >= target)
                or len(_greedy_lines([*texts, token.text], max_chars)) > max_lines
            ):
                current = []
        if not current:
            groups.append(current)
        current.append(token)
    return groups


def _fix_timing(cues: list[Cue], min_ms: int, max_ms: int) -> list[Cue]:
    """Clamp to max length, stretch towards min length where there is room, remove overlaps."""
    cues = sorted(cues, key=lambda c: (c.start_ms, c.end_ms))
    fixed: list[Cue] = []
    for index, cue in enumerate(cues):
        previous_end = fixed[-1].end_ms if fixed else 0
        start = max(cue.start_ms, previous_end)
        end = min(cue.end_ms, start + max_ms)
        if end - start < min_ms:
            following = cues[index + 1].start_ms if index + 1 < len(cues) else None
            end = max(end, start + min_ms if following is None else min(start + min_ms, following))
            start = max(previous_end, min(start, end - min_ms))
        fixed.append(Cue(start, max(end, start + 1), cue.lines))
    return fixed


def _plain(value: Any) -> Any:
    """numpy scalars (np.float32 timings and the like) as the Python numbers they hold."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
