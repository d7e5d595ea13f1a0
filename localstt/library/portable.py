"""The whole library as one file, and back: a backup, or a move to another machine.

The export is a zip: `library.sqlite3` (a compact copy made by SQLite itself, `VACUUM INTO`, so it is
consistent while others write), the kept recordings under `audio/`, and `manifest.json`. An import
adds every transcript the library does not have yet (by its uid, which an export keeps), with its
edits, its original and its recording; one from an earlier version is migrated first, one from a
newer version is refused.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import tempfile
import zipfile
from pathlib import Path

from localstt.errors import LibraryError
from localstt.library.database import Library
from localstt.library.records import now
from localstt.library.schema import SCHEMA_VERSION, open_database
from localstt.portability import write_temporary

FORMAT = "localstt-library"
DATABASE = "library.sqlite3"
MANIFEST = "manifest.json"
COLUMNS = (
    "uid, source_name, sha256, duration, model_key, revision, options, notes, origin, created_at, "
    "speaker_names, speaker_turns, original, audio, edited_at"
)


def export_library(library: Library, target: Path) -> int:
    """Write the whole library to `target` (a zip, replaced atomically); returns how many
    transcripts it holds."""
    with tempfile.TemporaryDirectory(prefix="localstt-export-") as scratch:
        copy = Path(scratch) / DATABASE
        library.read(lambda c: c.execute("VACUUM INTO ?", (str(copy),)), "exporting the library")
        with contextlib.closing(sqlite3.connect(str(copy))) as connection:
            count = connection.execute("SELECT count(*) FROM transcripts").fetchone()[0]
            audio = [
                row[0] for row in connection.execute("SELECT audio FROM transcripts WHERE audio IS NOT NULL")
            ]
        bundle = Path(scratch) / "library.zip"
        with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
            manifest = {
                "format": FORMAT,
                "schema": SCHEMA_VERSION,
                "transcripts": count,
                "exported_at": now(),
            }
            archive.writestr(MANIFEST, json.dumps(manifest, indent=2))
            archive.write(copy, DATABASE)
            for name in audio:
                path = library.settings.audio_dir / name
                if path.is_file():
                    archive.write(path, f"audio/{name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = write_temporary(target, b"")
        try:
            shutil.copyfile(bundle, temporary)
            temporary.replace(target)
        finally:
            temporary.unlink(missing_ok=True)
    return int(count)


def import_library(library: Library, source: Path) -> tuple[int, int]:
    """Add the transcripts of the export `source` that this library lacks; returns (added, already
    there).

    Raises:
        LibraryError: `source` is not a library export, is damaged, or is from a newer version.
    """
    not_export = f"{source.name} is not a library export; pick a file made by 'Export the library'."
    with tempfile.TemporaryDirectory(prefix="localstt-import-") as scratch:
        try:
            with zipfile.ZipFile(source) as archive:
                manifest = json.loads(archive.read(MANIFEST))
                if manifest.get("format") != FORMAT:
                    raise LibraryError(not_export)
                archive.extract(DATABASE, scratch)
                audio = {
                    Path(name).name: archive.extract(name, scratch)
                    for name in archive.namelist()
                    if name.startswith("audio/") and not name.endswith("/")
                }
        except (zipfile.BadZipFile, KeyError, ValueError, OSError):
            raise LibraryError(not_export) from None
        copy = Path(scratch) / DATABASE
        _check_and_migrate(copy, source)
        with contextlib.closing(sqlite3.connect(str(copy))) as connection:
            transcripts = connection.execute(f"SELECT id, {COLUMNS} FROM transcripts ORDER BY id").fetchall()
            segments = connection.execute(
                "SELECT transcript_id, position, start, end, text, speaker, words FROM segments"
            ).fetchall()
            edits = connection.execute(
                "SELECT transcript_id, made_at, what, before FROM edits ORDER BY id"
            ).fetchall()

        def work(connection: sqlite3.Connection) -> tuple[int, int]:
            have = {row[0] for row in connection.execute("SELECT uid FROM transcripts")}
            added, present = 0, 0
            for old_id, *values in transcripts:
                if values[0] in have:
                    present += 1
                    continue
                marks = ", ".join("?" * len(values))
                new_id = connection.execute(
                    f"INSERT INTO transcripts ({COLUMNS}) VALUES ({marks})", values
                ).lastrowid
                connection.executemany(
                    "INSERT INTO segments (transcript_id, position, start, end, text, speaker, words) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(new_id, *row[1:]) for row in segments if row[0] == old_id],
                )
                connection.executemany(
                    "INSERT INTO edits (transcript_id, made_at, what, before) VALUES (?, ?, ?, ?)",
                    [(new_id, *row[1:]) for row in edits if row[0] == old_id],
                )
                added += 1
            return added, present

        folder = library.settings.audio_dir
        for name, path in audio.items():  # first: a transcript never names a recording that is not there
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / name).exists():
                shutil.copyfile(path, folder / name)
        return library.write(work, "importing a library")


def _check_and_migrate(copy: Path, source: Path) -> None:
    """The export's database, checked and brought up to this version's schema.

    Raises:
        LibraryError: it is from a newer version, or damaged.
    """
    try:
        with contextlib.closing(sqlite3.connect(str(copy))) as connection:
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError:
        version = 0
    if version > SCHEMA_VERSION:
        raise LibraryError(
            f"{source.name} was exported by a newer version of this app (schema {version}, this one "
            f"reads up to {SCHEMA_VERSION}); update the app to import it."
        )
    try:
        open_database(copy).close()
    except LibraryError:
        raise LibraryError(f"{source.name} holds a damaged library; export it again.") from None
