"""The Library tab's events in this process (localstt/web/library_tab.py), over a real library file: a
table left by the user saved cell by cell, play from a segment, downloads under the line controls,
delete only when confirmed, export and import; a library that cannot be used is one sentence; the
status panel says where transcripts are kept and how to turn that off. No model runs here: the
transcripts are kept as the page would keep them."""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
import srt

from localstt.config import load_config
from localstt.library.keeper import OFF
from localstt.transcript import Segment, Transcript, Word
from localstt.web.app import TranscriptionApp
from localstt.web.library_tab import LibraryTab
from testkit.store_env import REPO_ROOT


def make_app(folder: Path, **library: str) -> TranscriptionApp:
    """The page's app over a copy of the shipped config.toml whose [library] is in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (REPO_ROOT / "config.toml").read_text(encoding="utf-8")
    for key, value in {"path": f'"{folder / "library.sqlite3"}"', **library}.items():
        text, changed = re.subn(rf"(?ms)^(\[library\].*?^{key} = )[^\n]*$", rf"\g<1>{value}", text, count=1)
        assert changed == 1, key
    config = folder / "config.toml"
    config.write_text(text, encoding="utf-8")
    return TranscriptionApp(load_config(config), folder / "outputs", upload_root=folder / "uploads")


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[list[TranscriptionApp]]:
    made: list[TranscriptionApp] = []
    yield made
    for app in made:
        app.close()


def spoken(seconds: float = 6.0) -> np.ndarray:
    """A recording whose every sample says where it is (a ramp), to find a clip's start in it."""
    return np.linspace(-0.9, 0.9, int(16000 * seconds), dtype=np.float32)


def meeting() -> Transcript:
    segments = []
    for number, (start, text) in enumerate(
        [(0.5, "Good morning everyone."), (2.5, "Let us begin with the budget.")]
    ):
        words = tuple(
            Word(t, start + i * 0.4, start + i * 0.4 + 0.3, number) for i, t in enumerate(text.split())
        )
        segments.append(Segment(start, words[-1].end, text, words, number))
    return Transcript(
        " ".join(s.text for s in segments),
        segments,
        6.0,
        "tiny",
        "b" * 40,
        source_name="meeting.wav",
        speaker_names=["Speaker 1", "Speaker 2"],
    )


def quietly(work, *args):  # noqa: ANN001, ANN202 - gr.Info outside a request is a UserWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return work(*args)


def test_the_table_as_the_user_left_it_is_saved_cell_by_cell_and_undone(apps, tmp_path: Path):
    app = make_app(tmp_path / "a")
    apps.append(app)
    tab = LibraryTab(app)
    assert app.keeper.keep(meeting(), "page") == ""
    (entry,) = tab.listing()["data"]
    number = entry[0]
    assert entry[2:6] == ["meeting.wav", "0:06.000", "tiny", "page"]
    title, table, speakers, history, _ = tab.open(number)
    assert (
        "meeting.wav" in title
        and "recording was not kept (keep_audio" in title
        and history == "No edits yet."
    )
    rows = table["data"]
    assert rows == [
        [1, "0:00.500", "0:01.600", "Speaker 1", "Good morning everyone."],
        [2, "0:02.500", "0:04.800", "Speaker 2", "Let us begin with the budget."],
    ]
    assert speakers.choices == [("Speaker 1", "Speaker 1"), ("Speaker 2", "Speaker 2")]
    assert tab.edit(number, rows)[3] == "No edits yet."  # nothing changed: nothing saved

    rows[0][4] = "Good morning, everyone."
    rows[1][3] = "Dana"
    _, table, _, history, _ = tab.edit(number, rows)  # as Gradio hands a type="array" table over
    assert table["data"][0][4] == "Good morning, everyone." and table["data"][1][3] == "Dana"
    assert "text of segment 1" in history and "speaker of segment 2" in history
    assert tab.search("dana budget")["data"] == []  # a speaker is no text
    (hit,) = tab.search("BUDGET")["data"]
    assert hit[:4] == [number, "meeting.wav", 2, "0:04.500"] and "<mark>budget</mark>" in hit[4]

    _, table, *_ = quietly(tab.undo, number)
    assert table["data"][1][3] == "Speaker 2"
    _, table, *_ = quietly(tab.original, number)
    assert table["data"][0][4] == "Good morning everyone."
    with pytest.raises(gr.Error, match="Open a transcript first"):
        tab.undo(None)


def test_a_segment_plays_from_its_start_when_the_recording_was_kept(apps, tmp_path: Path):
    app = make_app(tmp_path / "a", keep_audio="true")
    apps.append(app)
    tab = LibraryTab(app)
    source = tmp_path / "meeting.flac"
    sf.write(source, spoken(), 16000, subtype="PCM_24")
    assert app.keeper.keep(meeting(), "page", source=source) == ""
    number = tab.listing()["data"][0][0]
    assert "Select a segment to play from it" in tab.open(number)[0]
    clip, rate = sf.read(tab.play_from(number, 1), dtype="float32")
    assert rate == 16000
    whole = sf.read(source, dtype="float32")[0]
    start = int(2.5 * 16000)  # the second segment's start
    assert len(clip) == len(whole) - start
    assert np.abs(clip - whole[start:]).max() < 2e-4  # the same samples, from there (16-bit)

    other = make_app(tmp_path / "b")  # keep_audio = false
    apps.append(other)
    other.keeper.keep(meeting(), "page", source=source)
    assert not (tmp_path / "b" / "library-audio").exists()
    with pytest.raises(gr.Error, match="Its recording was not kept: set keep_audio = true"):
        LibraryTab(other).play_from(LibraryTab(other).listing()["data"][0][0], 0)


def test_downloads_follow_the_line_controls_and_a_bad_one_is_one_sentence(apps, tmp_path: Path):
    app = make_app(tmp_path / "a")
    apps.append(app)
    tab = LibraryTab(app)
    app.keeper.keep(meeting(), "page")
    number = tab.listing()["data"][0][0]
    files = tab.download(number, ["srt", "txt"], 20, 1, 7.0, 0.0)
    assert [Path(f).name for f in files] == ["meeting.srt", "meeting.txt"]
    cues = list(srt.parse(Path(files[0]).read_text(encoding="utf-8")))
    assert all(len(line) <= 20 for cue in cues for line in cue.content.splitlines())
    leads, said = zip(*(cue.content.split(": ", 1) for cue in cues), strict=True)
    assert set(leads) == {"Speaker 1", "Speaker 2"}  # each cue says who speaks
    assert " ".join(said).split() == meeting().text.split()
    with pytest.raises(gr.Error) as caught:
        tab.download(number, ["srt"], 42, 9, 7.0, 0.0)
    assert caught.value.message == "Subtitle lines: max_lines_per_cue is 9; use a whole number from 1 to 6."


def test_delete_asks_first_and_export_moves_everything_to_another_library(apps, tmp_path: Path):
    app = make_app(tmp_path / "a")
    apps.append(app)
    tab = LibraryTab(app)
    app.keeper.keep(meeting(), "page")
    app.keeper.keep(meeting(), "api")
    first, second = [row[0] for row in tab.listing()["data"]]
    exported = Path(tab.export())
    with pytest.raises(gr.Error, match="Tick “Yes, delete” first"):
        tab.delete(first, False)
    listing, opened, confirmed = quietly(tab.delete, first, True)
    assert [row[0] for row in listing["data"]] == [second] and opened is None and confirmed is False
    with pytest.raises(gr.Error, match="is not in the library"):
        tab.open(first)
    assert [row[0] for row in quietly(tab.delete_all, True)[0]["data"]] == []

    other = make_app(tmp_path / "b")
    apps.append(other)
    upload = other.upload_root / "abc" / "library.zip"  # where Gradio would have put the upload
    upload.parent.mkdir(parents=True)
    shutil.copy(exported, upload)
    listing = quietly(LibraryTab(other).import_, str(upload))
    assert sorted(row[5] for row in listing["data"]) == ["api", "page"]
    assert not upload.exists()  # the upload is not kept


def test_a_library_that_cannot_be_used_is_one_sentence_and_the_status_says_where_it_is(apps, tmp_path: Path):
    app = make_app(tmp_path / "a")
    apps.append(app)
    assert f"Transcripts are kept in the library {tmp_path / 'a' / 'library.sqlite3'}" in app.status()

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "library.sqlite3").write_bytes(b"garbage" * 1000)
    broken = make_app(tmp_path / "b")
    apps.append(broken)
    assert "is damaged" in broken.status() and "move it aside" in broken.status()
    with pytest.raises(gr.Error) as caught:
        LibraryTab(broken).listing()
    assert caught.value.message == broken.keeper.problem and "\n" not in broken.keeper.problem

    off = make_app(tmp_path / "c", enabled="false")
    apps.append(off)
    assert OFF in off.status() and not (tmp_path / "c" / "library.sqlite3").exists()
