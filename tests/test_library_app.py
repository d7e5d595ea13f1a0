"""The library in the real app: transcripts made through the page (gradio_client over HTTP), the API
(the official openai client) and the command line with --library are kept, found and survive a
restart; edits made over HTTP reach every download; page and API write at once without a lost write
or a lock error; a kill while transcripts are written and edited loses nothing committed; a damaged
library file is one sentence while transcription goes on; with [library] enabled = false nothing is
kept. The Library tab in real Chromium is in tests/test_library_page.py."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
import srt
import webvtt
from gradio_client import Client, handle_file
from openai import OpenAI

import localstt.web  # noqa: F401,I001  # first: gradio_client's analytics off in this process
from localstt.config import load_config
from localstt.library.database import Library
from localstt.library.settings import LibrarySettings
from localstt.transcript import Segment, Transcript
from localstt.web.app import TranscriptionApp
from localstt.web.live_tab import LiveTab
from testkit.app import RunningApp, launch_app, start_app, wait_until_serving
from testkit.store_env import REPO_ROOT, Project, config_on, kill_tree, wait_for
from testkit.tiny_models import PHRASE_DIALOGUE_WAV, PHRASE_TXT, PHRASE_WAV

pytestmark = pytest.mark.slow  # app processes
PHRASE = PHRASE_TXT.read_text().strip()
KEY = "library-test-key"


def library_config(project: Project, folder: Path, **settings: str) -> Path:
    """The project's CPU config.toml (beside it: the same local_models/) with its own [library]: its
    file in `folder`, and `settings` (config.toml's spelling, e.g. keep_audio="true")."""
    text = config_on(project, "cpu").read_text(encoding="utf-8")
    values = {"path": f'"{folder / "library.sqlite3"}"', **settings}
    for key, value in values.items():
        text, changed = re.subn(rf"(?ms)^(\[library\].*?^{key} = )[^\n]*$", rf"\g<1>{value}", text, count=1)
        assert changed == 1, key
    path = project.root / f"config-{folder.name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def page_transcribe(app: RunningApp, path: Path, *, speakers: bool = False) -> tuple:
    client = Client(app.url, verbose=False)
    return client.predict(
        [handle_file(str(path))], None, "parakeet", ["txt"], speakers, "", api_name="/transcribe"
    )


def api_transcribe(app: RunningApp, path: Path) -> str:
    client = OpenAI(base_url=f"{app.url}v1", api_key=KEY, max_retries=0, timeout=300)
    with path.open("rb") as audio:
        return client.audio.transcriptions.create(file=audio, model="parakeet").text


def library_get(app: RunningApp, route: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{app.url}v1/library{route}", params=params, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    )


def listed(app: RunningApp) -> dict[str, dict]:
    answer = library_get(app, "")
    assert answer.status_code == 200, answer.text
    return {entry["source_name"]: entry for entry in answer.json()["data"]}


def named_copy(folder: Path, name: str, source: Path = PHRASE_WAV) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(source, folder / name))


def run_cli(project: Project, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localstt.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=project.env(),
        cwd=REPO_ROOT,
    )


@pytest.fixture(scope="module")
def library_app(exported_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    folder = tmp_path_factory.mktemp("kept")
    config = library_config(exported_project, folder, keep_audio="true")
    with launch_app(
        exported_project, tmp_path_factory.mktemp("library-app"), "--api-key", KEY, config=config
    ) as running:
        yield running
        assert "Traceback" not in running.log.read_text()
        assert "database is locked" not in running.log.read_text()


def test_page_api_and_cli_transcripts_are_kept_found_and_survive_a_restart(
    exported_project: Project, tmp_path: Path
):
    config = library_config(exported_project, tmp_path / "kept")
    # Without --library (and cli = false under [library]) the command line keeps nothing.
    other = run_cli(
        exported_project,
        config,
        str(named_copy(tmp_path / "in", "other.wav")),
        "--out",
        str(tmp_path / "out1"),
    )
    assert other.returncode == 0, other.stderr
    assert not (tmp_path / "kept" / "library.sqlite3").exists()  # the CLI keeps only when asked

    cli = run_cli(
        exported_project,
        config,
        str(named_copy(tmp_path / "in", "by-cli.wav")),
        "--library",
        "--out",
        str(tmp_path / "out2"),
    )
    assert cli.returncode == 0, cli.stderr
    with launch_app(exported_project, tmp_path / "app1", "--api-key", KEY, config=config) as app:
        assert page_transcribe(app, named_copy(tmp_path / "in", "by-page.wav"))[0] == PHRASE
        assert api_transcribe(app, named_copy(tmp_path / "in", "by-api.wav")) == PHRASE
        first = listed(app)
        assert {name: entry["origin"] for name, entry in first.items()} == {
            "by-page.wav": "page",
            "by-api.wav": "api",
            "by-cli.wav": "cli",
        }
        assert list(first) == ["by-api.wav", "by-page.wav", "by-cli.wav"]  # newest first
        assert httpx.get(f"{app.url}v1/library", timeout=30).status_code == 401  # the API's key
        status = Client(app.url, verbose=False).predict(api_name="/status")[0]
        assert f"Transcripts are kept in the library {tmp_path / 'kept' / 'library.sqlite3'}" in status
        assert "enabled = false under [library] in config.toml turns that off" in status

    # A note that is in no recording, kept by hand (as an import would): the searches must tell apart.
    library = Library(LibrarySettings(path=tmp_path / "kept" / "library.sqlite3"))
    note = "A note about giraffes."
    library.add(Transcript(note, [Segment(0, 2, note)], 2.0, "m", "r", source_name="giraffes.txt"), "api")

    with launch_app(exported_project, tmp_path / "app2", "--api-key", KEY, config=config) as app:  # a restart
        again = listed(app)
        assert {name: entry["id"] for name, entry in again.items() if name != "giraffes.txt"} == {
            name: entry["id"] for name, entry in first.items()
        }
        found = library_get(app, "/search", q="FOX").json()["data"]
        assert sorted(hit["id"] for hit in found) == sorted(entry["id"] for entry in first.values())
        for hit in found:  # the hit's time is where "fox" is said in that recording
            words = library_get(app, f"/{hit['id']}").json()["transcript"]["segments"][0]["words"]
            assert hit["at"] == next(w["start"] for w in words if w["text"].strip(".").lower() == "fox")
            assert "<mark>fox</mark>" in hit["highlighted"]
        (giraffes,) = library_get(app, "/search", q="giraffe*").json()["data"]
        assert giraffes["source_name"] == "giraffes.txt"
        assert library_get(app, "/search", q="zebra").json()["data"] == []
        assert library_get(app, "/search").status_code == 400
        assert library_get(app, "/12345").json()["error"]["code"] == "not_found"


def test_edits_over_http_reach_every_download_and_the_original_stays(library_app: RunningApp, tmp_path: Path):
    text, *_ = page_transcribe(
        library_app, named_copy(tmp_path, "edited.wav", PHRASE_DIALOGUE_WAV), speakers=True
    )
    assert text.startswith("Speaker 1:")
    number = listed(library_app)["edited.wav"]["id"]
    client = Client(library_app.url, verbose=False)
    title, table, *_ = client.predict(number, api_name="/library_open")
    assert "edited.wav" in title
    rows = table["data"]
    assert [row[3] for row in rows[:2]] == ["Speaker 1", "Speaker 2"]
    rows[1][4] = rows[1][4].replace("lazy", "sleepy")  # a segment's text, as a cell left by the user
    _, table, *_ = client.predict(
        number, {"headers": table["headers"], "data": rows}, api_name="/library_edit"
    )
    assert "sleepy" in table["data"][1][4]
    _, table, _, history, _ = client.predict(number, "Speaker 2", "Ben", api_name="/library_rename")
    assert [row[3] for row in table["data"][:2]] == ["Speaker 1", "Ben"]
    assert "renamed Speaker 2 to Ben" in history

    files = client.predict(
        number, ["txt", "srt", "vtt", "json"], 42, 2, 7.0, 0.0, api_name="/library_download"
    )
    by_kind = {Path(f).suffix: Path(f).read_text(encoding="utf-8") for f in files}
    assert "Ben: The sleepy dog jumps" in by_kind[".txt"]
    assert any(c.content.startswith("Ben: The sleepy dog") for c in srt.parse(by_kind[".srt"]))
    assert any(c.voice == "Ben" and "sleepy" in c.text for c in webvtt.from_string(by_kind[".vtt"]))
    assert (
        '"speakers": [\n    "Speaker 1",\n    "Ben"\n  ]' in by_kind[".json"] and "sleepy" in by_kind[".json"]
    )
    over_api = library_get(
        library_app, f"/{number}/download", format="srt", max_chars_per_line=20, max_lines_per_cue=1
    )
    assert over_api.status_code == 200 and "sleepy" in over_api.text
    assert all(len(line) <= 20 for c in srt.parse(over_api.text) for line in c.content.splitlines())
    assert (
        library_get(library_app, f"/{number}/download", format="srt", max_lines_per_cue=9).status_code == 400
    )
    original = library_get(library_app, f"/{number}/original").json()["transcript"]
    assert "sleepy" not in original["text"] and original["speakers"] == ["Speaker 1", "Speaker 2"]
    assert library_get(library_app, f"/{number}").json()["edits"][-1]["what"] == "renamed Speaker 2 to Ben"


def test_page_and_api_write_at_once_without_a_lost_write_or_a_lock_error(
    library_app: RunningApp, tmp_path: Path
):
    page_files = [named_copy(tmp_path, f"at-once-page-{n}.wav") for n in range(5)]
    api_files = [named_copy(tmp_path, f"at-once-api-{n}.wav") for n in range(5)]
    with ThreadPoolExecutor(10) as pool:
        pages = [pool.submit(page_transcribe, library_app, path) for path in page_files]
        apis = [pool.submit(api_transcribe, library_app, path) for path in api_files]
        assert [job.result(timeout=600)[0] for job in pages] == [PHRASE] * 5
        assert [job.result(timeout=600) for job in apis] == [PHRASE] * 5
    kept = listed(library_app)
    assert {p.name for p in page_files + api_files} <= set(kept)
    assert {kept[p.name]["origin"] for p in page_files} == {"page"}
    assert {kept[p.name]["origin"] for p in api_files} == {"api"}
    assert "locked" not in library_app.log.read_text()


def test_a_kill_while_ten_transcripts_are_written_and_edited_loses_nothing_committed(
    exported_project: Project, tmp_path: Path
):
    """SIGKILL the app while ten recordings go through the page and the API and each is edited as
    soon as it is kept; after a restart every transcript whose reply came, and every edit whose reply
    came, is there, and SQLite's integrity check and the search index's own pass."""
    config = library_config(exported_project, tmp_path / "kept")
    files = [named_copy(tmp_path / "in", f"kill-{n}.wav") for n in range(10)]
    app = start_app(exported_project, tmp_path / "app1", "--api-key", KEY, config=config)
    wait_until_serving(app)
    kept: list[str] = []  # the replies that came: committed
    edited: dict[int, str] = {}
    lock = threading.Lock()

    def transcribe_and_edit(number: int, path: Path) -> None:
        try:
            if number % 2:
                assert api_transcribe(app, path) == PHRASE
            else:
                assert page_transcribe(app, path)[0] == PHRASE
            with lock:
                kept.append(path.name)
            client = Client(app.url, verbose=False)
            transcript_id = listed(app)[path.name]["id"]
            _, table, *_ = client.predict(transcript_id, api_name="/library_open")
            rows = table["data"]
            rows[0][4] = f"Edited {path.stem} text."
            client.predict(
                transcript_id, {"headers": table["headers"], "data": rows}, api_name="/library_edit"
            )
            with lock:
                edited[transcript_id] = rows[0][4]
        except Exception:  # the kill: this one was not acknowledged, and need not be there
            return

    with ThreadPoolExecutor(10) as pool:
        for number, path in enumerate(files):
            pool.submit(transcribe_and_edit, number, path)
        wait_for(
            "4 transcripts and 2 edits acknowledged",
            lambda: len(kept) >= 4 and len(edited) >= 2,
            process=app.process,
        )
        assert kill_tree(app.process) == []
    assert len(kept) < 10 or len(edited) < 10, "the kill came after everything was done"

    library_file = tmp_path / "kept" / "library.sqlite3"
    with sqlite3.connect(library_file) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with launch_app(exported_project, tmp_path / "app2", "--api-key", KEY, config=config) as restarted:
        after = listed(restarted)
        assert set(kept) <= set(after)
        for transcript_id, text in edited.items():
            segments = library_get(restarted, f"/{transcript_id}").json()["transcript"]["segments"]
            assert segments[0]["text"] == text
            assert transcript_id in [
                hit["id"] for hit in library_get(restarted, "/search", q=text.split()[1]).json()["data"]
            ]
    assert Library(LibrarySettings(path=library_file)).integrity() == "ok"  # with the index's own check


def test_a_damaged_library_is_one_sentence_on_the_page_and_transcription_goes_on(
    exported_project: Project, tmp_path: Path
):
    config = library_config(exported_project, tmp_path / "kept")
    damaged = tmp_path / "kept" / "library.sqlite3"
    damaged.parent.mkdir()
    garbage = b"a library file someone broke " * 300
    damaged.write_bytes(garbage)
    with launch_app(exported_project, tmp_path / "app", "--api-key", KEY, config=config) as app:
        status = Client(app.url, verbose=False).predict(api_name="/status")[0]
        (sentence,) = [line for line in status.splitlines() if "library" in line]
        assert sentence.startswith(f"The library {damaged} is damaged (file is not a database)")
        assert sentence.endswith("or restore it from a library export.") and sentence.count(". ") == 0
        page = httpx.get(app.url + "config", timeout=30).json()  # the Library tab says the same
        assert any(c.get("props", {}).get("value") == sentence for c in page["components"])
        assert page_transcribe(app, PHRASE_WAV)[0] == PHRASE  # transcription goes on
        assert api_transcribe(app, PHRASE_WAV) == PHRASE
        refused = library_get(app, "")
        assert refused.status_code == 503 and refused.json()["error"]["message"] == sentence
        assert "Traceback" not in app.log.read_text()
    assert damaged.read_bytes() == garbage  # nothing the user had is touched


def test_with_the_library_off_the_page_keeps_no_copy(exported_project: Project, tmp_path: Path):
    config = library_config(exported_project, tmp_path / "kept", enabled="false")
    with launch_app(exported_project, tmp_path / "app", "--api-key", KEY, config=config) as app:
        before = app.files()
        text, _, downloads, status = page_transcribe(app, PHRASE_WAV)
        assert text == PHRASE
        assert "The library is off (enabled = false under [library] in config.toml)" in status
        new = app.files() - before
        assert {p.name for p in new} == {"phrase.txt"} and all("localstt-out-" in str(p) for p in new)
        assert library_get(app, "").status_code == 503
    assert not (tmp_path / "kept").exists()  # no library file, no recordings


def test_a_live_session_is_kept_with_its_recording(model_store, exported_project: Project, tmp_path: Path):
    """The Live tab's Stop keeps the transcript and (keep_audio) the recording as the model heard it."""
    config = load_config(library_config(exported_project, tmp_path / "kept", keep_audio="true"))
    app = TranscriptionApp(config, tmp_path / "outputs", upload_root=tmp_path / "uploads")
    app.store = model_store
    try:
        tab = LiveTab(app)
        key, _ = tab.start("parakeet")
        speech, rate = sf.read(PHRASE_WAV, dtype="int16")
        for start in range(0, len(speech), rate // 2):
            tab.chunk((rate, speech[start : start + rate // 2]), key)
        _, text, _, _ = tab.stop(key, ["txt"], False, "")
        assert text == PHRASE
        assert app.keeper.library is not None
        (entry,) = app.keeper.library.entries()
        kept = app.keeper.library.get(entry.id)
        assert (entry.origin, kept.transcript.text) == ("live", PHRASE)
        assert kept.audio is not None
        recording = sf.read(kept.audio, dtype="float32")[0]
        assert abs(len(recording) - len(speech) * 16000 / rate) <= 16000 * 0.1
        assert np.abs(recording).max() > 0.01  # the speech, not silence
    finally:
        app.close()
