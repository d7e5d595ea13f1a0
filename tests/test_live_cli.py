"""`transcribe --live`: standard input (a WAV stream, or raw PCM16) or a file, each settled line printed
as it comes, the files written at the end, and Ctrl-C keeping what was heard."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from localstt.library.database import Library
from localstt.library.settings import LibrarySettings
from testkit.store_env import Project, as_in_a_terminal
from testkit.tiny_models import PHRASE_DIALOGUE_WAV, PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
WAIT_S = 300
LIVE_TABLE = """[live]
chunk_seconds = 0.8
left_seconds = 9.6
right_seconds = 1.6
endpoint_ms = 800
"""


@pytest.fixture(scope="module")
def config(exported_project: Project) -> Path:
    text = exported_project.config.read_text(encoding="utf-8")
    text = re.sub(r"^\[live\]\n(?:(?!\[).*\n)*", LIVE_TABLE + "\n", text, flags=re.M)
    path = exported_project.root / "live-cli.toml"
    path.write_text(text, encoding="utf-8")
    return path


def live(project: Project, config: Path, out: Path, *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "localstt.cli", "--config", str(config), "--out", str(out)]
    return subprocess.Popen(
        [*command, "--format", "txt,json", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=project.env(),
        cwd=out.parent,
        preexec_fn=as_in_a_terminal,  # the Ctrl-C test's SIGINT must not be ignored
    )


def test_a_piped_wav_prints_each_line_as_it_settles_and_writes_the_files(
    exported_project: Project, config: Path, tmp_path: Path
):
    out = tmp_path / "out"
    process = live(exported_project, config, out, "--live", "-")
    stdout, stderr = process.communicate(PHRASE_DIALOGUE_WAV.read_bytes(), timeout=WAIT_S)
    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    record = json.loads((out / "live.json").read_text(encoding="utf-8"))
    assert " ".join(lines) == record["text"]  # every line printed is final text, and nothing else
    assert len(lines) >= 2 and record["text"].count(PHRASE) == 2
    assert (out / "live.txt").read_text(encoding="utf-8").split() == record["text"].split()
    words = [w for s in record["segments"] for w in s["words"]]
    assert [w["text"] for w in words] == record["text"].split()
    recording = sf.read(str(out / "live-recording.wav"), dtype="float32")[0]
    assert abs(len(recording) - sf.info(str(PHRASE_DIALOGUE_WAV)).frames) < 16000 * 0.01
    assert f"-> {out / 'live.txt'}" in stderr.decode()


@pytest.mark.slow
def test_raw_pcm16_on_standard_input_and_a_file_at_real_time_pace(
    exported_project: Project, config: Path, tmp_path: Path
):
    library_file = tmp_path / "kept" / "library.sqlite3"
    library_path = r"(?ms)^(\[library\].*?^path = )[^\n]*$"
    text, changed = re.subn(library_path, rf'\g<1>"{library_file}"', config.read_text(encoding="utf-8"))
    assert changed == 1
    kept_config = config.with_name("live-cli-kept.toml")  # beside local_models/, like the others
    kept_config.write_text(text, encoding="utf-8")
    samples = sf.read(str(PHRASE_WAV), dtype="int16")[0]
    raw = live(exported_project, kept_config, tmp_path / "raw", "--live", "-")
    stdout, stderr = raw.communicate(samples.astype("<i2").tobytes(), timeout=WAIT_S)
    assert raw.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == PHRASE
    assert not library_file.exists()  # without --library the command line keeps nothing
    paced = live(
        exported_project,
        kept_config,
        tmp_path / "paced",
        "--live",
        str(PHRASE_WAV),
        "--realtime",
        "--library",
    )
    stdout, stderr = paced.communicate(timeout=WAIT_S)
    assert paced.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == PHRASE
    assert (tmp_path / "paced" / "phrase.txt").read_text(encoding="utf-8").strip() == PHRASE
    library = Library(LibrarySettings(path=library_file))
    (entry,) = library.entries()
    assert (entry.origin, library.get(entry.id).transcript.text) == ("cli", PHRASE)


@pytest.mark.slow
def test_ctrl_c_mid_stream_keeps_what_was_heard(exported_project: Project, config: Path, tmp_path: Path):
    """The dialogue is sent as a microphone would, in 100 ms pieces; once the first line has settled
    the command gets Ctrl-C (SIGINT): the line, and the words after it that it had heard, are in the
    files."""
    out = tmp_path / "out"
    process = live(exported_project, config, out, "--live", "-")
    assert process.stdin is not None and process.stdout is not None
    audio = sf.read(str(PHRASE_DIALOGUE_WAV), dtype="int16")[0].astype("<i2").tobytes()
    first_line: list[bytes] = []
    settled = threading.Event()

    def read_first_line() -> None:
        assert process.stdout is not None
        first_line.append(process.stdout.readline())
        settled.set()

    reader = threading.Thread(target=read_first_line, daemon=True)
    reader.start()
    sent = 0
    for start in range(0, len(audio), 3200):  # 100 ms each, at about the speed of speech
        if settled.is_set():
            break
        process.stdin.write(audio[start : start + 3200])
        process.stdin.flush()
        sent = start + 3200
        time.sleep(0.1)
    if not settled.wait(WAIT_S):
        process.kill()
        pytest.fail(f"no line settled within {WAIT_S} s of the whole dialogue")
    assert sent < len(audio)  # the dialogue was not over: this is mid-stream
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=WAIT_S)
    assert process.returncode == 130, stderr.decode()
    heard = first_line[0].decode().strip()
    text = (out / "live.txt").read_text(encoding="utf-8")
    assert heard and " ".join(text.split()).startswith(heard)
    assert " ".join([heard, *rest.decode().split()]) == " ".join(text.split())  # and the tail
    recording = sf.read(str(out / "live-recording.wav"), dtype="int16")[0]
    assert 0 < len(recording) * 2 <= sent  # what came before Ctrl-C, sample for sample
    sent_samples = np.frombuffer(audio[: len(recording) * 2], dtype="<i2").astype(np.int32)
    assert np.abs(recording.astype(np.int32) - sent_samples).max() <= 1
