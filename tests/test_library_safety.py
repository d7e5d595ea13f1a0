"""The library under the conditions of real use: several processes and threads writing, editing,
searching and deleting at once (no write lost, no "database is locked"), and processes killed with
SIGKILL in the middle of writing and editing (everything committed is there, and intact)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from localstt.library.database import Library
from localstt.library.settings import LibrarySettings
from localstt.transcript import Segment, Transcript
from testkit import library_writer
from testkit.store_env import wait_for


def start_writer(path: Path, name: str, count: int, journal: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "testkit.library_writer", str(path), name, str(count), str(journal)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def journal_lines(journal: Path) -> list[dict]:
    if not journal.exists():
        return []
    lines = journal.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]  # a line cut short by a kill aside


def check_committed(library: Library, notes: list[dict]) -> None:
    """Every transcript a writer was told was kept is there, with every edit it was told was made."""
    entries = {e.id: e for e in library.entries(limit=100_000)}
    for note in notes:
        if "added" in note:
            assert entries[note["added"]].source_name == f"{note['word']}.wav", note
        if "edited" in note:
            text = library.get(note["edited"]).transcript.segments[0].text
            assert text == f"The {note['word']} was edited here.", note
            assert [h.transcript_id for h in library.search(note["word"])] == [note["edited"]]
    assert library.integrity() == "ok"


def test_processes_and_threads_write_at_once_without_a_lost_write_or_a_lock_error(tmp_path: Path):
    path = tmp_path / "library.sqlite3"
    library = Library(LibrarySettings(path=path))
    doomed = [library.add(*doomed_transcript(n)) for n in range(6)]
    writers = {
        f"writer{n}": start_writer(path, f"writer{n}", 20, tmp_path / f"writer{n}.jsonl") for n in range(4)
    }
    threads = [threading.Thread(target=thread_writer, args=(library, n, tmp_path)) for n in range(2)]
    for thread in threads:
        thread.start()
    deleted = 0
    while deleted < len(doomed) or any(w.poll() is None for w in writers.values()):
        if deleted < len(doomed):  # deletes (each vacuums the file) while the others write
            library.delete(doomed[deleted])
            deleted += 1
        library.search("word1")  # and a reader
        time.sleep(0.05)
    for writer in writers.values():
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        assert "locked" not in err and "busy" not in err
    for thread in threads:
        thread.join(timeout=120)
    names = [*writers, "thread0", "thread1"]
    notes = [note for name in names for note in journal_lines(tmp_path / f"{name}.jsonl")]
    assert sum("done" in note for note in notes) == 6
    assert sum("added" in note for note in notes) == 100 == library.count()
    check_committed(library, notes)
    for note in notes:  # each search saw its own transcript (committed before it searched)
        if "searched" in note:
            assert len(note["found"]) == 1


def thread_writer(library: Library, number: int, folder: Path) -> None:
    """A writer on a thread of this process; an error is its journal's last line."""
    journal = folder / f"thread{number}.jsonl"
    try:
        library_writer.write(library, f"thread{number}", 10, journal)
    except Exception as error:
        journal.write_text(f"{error!r}\n")


def doomed_transcript(number: int) -> tuple[Transcript, str]:
    text = f"Doomed number {number}."
    return Transcript(
        text, [Segment(0.0, 1.0, text)], 1.0, "m", "r", source_name=f"doomed{number}.wav"
    ), "page"


@pytest.mark.slow  # a dozen processes killed one after another
def test_sigkill_while_writing_and_editing_loses_nothing_committed(tmp_path: Path):
    path = tmp_path / "library.sqlite3"
    Library(LibrarySettings(path=path))
    rng = random.Random(7)
    notes: list[dict] = []
    for round_number in range(12):
        journal = tmp_path / f"round{round_number}.jsonl"
        writer = start_writer(path, f"round{round_number}", 1000, journal)
        wanted = rng.randint(1, 25)  # kill it after this many calls returned, mid-way through the next
        wait_for(
            f"{wanted} calls of writer {round_number}",
            lambda journal=journal, wanted=wanted: len(journal_lines(journal)) >= wanted,
            timeout=120,
            process=writer,
        )
        time.sleep(rng.uniform(0, 0.02))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=60)
        notes += journal_lines(journal)
        check_committed(Library(LibrarySettings(path=path)), notes)  # a restart: everything committed
    assert sum("edited" in note for note in notes) >= 12
