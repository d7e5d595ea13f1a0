"""Library: transcripts kept in one SQLite file (localstt/library/schema.py), listed newest first,
searched, opened as they are now (with their edits) and deleted for good.

Every operation opens its own short connection and writes in one short transaction, so threads and
processes share the file without holding it. A transcript keeps its segments (words inside), its
speakers and their names, its notes, options, model and pinned commit, the sha256 and length of its
recording, and the transcript as it was made (`original`). With keep_audio its recording is copied
into the audio folder beside the file, named by the transcript's uid.

A delete removes the rows, their search index entries and the recording, then `compact` leaves no
readable copy in the file: secure_delete zeroes freed pages, the index is merged (its deleted entries
dropped), the file vacuumed and the write-ahead log checkpointed and truncated.
"""

from __future__ import annotations

import contextlib
import html
import logging
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from localstt.errors import LibraryError
from localstt.formats import transcript_from_json
from localstt.library.records import (
    MARK_END,
    MARK_START,
    Entry,
    Hit,
    Kept,
    fold,
    gone,
    insert,
    load,
    match_expression,
    now,
    words_from_json,
)
from localstt.library.schema import connect, fts5_problem, open_database, retried, transaction
from localstt.library.settings import LibrarySettings
from localstt.portability import write_temporary
from localstt.transcript import Transcript

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Library:
    """The library at `settings.path`, created or migrated when it is opened.

    Raises (on opening):
        LibraryError: FTS5 is missing, or the file is damaged, not a library, or from a newer version.
    """

    def __init__(self, settings: LibrarySettings) -> None:
        self.settings = settings
        self.path = settings.path
        if (problem := fts5_problem()) is not None:
            raise LibraryError(problem)
        open_database(self.path).close()

    # Connections

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        connection = connect(self.path)
        try:
            yield connection
        finally:
            connection.close()

    def read(self, work: Callable[[sqlite3.Connection], T], doing: str) -> T:
        def attempt() -> T:
            with self.connection() as connection:
                return work(connection)

        return retried(attempt, doing)

    def write(self, work: Callable[[sqlite3.Connection], T], doing: str) -> T:
        """`work` in one write transaction (committed when it returns, rolled back if it raises)."""

        def attempt() -> T:
            with self.connection() as connection, transaction(connection):
                return work(connection)

        return retried(attempt, doing)

    # Keeping

    def add(self, transcript: Transcript, origin: str, sha256: str = "", audio: Path | None = None) -> int:
        """Keep `transcript` (made by `origin`); with `audio` and keep_audio, a copy of its recording.
        Returns its id. Committed (on the disk) when this returns."""
        uid = uuid.uuid4().hex
        kept_audio = self._copy_audio(audio, uid) if audio is not None and self.settings.keep_audio else None
        try:
            return self.write(
                lambda c: insert(c, transcript, uid, origin, sha256, now(), kept_audio),
                "keeping a transcript",
            )
        except BaseException:
            if kept_audio is not None:
                (self.settings.audio_dir / kept_audio).unlink(missing_ok=True)
            raise

    def _copy_audio(self, audio: Path, uid: str) -> str:
        name = f"{uid}{audio.suffix.lower()}"
        target = self.settings.audio_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = write_temporary(target, b"")
        try:
            shutil.copyfile(audio, temporary)
            temporary.replace(target)
        finally:
            temporary.unlink(missing_ok=True)
        return name

    # Reading

    def entries(self, limit: int = 500) -> list[Entry]:
        """The transcripts, newest first."""
        sql = """SELECT t.id, t.source_name, t.created_at, t.edited_at, t.duration, t.model_key, t.origin,
                        t.audio IS NOT NULL,
                        (SELECT text FROM segments WHERE transcript_id = t.id ORDER BY position LIMIT 1)
                 FROM transcripts t ORDER BY t.created_at DESC, t.id DESC LIMIT ?"""
        rows = self.read(lambda c: c.execute(sql, (limit,)).fetchall(), "listing the library")
        return [
            Entry(id_, source, created, edited, duration, model, origin, bool(audio), (first or "")[:120])
            for id_, source, created, edited, duration, model, origin, audio, first in rows
        ]

    def search(self, query: str, limit: int = 200) -> list[Hit]:
        """The segments whose text has every word of `query` (case and accents aside), newest
        transcript first, then in the order of the recording."""
        expression = match_expression(query)
        if not expression:
            return []
        sql = f"""SELECT s.transcript_id, t.source_name, t.created_at, s.position, s.start, s.text, s.words,
                         highlight(segments_fts, 0, '{MARK_START}', '{MARK_END}')
                  FROM segments_fts JOIN segments s ON s.id = segments_fts.rowid
                  JOIN transcripts t ON t.id = s.transcript_id
                  WHERE segments_fts MATCH ? ORDER BY t.created_at DESC, t.id DESC, s.position LIMIT ?"""
        rows = self.read(lambda c: c.execute(sql, (expression, limit)).fetchall(), "searching the library")
        terms = [fold(term.strip("*")) for term in query.split() if term.strip("*")]
        hits = []
        for transcript_id, source, created, position, start, text, words, marked in rows:
            at = next(
                (w.start for w in words_from_json(words) if any(t and t in fold(w.text) for t in terms)),
                start,
            )
            escaped = html.escape(marked).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")
            hits.append(Hit(transcript_id, source, created, position, at, text, escaped))
        return hits

    def get(self, transcript_id: int) -> Kept:
        """The transcript as it is now.

        Raises:
            LibraryError: it is not (or no longer) in the library.
        """
        return self.read(lambda c: load(c, transcript_id, self.settings.audio_dir), "opening a transcript")

    def original(self, transcript_id: int) -> Transcript:
        """The transcript as it was made, before any edit."""
        sql = "SELECT original FROM transcripts WHERE id = ?"
        row = self.read(lambda c: c.execute(sql, (transcript_id,)).fetchone(), "opening a transcript")
        if row is None:
            raise gone(transcript_id)
        return transcript_from_json(row[0])

    def count(self) -> int:
        return int(
            self.read(lambda c: c.execute("SELECT count(*) FROM transcripts").fetchone()[0], "counting")
        )

    def integrity(self) -> str:
        """SQLite's integrity check ("ok") and the search index's own."""

        def check(connection: sqlite3.Connection) -> str:
            result = connection.execute("PRAGMA integrity_check").fetchone()[0]
            connection.execute("INSERT INTO segments_fts (segments_fts) VALUES ('integrity-check')")
            return str(result)

        return self.read(check, "checking the library")

    # Deleting

    def delete(self, transcript_id: int) -> None:
        """Remove one transcript: its rows, its index entries, its recording; then `compact`."""
        self._delete("WHERE id = ?", (transcript_id,), "deleting a transcript")

    def delete_all(self) -> int:
        """Remove every transcript (see `delete`); returns how many there were."""
        return self._delete("", (), "emptying the library")

    def remove_older_than(self, days: float) -> int:
        """Remove the transcripts made more than `days` ago (see `delete`); returns how many."""
        cutoff = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="microseconds")
        return self._delete("WHERE created_at < ?", (cutoff,), "removing old transcripts")

    def _delete(self, where: str, parameters: tuple[Any, ...], doing: str) -> int:
        def work(connection: sqlite3.Connection) -> list[str | None]:
            rows = connection.execute(f"SELECT id, audio FROM transcripts {where}", parameters).fetchall()
            for transcript_id, _ in rows:
                connection.execute("DELETE FROM segments WHERE transcript_id = ?", (transcript_id,))
                connection.execute("DELETE FROM transcripts WHERE id = ?", (transcript_id,))
            return [audio for _, audio in rows]

        removed = self.write(work, doing)
        for name in removed:
            if name:
                (self.settings.audio_dir / name).unlink(missing_ok=True)
        if removed:
            self.compact()
        return len(removed)

    def compact(self) -> None:
        """Leave no readable copy of what was deleted: the index merged (its deleted entries dropped),
        the file vacuumed (secure_delete zeroes what is freed), the log checkpointed and truncated."""

        def work(connection: sqlite3.Connection) -> None:
            with transaction(connection):
                connection.execute("INSERT INTO segments_fts (segments_fts) VALUES ('optimize')")
            connection.execute("VACUUM")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        self.read(work, "compacting the library")

    def remove_stray_audio(self, older_than_s: float = 3600.0) -> int:
        """Delete recordings in the audio folder that no transcript names (a kill between the copy and
        the commit leaves one) and that are older than `older_than_s` (a younger one may be another
        process's, about to be committed); returns how many."""
        folder = self.settings.audio_dir
        if not folder.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        sql = "SELECT audio FROM transcripts WHERE audio IS NOT NULL"
        named = {row[0] for row in self.read(lambda c: c.execute(sql).fetchall(), "listing recordings")}
        stray = [
            p for p in folder.iterdir() if p.is_file() and p.name not in named and p.stat().st_mtime < cutoff
        ]
        for path in stray:
            path.unlink(missing_ok=True)
        return len(stray)
