"""The library (localstt/library/) on real SQLite files: kept transcripts listed newest first and found
by search, edited and undone with the original always recoverable, their files made from the edited
version, deleted for good, migrated from the first schema, exported and imported, removed by the
retention, and a damaged, foreign or newer file refused in one sentence."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import srt
import webvtt

from localstt.errors import LibraryError
from localstt.formats import writer_for
from localstt.library import editing, schema
from localstt.library.database import Library
from localstt.library.keeper import OFF, Keeper
from localstt.library.portable import export_library, import_library
from localstt.library.records import NotInLibrary
from localstt.library.settings import LibrarySettings
from localstt.subtitles import SubtitleLayout
from localstt.transcript import Segment, Transcript, Word


def timed(text: str, start: float, speaker: int | None = None) -> Segment:
    words, t = [], start
    for token in text.split():
        words.append(Word(token, round(t, 3), round(t + 0.3, 3), speaker))
        t += 0.4
    return Segment(start, words[-1].end, text, tuple(words), speaker)


def dialogue(name: str = "talk.wav", first: str = "Ana met Bo at the café in Zürich.") -> Transcript:
    segments = [
        timed(first, 0.5, 0),
        timed("They talked about the harbour project.", 4.0, 1),
        timed("Then Ana left for the station.", 8.0, 0),
    ]
    return Transcript(
        text=" ".join(s.text for s in segments),
        segments=segments,
        duration=11.0,
        model_key="tiny",
        revision="a" * 40,
        timings={"transcribe": 0.5},
        source_name=name,
        notes=["made in a test"],
        options={"max_audio_minutes": 180.0},
        speaker_names=["Speaker 1", "Speaker 2"],
    )


@pytest.fixture
def settings(tmp_path: Path) -> LibrarySettings:
    return LibrarySettings(path=tmp_path / "library.sqlite3")


@pytest.fixture
def library(settings: LibrarySettings) -> Library:
    return Library(settings)


def file_bytes(path: Path) -> bytes:
    """The library's file and its write-ahead log, as they are on the disk."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_kept_transcripts_are_listed_newest_first_and_come_back_as_they_were(settings, library):
    first = library.add(dialogue("one.wav"), "page", "1" * 64)
    second = library.add(dialogue("two.wav"), "api")
    reopened = Library(settings)  # another process, a restart: the same file
    assert [(e.id, e.source_name, e.origin) for e in reopened.entries()] == [
        (second, "two.wav", "api"),
        (first, "one.wav", "page"),
    ]
    kept = reopened.get(first)
    assert kept.transcript.to_dict() == dialogue("one.wav").to_dict()  # words, speakers, notes, options...
    assert (kept.sha256, kept.origin, kept.edited_at, kept.audio, kept.edits) == (
        "1" * 64,
        "page",
        None,
        None,
        [],
    )
    with pytest.raises(NotInLibrary, match="Transcript 99 is not in the library"):
        reopened.get(99)


def test_search_ignores_case_and_accents_marks_the_hits_and_says_where(library):
    cafe = library.add(dialogue("cafe.wav"), "page")
    other = library.add(dialogue("other.wav", "Nothing about coffee here at all."), "cli")
    hits = library.search("CAFE zurich")
    assert [(h.transcript_id, h.position) for h in hits] == [(cafe, 0)]
    assert hits[0].highlighted == "Ana met Bo at the <mark>café</mark> in <mark>Zürich</mark>."
    assert hits[0].at == dialogue().segments[0].words[5].start  # "café": the time in the recording
    assert {h.transcript_id for h in library.search("harbour")} == {cafe, other}  # newest first:
    assert [h.transcript_id for h in library.search("harbour")] == [other, cafe]
    assert library.search("coffee")[0].transcript_id == other and len(library.search("coffee")) == 1
    assert library.search("harb*")[0].highlighted.count("<mark>") == 1  # a prefix
    for odd in ['"', "AND OR NOT", "café)", "NEAR(", "-", "*", "'; DROP TABLE transcripts; --"]:
        library.search(odd)  # never a syntax error: every word is quoted
    assert library.count() == 2


def test_a_transcripts_text_is_escaped_in_the_highlight(library):
    number = library.add(dialogue("x.wav", "Use <b>bold</b> & fox."), "api")
    (hit,) = library.search("fox")
    assert hit.transcript_id == number
    assert hit.highlighted == "Use &lt;b&gt;bold&lt;/b&gt; &amp; <mark>fox</mark>."


def test_edits_reach_every_format_and_the_original_stays_recoverable(library):
    number = library.add(dialogue(), "page")
    edits = editing.edit_cells(library, number, [(0, "Ana met Bodil at the café in Zürich.", None)])
    assert edits == 1
    assert editing.rename_speaker(library, number, "Speaker 1", "Ana") == 2
    assert editing.replace_all(library, number, "harbour", "harbor") == 1
    kept = library.get(number)
    assert [what for _, what in kept.edits] == [
        "text of segment 1",
        "renamed Speaker 1 to Ana",
        "replaced 'harbour' with 'harbor' (1×)",
    ]
    edited = kept.transcript
    first = edited.segments[0]
    assert (
        first.text == "Ana met Bodil at the café in Zürich." and edited.speaker_name(first.speaker) == "Ana"
    )
    before = dialogue().segments[0].words
    assert first.words[2] == Word("Bodil", before[2].start, before[2].end, 0)  # the word it replaced
    assert [w for i, w in enumerate(first.words) if i != 2] == [w for i, w in enumerate(before) if i != 2]

    txt = writer_for("txt").render(edited)
    assert "Ana: Ana met Bodil at the café in Zürich." in txt and "harbor project" in txt
    cues = list(srt.parse(writer_for("srt").render(edited)))
    assert cues[0].content.replace("\n", " ") == "Ana: Ana met Bodil at the café in Zürich."
    vtt = list(webvtt.from_string(writer_for("vtt", SubtitleLayout(max_chars=20)).render(edited)))
    assert vtt[0].voice == "Ana" and "Bodil" in vtt[0].text
    assert "harbor" in " ".join(c.text for c in vtt)
    data = json.loads(writer_for("json").render(edited))
    assert data["segments"][0]["text"].startswith("Ana met Bodil") and data["speakers"] == [
        "Ana",
        "Speaker 2",
    ]
    assert data["segments"][1]["words"][-2]["text"] == "harbor"
    assert library.search("Bodil")[0].transcript_id == number and library.search("Bo") == []

    assert library.original(number).to_dict() == dialogue().to_dict()
    assert editing.undo(library, number) == "replaced 'harbour' with 'harbor' (1×)"
    assert "harbour" in library.get(number).transcript.text
    assert editing.restore_original(library, number)
    assert library.get(number).transcript.to_dict() == dialogue().to_dict()
    assert editing.undo(library, number) == "back to the original"  # itself undone
    undone = library.get(number).transcript
    assert undone.segments[0].text.startswith("Ana met Bodil") and undone.speaker_names[0] == "Ana"
    assert editing.undo(library, number) == "renamed Speaker 1 to Ana"
    assert editing.undo(library, number) == "text of segment 1"
    assert editing.undo(library, number) is None  # nothing left
    unedited = library.get(number)
    assert unedited.transcript.to_dict() == dialogue().to_dict() and unedited.edited_at is None


def test_a_speaker_cell_names_a_speaker_and_one_name_for_two_merges_them(library):
    number = library.add(dialogue(), "page")
    assert editing.edit_cells(library, number, [(1, "They talked about the harbour project.", "Cleo")]) == 1
    kept = library.get(number).transcript
    assert kept.speaker_names == ["Speaker 1", "Speaker 2", "Cleo"]
    assert {w.speaker for w in kept.segments[1].words} == {2}
    assert editing.rename_speaker(library, number, "Cleo", "Speaker 1") == 3  # two of theirs and this
    merged = library.get(number).transcript
    assert {merged.speaker_name(s.speaker) for s in merged.segments} == {"Speaker 1"}
    assert "Speaker 1: Ana met Bo" in writer_for("txt").render(merged)
    for bad, says in [("", "the new name is empty"), ("   ", "the new name is empty")]:
        with pytest.raises(LibraryError, match=says):
            editing.rename_speaker(library, number, "Speaker 1", bad)
    with pytest.raises(LibraryError, match="No speaker is called 'Nobody'"):
        editing.rename_speaker(library, number, "Nobody", "X")
    with pytest.raises(LibraryError, match="Segment 9 is not in this transcript"):
        editing.edit_cells(library, number, [(8, "text", None)])


def count(connection: sqlite3.Connection, rows: str) -> int:
    return int(connection.execute(f"SELECT count(*) FROM {rows}").fetchone()[0])


def test_delete_leaves_no_row_no_index_entry_no_recording_and_no_readable_copy(tmp_path: Path):
    settings = LibrarySettings(path=tmp_path / "library.sqlite3", keep_audio=True)
    keeper = Keeper(settings, tmp_path / "config.toml")
    assert keeper.library is not None
    library = keeper.library
    # Another process has the library open meanwhile (an idle reader), so its write-ahead log stays.
    other = sqlite3.connect(settings.path)
    try:
        assert count(other, "transcripts") == 0
        samples = np.sin(np.linspace(0, 2000, 16000 * 3)).astype(np.float32) * 0.3
        secret_text = "The zanzibarian codeword is quixotically hidden."
        assert keeper.keep(dialogue("secret.wav", secret_text), "live", samples=samples) == ""
        keep = library.add(dialogue("kept.wav"), "page")
        (secret,) = [e.id for e in library.entries() if e.source_name == "secret.wav"]
        audio = library.get(secret).audio
        assert audio is not None and sf.info(str(audio)).samplerate == 16000  # the recording, as FLAC
        assert len(sf.read(str(audio))[0]) == len(samples)
        with library.connection() as connection:
            assert count(connection, "segments_fts WHERE segments_fts MATCH 'zanzibarian'") == 1
            assert connection.execute("PRAGMA secure_delete").fetchone()[0] == 1  # on every connection
        assert b"zanzibarian" in file_bytes(settings.path)

        library.delete(secret)
        assert [e.id for e in library.entries()] == [keep]
        with library.connection() as connection:
            assert count(connection, f"segments WHERE transcript_id = {secret}") == 0
            assert count(connection, f"edits WHERE transcript_id = {secret}") == 0
            assert count(connection, "segments_fts WHERE segments_fts MATCH 'zanzibarian'") == 0
            assert connection.execute("PRAGMA freelist_count").fetchone()[0] == 0  # vacuumed
        assert not audio.exists() and list(settings.audio_dir.iterdir()) == []
        assert library.search("quixotically") == []
        wal = settings.path.with_name(settings.path.name + "-wal")
        assert wal.exists() and wal.stat().st_size == 0  # checkpointed and truncated
        raw = file_bytes(settings.path)
        for word in (b"zanzibarian", b"quixotically", b"secret.wav"):
            assert word not in raw, word  # not in a freed page, the index's segments or the log
        assert b"harbour" in raw  # what was kept is still there
        assert library.integrity() == "ok"
        assert library.delete_all() == 1 and library.entries() == []
        assert b"harbour" not in file_bytes(settings.path)
    finally:
        other.close()


def test_a_library_of_the_first_schema_is_migrated_and_keeps_its_transcripts(tmp_path: Path):
    path = tmp_path / "library.sqlite3"
    transcript = dialogue("old.wav")
    with sqlite3.connect(path) as connection:  # the file as the first version wrote it
        for statement in schema.MIGRATIONS[0]:
            connection.execute(statement)
        connection.execute("PRAGMA user_version = 1")
        connection.execute(
            "INSERT INTO transcripts (uid, source_name, sha256, duration, model_key, revision, options, "
            "notes, origin, created_at, speaker_names, speaker_turns, original, audio) "
            "VALUES ('u1', 'old.wav', '', 11.0, 'tiny', ?, '{}', '[]', 'page', "
            "'2024-01-02T03:04:05.000000+00:00', '[\"Speaker 1\", \"Speaker 2\"]', '[]', ?, NULL)",
            (transcript.revision, writer_for("json").render(transcript)),
        )
        for position, s in enumerate(transcript.segments):
            connection.execute(
                "INSERT INTO segments (transcript_id, position, start, end, text, speaker, words) "
                "VALUES (1, ?, ?, ?, ?, ?, ?)",
                (
                    position,
                    s.start,
                    s.end,
                    s.text,
                    s.speaker,
                    json.dumps([[w.text, w.start, w.end, w.speaker] for w in s.words]),
                ),
            )
    library = Library(LibrarySettings(path=path))
    with library.connection() as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 2
    assert [e.source_name for e in library.entries()] == ["old.wav"]
    assert library.search("harbour")[0].transcript_id == 1
    editing.edit_cells(library, 1, [(0, "Edited after the migration.", None)])
    assert library.get(1).edited_at is not None  # the column version 2 added
    assert library.integrity() == "ok"


def test_a_damaged_foreign_or_newer_file_is_one_sentence_and_nothing_is_kept(tmp_path: Path):
    config = tmp_path / "config.toml"
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"this is not a database " * 400)
    newer = tmp_path / "newer.sqlite3"
    Library(LibrarySettings(path=newer))
    with sqlite3.connect(newer) as connection:
        connection.execute("PRAGMA user_version = 99")
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER)")
    for path, says in [
        (damaged, "is damaged (file is not a database), so transcripts are not kept; move it aside"),
        (newer, "was written by a newer version of this app (schema 99; this one reads up to 2)"),
        (foreign, "is an SQLite file but not a library of transcripts"),
    ]:
        keeper = Keeper(LibrarySettings(path=path), config)
        assert not keeper.available and says in keeper.problem and "\n" not in keeper.problem
        assert keeper.status_line() == keeper.problem
        assert keeper.keep(dialogue(), "page") == ""  # transcription goes on; nothing is written
    assert damaged.read_bytes() == b"this is not a database " * 400  # nothing the user had is touched
    off = Keeper(LibrarySettings(path=tmp_path / "off.sqlite3", enabled=False), config)
    assert (
        off.problem == OFF and off.keep(dialogue(), "page") == "" and not (tmp_path / "off.sqlite3").exists()
    )


def test_a_python_without_fts5_is_told_in_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real_connect = sqlite3.connect

    class WithoutFts5(sqlite3.Connection):
        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:  # type: ignore[override]
            if "USING fts5" in sql:
                raise sqlite3.OperationalError("no such module: fts5")
            return super().execute(sql, *args)

    monkeypatch.setattr(schema.sqlite3, "connect", lambda *a, **k: real_connect(*a, factory=WithoutFts5, **k))
    keeper = Keeper(LibrarySettings(path=tmp_path / "library.sqlite3"), tmp_path / "config.toml")
    assert not keeper.available
    assert keeper.problem.startswith(
        f"This Python's SQLite ({sqlite3.sqlite_version}) has no full-text search (FTS5"
    )
    assert not (tmp_path / "library.sqlite3").exists()


def test_an_export_imports_into_another_library_with_edits_originals_and_recordings(tmp_path: Path):
    source = Keeper(
        LibrarySettings(path=tmp_path / "a" / "library.sqlite3", keep_audio=True), tmp_path / "c.toml"
    )
    assert source.library is not None
    samples = np.zeros(16000, np.float32)
    source.keep(dialogue("one.wav"), "live", samples=samples)
    second = source.library.add(dialogue("two.wav"), "api")
    editing.rename_speaker(source.library, second, "Speaker 2", "Bo")
    bundle = tmp_path / "export" / "library.zip"
    assert export_library(source.library, bundle) == 2
    with zipfile.ZipFile(bundle) as archive:
        assert sorted(n.split("/")[0] for n in archive.namelist()) == [
            "audio",
            "library.sqlite3",
            "manifest.json",
        ]

    target = Library(LibrarySettings(path=tmp_path / "b" / "library.sqlite3"))
    target.add(dialogue("mine.wav"), "page")
    assert import_library(target, bundle) == (2, 0)
    assert import_library(target, bundle) == (0, 2)  # again: nothing twice
    moved = {e.source_name: e for e in target.entries()}
    assert set(moved) == {"mine.wav", "one.wav", "two.wav"}
    two = target.get(moved["two.wav"].id)
    assert two.transcript.speaker_names == ["Speaker 1", "Bo"] and [w for _, w in two.edits] == [
        "renamed Speaker 2 to Bo"
    ]
    assert target.original(two.id).to_dict() == dialogue("two.wav").to_dict()
    assert editing.undo(target, two.id) == "renamed Speaker 2 to Bo"
    one = target.get(moved["one.wav"].id)
    assert one.audio is not None and len(sf.read(str(one.audio))[0]) == 16000
    assert target.search("harbour") and target.integrity() == "ok"

    not_export = tmp_path / "notes.zip"
    not_export.write_bytes(b"PK nothing")
    with pytest.raises(LibraryError, match="notes.zip is not a library export"):
        import_library(target, not_export)
    newer = tmp_path / "newer.zip"
    with zipfile.ZipFile(bundle) as archive, zipfile.ZipFile(newer, "w") as out:
        for name in archive.namelist():
            out.writestr(name, archive.read(name))
    with zipfile.ZipFile(newer) as archive:
        archive.extract("library.sqlite3", tmp_path / "newer")
    with sqlite3.connect(tmp_path / "newer" / "library.sqlite3") as connection:
        connection.execute("PRAGMA user_version = 7")
    with zipfile.ZipFile(newer, "w") as out:
        out.writestr("manifest.json", json.dumps({"format": "localstt-library", "schema": 7}))
        out.write(tmp_path / "newer" / "library.sqlite3", "library.sqlite3")
    with pytest.raises(LibraryError, match="newer.zip was exported by a newer version of this app"):
        import_library(target, newer)
    assert len(target.entries()) == 3


def aged(library: Library, number: int, days: float) -> None:
    """Make transcript `number` look `days` old."""
    made = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="microseconds")
    with library.connection() as connection:
        connection.execute("UPDATE transcripts SET created_at = ? WHERE id = ?", (made, number))


def test_keep_days_removes_old_transcripts_at_start_and_then_every_day(tmp_path: Path):
    settings = LibrarySettings(path=tmp_path / "library.sqlite3", keep_days=30)
    library = Library(settings)
    old = library.add(dialogue("old.wav"), "page")
    recent = library.add(dialogue("recent.wav"), "page")
    aged(library, old, 31)
    aged(library, recent, 29)
    stray = settings.audio_dir / "left-by-a-kill.flac"
    stray.parent.mkdir()
    stray.write_bytes(b"x")
    young_stray = settings.audio_dir / "another-process-is-committing.flac"
    young_stray.write_bytes(b"x")
    hour_ago = time.time() - 7200
    os.utime(stray, (hour_ago, hour_ago))
    keeper = Keeper(settings, tmp_path / "config.toml", retention_every_s=0.2)  # "a day" of 0.2 s
    assert [e.id for e in library.entries()] == [recent]  # at start
    assert not stray.exists() and young_stray.exists()
    try:
        keeper.start_retention()
        aged(library, recent, 31)  # a day later, it is old too
        deadline = time.monotonic() + 60
        while library.entries() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert library.entries() == [], "the daily retention did not remove it within 60 s"
    finally:
        keeper.stop()
    assert "library-retention" not in [thread.name for thread in threading.enumerate()]
