"""A writer of the library for the tests that share it between processes and threads, and kill it:
it keeps transcripts, each with a word of its own, edits each right after it is kept, searches now and
then, and notes in its journal (each line on the disk before the next call) what each call returned,
which is what was committed.

    python -m testkit.library_writer LIBRARY NAME COUNT JOURNAL
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from localstt.library import editing
from localstt.library.database import Library
from localstt.library.settings import LibrarySettings
from localstt.transcript import Segment, Transcript, Word


def note(journal: Path, **fields: Any) -> None:
    with journal.open("a") as out:
        out.write(json.dumps(fields) + "\n")
        out.flush()
        os.fsync(out.fileno())


def write(library: Library, name: str, count: int, journal: Path) -> None:
    for number in range(count):
        word = f"{name}word{number}"
        text = f"The {word} was said here."
        words = tuple(Word(token, i * 0.4, i * 0.4 + 0.3) for i, token in enumerate(text.split()))
        segment = Segment(0.0, words[-1].end, text, words)
        kept = library.add(Transcript(text, [segment], 3.0, "m", "r", source_name=f"{word}.wav"), name)
        note(journal, added=kept, word=word)
        editing.edit_cells(library, kept, [(0, f"The {word} was edited here.", None)])
        note(journal, edited=kept, word=word)
        if number % 7 == 3:
            found = library.search(word)
            note(journal, searched=word, found=[hit.transcript_id for hit in found])
    note(journal, done=name)


if __name__ == "__main__":
    path, name, count, journal = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    write(Library(LibrarySettings(path=path)), name, count, journal)
