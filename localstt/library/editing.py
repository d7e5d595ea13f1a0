"""Edits to a kept transcript: a segment's text or speaker, a speaker renamed everywhere at once, find
and replace, undo of the last edits one by one, and the original back.

Each edit is one transaction that changes the segments and the names and records, in `edits`, what
they were before, so that undo puts them back exactly; the original (`transcripts.original`) is never
changed. A segment whose text is edited keeps the times of the words that stayed, and its new words
share the time of the words they replaced, so the subtitles made from it stay timed by the words.
"""

from __future__ import annotations

import difflib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace

from localstt.errors import LibraryError
from localstt.formats import transcript_from_json
from localstt.library.database import Library
from localstt.library.records import gone, now, words_from_json, words_json
from localstt.subtitles import spread
from localstt.transcript import Word

UPDATE_ROW = "UPDATE segments SET text = ?, speaker = ?, words = ? WHERE transcript_id = ? AND position = ?"


@dataclass
class Row:
    """A segment as it is stored: what an edit may change."""

    position: int
    text: str
    speaker: int | None
    words: tuple[Word, ...]


@dataclass
class State:
    names: list[str]
    rows: list[Row]


def realign(words: tuple[Word, ...], text: str, speaker: int | None) -> tuple[Word, ...]:
    """The words of the new `text`, each timed: a word that stayed keeps its time, new words share
    the time of the words they replace (or the gap they are inserted in). No words stay no words."""
    if not words:
        return ()
    old = [w.text for w in words]
    new = text.split()
    timed: list[Word] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            timed += [replace(w, speaker=speaker) for w in words[i1:i2]]
        elif j2 > j1:  # replaced or inserted
            start = words[i1].start if i1 < len(words) else words[-1].end
            end = words[i2 - 1].end if i2 > i1 else (words[i1].start if i1 < len(words) else start)
            if i2 == i1 and i1 > 0:
                start = words[i1 - 1].end
            timed += [
                Word(w.text, w.start, w.end, speaker) for w in spread(new[j1:j2], start, max(start, end))
            ]
    return tuple(timed)


def read_state(connection: sqlite3.Connection, transcript_id: int) -> State:
    row = connection.execute(
        "SELECT speaker_names FROM transcripts WHERE id = ?", (transcript_id,)
    ).fetchone()
    if row is None:
        raise gone(transcript_id)
    rows = [
        Row(position, text, speaker, words_from_json(words))
        for position, text, speaker, words in connection.execute(
            "SELECT position, text, speaker, words FROM segments WHERE transcript_id = ? ORDER BY position",
            (transcript_id,),
        )
    ]
    return State(json.loads(row[0]), rows)


def save(connection: sqlite3.Connection, transcript_id: int, what: str, before: State, after: State) -> bool:
    """Write the rows and names of `after` that differ from `before`, and the edit that undoes them;
    False (nothing written) when nothing differs."""
    changed = [
        (old, new)
        for old, new in zip(before.rows, after.rows, strict=True)
        if (old.text, old.speaker, old.words) != (new.text, new.speaker, new.words)
    ]
    if not changed and before.names == after.names:
        return False
    for _, new in changed:
        connection.execute(
            UPDATE_ROW,
            (new.text, new.speaker, words_json(new.words), transcript_id, new.position),
        )
    snapshot = {
        "names": before.names,
        "rows": [[old.position, old.text, old.speaker, words_json(old.words)] for old, _ in changed],
    }
    made_at = now()
    connection.execute(
        "UPDATE transcripts SET speaker_names = ?, edited_at = ? WHERE id = ?",
        (json.dumps(after.names, ensure_ascii=False), made_at, transcript_id),
    )
    connection.execute(
        "INSERT INTO edits (transcript_id, made_at, what, before) VALUES (?, ?, ?, ?)",
        (transcript_id, made_at, what, json.dumps(snapshot, ensure_ascii=False)),
    )
    return True


def copy(state: State) -> State:
    return State(list(state.names), [replace(row) for row in state.rows])


def _row(state: State, position: int) -> Row:
    if not 0 <= position < len(state.rows):
        raise LibraryError(
            f"Segment {position + 1} is not in this transcript (it has {len(state.rows)}); open it again."
        )
    return state.rows[position]


def _speaker_number(state: State, name: str) -> int | None:
    """The number of the speaker called `name` ("" for none), a new speaker if no one is."""
    name = " ".join(name.split())
    if not name:
        return None
    if name not in state.names:
        state.names.append(name)
    return state.names.index(name)


def _set_text(state: State, position: int, text: str) -> None:
    row = _row(state, position)
    row.text = " ".join(text.split())
    row.words = realign(row.words, row.text, row.speaker)


def _set_speaker(state: State, position: int, name: str) -> None:
    row = _row(state, position)
    row.speaker = _speaker_number(state, name)
    row.words = tuple(replace(w, speaker=row.speaker) for w in row.words)


def edit_cells(library: Library, transcript_id: int, cells: Sequence[tuple[int, str, str | None]]) -> int:
    """Set each (position, text, speaker name) given (speaker None: left as it is), one edit per
    changed cell, all in one transaction; returns how many edits were made."""

    def work(connection: sqlite3.Connection) -> int:
        made = 0
        for position, text, speaker in cells:
            before = read_state(connection, transcript_id)
            after = copy(before)
            row = _row(after, position)
            if " ".join(text.split()) != row.text:
                _set_text(after, position, text)
                made += save(connection, transcript_id, f"text of segment {position + 1}", before, after)
                before, after = after, copy(after)
            current = before.names[row.speaker] if row.speaker is not None else ""
            if speaker is not None and " ".join(speaker.split()) != current:
                _set_speaker(after, position, speaker)
                what = f"speaker of segment {position + 1}"
                made += save(connection, transcript_id, what, before, after)
        return made

    return library.write(work, "saving an edit")


def rename_speaker(library: Library, transcript_id: int, old: str, new: str) -> int:
    """Call speaker `old` `new` in every segment and word at once (two speakers given one name become
    one); returns how many segments are that speaker's."""
    new = " ".join(new.split())
    if not new:
        raise LibraryError("Give the speaker a name: the new name is empty.")

    def work(connection: sqlite3.Connection) -> int:
        before = read_state(connection, transcript_id)
        if old not in before.names:
            known = ", ".join(dict.fromkeys(before.names)) or "none"
            raise LibraryError(f"No speaker is called {old!r} in this transcript; its speakers: {known}.")
        after = copy(before)
        number = after.names.index(old)
        target = after.names.index(new) if new in after.names else number
        after.names = [new if name == old else name for name in after.names]
        count = 0
        for row in after.rows:
            if row.speaker is not None and after.names[row.speaker] == new:
                count += row.speaker in (number, target)
                row.speaker = target
                row.words = tuple(replace(w, speaker=target) for w in row.words)
        save(connection, transcript_id, f"renamed {old} to {new}", before, after)
        return count

    return library.write(work, "renaming a speaker")


def replace_all(library: Library, transcript_id: int, find: str, replacement: str) -> int:
    """Replace every `find` (exactly as written) in the transcript's text; returns how many."""
    if not find.strip():
        raise LibraryError("Type the text to find: it is empty.")

    def work(connection: sqlite3.Connection) -> int:
        before = read_state(connection, transcript_id)
        after = copy(before)
        count = 0
        for row in after.rows:
            if find in row.text:
                count += row.text.count(find)
                _set_text(after, row.position, row.text.replace(find, replacement))
        save(connection, transcript_id, f"replaced {find!r} with {replacement!r} ({count}×)", before, after)
        return count

    return library.write(work, "replacing text")


def undo(library: Library, transcript_id: int) -> str | None:
    """Take back the last edit; returns what it was, or None when there is none left."""

    def work(connection: sqlite3.Connection) -> str | None:
        last = connection.execute(
            "SELECT id, what, before FROM edits WHERE transcript_id = ? ORDER BY id DESC LIMIT 1",
            (transcript_id,),
        ).fetchone()
        if last is None:
            read_state(connection, transcript_id)  # a transcript that is gone says so
            return None
        edit_id, what, before = last
        snapshot = json.loads(before)
        for position, text, speaker, words in snapshot["rows"]:
            connection.execute(
                UPDATE_ROW,
                (text, speaker, words, transcript_id, position),
            )
        connection.execute("DELETE FROM edits WHERE id = ?", (edit_id,))
        previous = connection.execute(
            "SELECT max(made_at) FROM edits WHERE transcript_id = ?", (transcript_id,)
        ).fetchone()[0]
        connection.execute(
            "UPDATE transcripts SET speaker_names = ?, edited_at = ? WHERE id = ?",
            (json.dumps(snapshot["names"], ensure_ascii=False), previous, transcript_id),
        )
        return str(what)

    return library.write(work, "undoing an edit")


def restore_original(library: Library, transcript_id: int) -> bool:
    """Every segment and name as the model made them (itself an edit, which undo takes back);
    False when nothing had changed."""

    def work(connection: sqlite3.Connection) -> bool:
        before = read_state(connection, transcript_id)
        (original,) = connection.execute(
            "SELECT original FROM transcripts WHERE id = ?", (transcript_id,)
        ).fetchone()
        made = transcript_from_json(original)
        after = State(
            list(made.speaker_names),
            [Row(i, s.text, s.speaker, s.words) for i, s in enumerate(made.segments)],
        )
        return save(connection, transcript_id, "back to the original", before, after)

    return library.write(work, "restoring the original")
