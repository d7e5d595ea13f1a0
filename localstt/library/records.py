"""A kept transcript's rows: what the library stores of it and how it comes back (`insert`, `load`),
the shapes the library answers in (Entry, Hit, Kept), and the text helpers its search uses."""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from localstt.errors import LibraryError
from localstt.formats import transcript_from_json
from localstt.transcript import Segment, Transcript, Word

MARK_START, MARK_END = "\x01", "\x02"  # around a hit in the index's highlight; escaped, then <mark>


def now() -> str:
    """UTC, to the microsecond: strings that sort as the times do."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Entry:
    """One transcript in the list."""

    id: int
    source_name: str
    created_at: str
    edited_at: str | None
    duration: float
    model_key: str
    origin: str  # "page", "api", "live", "cli"
    has_audio: bool
    preview: str


@dataclass(frozen=True)
class Hit:
    """One segment that matches a search, and where in its recording."""

    transcript_id: int
    source_name: str
    created_at: str
    position: int
    at: float  # seconds into the recording: the first matching word's start, else the segment's
    text: str
    highlighted: str  # HTML: the text escaped, each hit in <mark>


@dataclass(frozen=True)
class Kept:
    """A kept transcript as it is now."""

    id: int
    uid: str
    transcript: Transcript  # with its edits
    sha256: str
    origin: str
    created_at: str
    edited_at: str | None
    audio: Path | None  # the recording, when it was kept
    edits: list[tuple[str, str]]  # (when, what), oldest first


def compact_json(transcript: Transcript) -> str:
    """The transcript as JsonWriter's JSON (transcript_from_json reads it back), without its spaces."""
    return json.dumps(transcript.to_dict(), ensure_ascii=False, separators=(",", ":"), default=float)


def words_json(words: tuple[Word, ...]) -> str:
    return json.dumps(
        [[w.text, float(w.start), float(w.end), w.speaker] for w in words],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def words_from_json(text: str) -> tuple[Word, ...]:
    return tuple(Word(t, s, e, k) for t, s, e, k in json.loads(text))


def fold(text: str) -> str:
    """`text` as the index compares it: without case or diacritics."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def match_expression(query: str) -> str:
    """The user's words as an FTS5 query that cannot be malformed: each a quoted string (all must
    match), "word*" a prefix."""
    terms = []
    for term in query.split():
        prefix = term.endswith("*")
        term = term.strip("*")
        if any(c.isalnum() for c in term):
            terms.append('"' + term.replace('"', '""') + '"' + ("*" if prefix else ""))
    return " ".join(terms)


class NotInLibrary(LibraryError):
    """The transcript asked for is not (or no longer) in the library."""


def gone(transcript_id: int) -> NotInLibrary:
    return NotInLibrary(
        f"Transcript {transcript_id} is not in the library (it may have been deleted); pick another."
    )


def insert(
    connection: sqlite3.Connection,
    transcript: Transcript,
    uid: str,
    origin: str,
    sha256: str,
    created_at: str,
    audio: str | None,
    edited_at: str | None = None,
) -> int:
    """One transcript's rows (the library's import uses it too); returns its id."""
    turns = [[t.start, t.end, t.speaker] for t in transcript.speaker_turns]
    cursor = connection.execute(
        """INSERT INTO transcripts (uid, source_name, sha256, duration, model_key, revision, options,
               notes, origin, created_at, speaker_names, speaker_turns, original, audio, edited_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            uid,
            transcript.source_name,
            sha256,
            float(transcript.duration),
            transcript.model_key,
            transcript.revision,
            json.dumps(transcript.options, ensure_ascii=False, default=str),
            json.dumps(transcript.notes, ensure_ascii=False),
            origin,
            created_at,
            json.dumps(transcript.speaker_names, ensure_ascii=False),
            json.dumps(turns),
            compact_json(transcript),
            audio,
            edited_at,
        ),
    )
    transcript_id = int(cursor.lastrowid or 0)
    connection.executemany(
        "INSERT INTO segments (transcript_id, position, start, end, text, speaker, words) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (transcript_id, position, float(s.start), float(s.end), s.text, s.speaker, words_json(s.words))
            for position, s in enumerate(transcript.segments)
        ],
    )
    return transcript_id


def load(connection: sqlite3.Connection, transcript_id: int, audio_dir: Path) -> Kept:
    """The transcript `transcript_id` as it is now (see Library.get)."""
    row = connection.execute(
        """SELECT uid, sha256, origin, created_at, edited_at, audio, speaker_names, original
           FROM transcripts WHERE id = ?""",
        (transcript_id,),
    ).fetchone()
    if row is None:
        raise gone(transcript_id)
    uid, sha256, origin, created_at, edited_at, audio, names, original = row
    made = transcript_from_json(original)
    segments = [
        Segment(start, end, text, words_from_json(words), speaker)
        for start, end, text, speaker, words in connection.execute(
            "SELECT start, end, text, speaker, words FROM segments WHERE transcript_id = ? ORDER BY position",
            (transcript_id,),
        )
    ]
    made.segments = segments
    made.speaker_names = json.loads(names)
    if edited_at is not None:
        made.text = " ".join(" ".join(s.text.split()) for s in segments if s.text.strip())
    edits = connection.execute(
        "SELECT made_at, what FROM edits WHERE transcript_id = ? ORDER BY id", (transcript_id,)
    ).fetchall()
    return Kept(
        transcript_id,
        uid,
        made,
        sha256,
        origin,
        created_at,
        edited_at,
        audio_dir / audio if audio else None,
        [(when, what) for when, what in edits],
    )
