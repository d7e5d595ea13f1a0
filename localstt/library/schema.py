"""The library's SQLite file: how every connection is set up, the schema version, and the migrations
that bring a file written by an earlier version up to this one.

Every connection runs in WAL mode (readers never wait for the writer) with a busy timeout, so the
page, the API, live sessions and a command line run in another process can write at once: a writer
waits its turn instead of failing. `secure_delete` overwrites what a delete frees.

A migration is a list of statements; those a file needs run in one transaction together with the new
`user_version`, so a kill during them leaves the file at the version it had. A file from a newer
version, a damaged file and a file that is not a library are refused with one sentence
(`LibraryError`).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from localstt.errors import LibraryError

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
RETRIES = 5  # a busy database after the busy timeout, tried again this many times
T = TypeVar("T")

TOKENIZER = "unicode61 remove_diacritics 2"  # "café" finds "cafe" and "Café"

# Version 1: transcripts, their segments (words inside as JSON), the search index, the edits.
V1 = (
    """CREATE TABLE transcripts (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        source_name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        duration REAL NOT NULL,
        model_key TEXT NOT NULL,
        revision TEXT NOT NULL,
        options TEXT NOT NULL,
        notes TEXT NOT NULL,
        origin TEXT NOT NULL,
        created_at TEXT NOT NULL,
        speaker_names TEXT NOT NULL,
        speaker_turns TEXT NOT NULL,
        original TEXT NOT NULL,
        audio TEXT
    )""",
    """CREATE TABLE segments (
        id INTEGER PRIMARY KEY,
        transcript_id INTEGER NOT NULL REFERENCES transcripts(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        start REAL NOT NULL,
        end REAL NOT NULL,
        text TEXT NOT NULL,
        speaker INTEGER,
        words TEXT NOT NULL,
        UNIQUE (transcript_id, position)
    )""",
    f"""CREATE VIRTUAL TABLE segments_fts USING fts5(
        text, content='segments', content_rowid='id', tokenize='{TOKENIZER}'
    )""",
    """CREATE TRIGGER segments_added AFTER INSERT ON segments BEGIN
        INSERT INTO segments_fts (rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER segments_removed AFTER DELETE ON segments BEGIN
        INSERT INTO segments_fts (segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    """CREATE TRIGGER segments_changed AFTER UPDATE OF text ON segments BEGIN
        INSERT INTO segments_fts (segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO segments_fts (rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TABLE edits (
        id INTEGER PRIMARY KEY,
        transcript_id INTEGER NOT NULL REFERENCES transcripts(id) ON DELETE CASCADE,
        made_at TEXT NOT NULL,
        what TEXT NOT NULL,
        before TEXT NOT NULL
    )""",
)

# Version 2: when a transcript was last edited (the list shows it), and the list's order as an index.
V2 = (
    "ALTER TABLE transcripts ADD COLUMN edited_at TEXT",
    "CREATE INDEX transcripts_newest ON transcripts (created_at DESC, id DESC)",
    "CREATE INDEX edits_of_transcript ON edits (transcript_id, id)",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (V1, V2)
SCHEMA_VERSION = len(MIGRATIONS)


def fts5_problem() -> str | None:
    """One sentence when this Python's SQLite cannot search the way the library needs (FTS5 with
    remove_diacritics), else None."""
    try:
        with contextlib.closing(sqlite3.connect(":memory:")) as probe:
            probe.execute(f"CREATE VIRTUAL TABLE probe USING fts5(text, tokenize='{TOKENIZER}')")
    except sqlite3.Error:
        return (
            f"This Python's SQLite ({sqlite3.sqlite_version}) has no full-text search (FTS5 with "
            "remove_diacritics), which the library needs; use a Python whose SQLite has it (3.27 or "
            "later, built with FTS5), or set enabled = false under [library] in config.toml."
        )
    return None


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the library at `path`, set up for sharing: autocommit (transactions are
    explicit, see `transaction`), WAL, a busy timeout, foreign keys, secure delete."""
    connection = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA secure_delete = ON")
        connection.execute("PRAGMA synchronous = FULL")  # a commit is on the disk when it returns
    except sqlite3.Error:
        connection.close()
        raise
    return connection


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: the write lock taken at the start (BEGIN IMMEDIATE, waiting up to the
    busy timeout), committed at the end, rolled back on any error."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def retried(work: Callable[[], T], doing: str) -> T:
    """`work()`, tried again while SQLite says the database is busy (another process holding it past
    the busy timeout); then one sentence instead of "database is locked"."""
    for attempt in range(RETRIES):
        try:
            return work()
        except sqlite3.OperationalError as error:
            message = str(error).lower()
            if "locked" not in message and "busy" not in message:
                raise
            logger.info("the library is busy while %s (attempt %d): %s", doing, attempt + 1, error)
            time.sleep(0.2 * (attempt + 1))
    raise LibraryError(
        f"The library was busy for too long while {doing} (another program holds it); try again."
    )


def open_database(path: Path) -> sqlite3.Connection:
    """A connection to the library at `path`, created or migrated to SCHEMA_VERSION, checked.

    Raises:
        LibraryError: the file is damaged, is not a library, or is from a newer version.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = connect(path)
    except sqlite3.OperationalError as error:  # e.g. a folder it may not write to
        raise LibraryError(f"The library {path} cannot be opened ({error}); check the path.") from None
    except sqlite3.DatabaseError as error:  # not a database, or a damaged one
        raise LibraryError(damaged(path, error)) from None
    try:
        retried(lambda: _prepare(connection, path), "opening the library")
    except sqlite3.OperationalError as error:  # e.g. a folder it may not write to
        connection.close()
        raise LibraryError(f"The library {path} cannot be opened ({error}); check the path.") from None
    except sqlite3.DatabaseError as error:  # not a database, or a damaged one
        connection.close()
        raise LibraryError(damaged(path, error)) from None
    except BaseException:
        connection.close()
        raise
    return connection


def damaged(path: Path, error: Exception) -> str:
    return (
        f"The library {path} is damaged ({error}), so transcripts are not kept; move it aside (a new "
        "one is made at the next start), or restore it from a library export."
    )


def _prepare(connection: sqlite3.Connection, path: Path) -> None:
    check = connection.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise sqlite3.DatabaseError(check)
    connection.execute("PRAGMA journal_mode = WAL")
    migrate(connection, path)


def migrate(connection: sqlite3.Connection, path: Path) -> int:
    """Bring the file up to SCHEMA_VERSION in one transaction; returns the version it had.

    Raises:
        LibraryError: a newer version's file, or a file with tables that are not a library's.
    """
    with transaction(connection):
        found = int(connection.execute("PRAGMA user_version").fetchone()[0])
        if found > SCHEMA_VERSION:
            raise LibraryError(
                f"The library {path} was written by a newer version of this app (schema {found}; this "
                f"one reads up to {SCHEMA_VERSION}), so transcripts are not kept; update the app, or "
                "point [library] path in config.toml to another file."
            )
        tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if found == 0 and tables:
            raise LibraryError(
                f"{path} is an SQLite file but not a library of transcripts, so transcripts are not "
                "kept; point [library] path in config.toml to another file."
            )
        for version in range(found, SCHEMA_VERSION):
            for statement in MIGRATIONS[version]:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version + 1}")
    if found < SCHEMA_VERSION:
        logger.info("library %s: schema %d -> %d", path, found, SCHEMA_VERSION)
    return found
