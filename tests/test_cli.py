"""The `transcribe` command: many files or a folder, chosen formats, one line per failed file."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import srt

from testkit.store_env import REPO_ROOT, Project
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()


def run_cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localstt.cli", "--config", str(project.config), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=project.env(),
        cwd=REPO_ROOT,
    )


def test_folder_in_files_out_and_failures_reported_per_file(exported_project: Project, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(PHRASE_WAV, inbox / "first.wav")
    subprocess.run(["sox", str(PHRASE_WAV), "-r", "44100", str(inbox / "second.flac")], check=True)
    (inbox / "broken.mp3").write_bytes(b"")
    out = tmp_path / "out"

    result = run_cli(exported_project, str(inbox), "--format", "srt,txt,json", "--out", str(out))

    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    assert failed == [
        f"failed: {inbox / 'broken.mp3'}: 'broken.mp3' is empty (0 bytes); "
        "the recording or upload did not finish, so record or copy it again."
    ]
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "first.json",
        "first.srt",
        "first.txt",
        "job.jsonl",
        "second.json",
        "second.srt",
        "second.txt",
    ]
    job = {Path(e["input"]).name: e for e in map(json.loads, (out / "job.jsonl").read_text().splitlines())}
    assert {name: e["status"] for name, e in job.items()} == {
        "first.wav": "done",
        "second.flac": "done",
        "broken.mp3": "failed",
    }
    assert job["first.wav"]["sha256"] == hashlib.sha256(PHRASE_WAV.read_bytes()).hexdigest()
    assert job["first.wav"]["outputs"] == ["first.srt", "first.txt", "first.json"]
    assert job["broken.mp3"]["error"].startswith("'broken.mp3' is empty (0 bytes)")
    for stem in ("first", "second"):
        assert (out / f"{stem}.txt").read_text(encoding="utf-8").strip() == PHRASE
        cues = list(srt.parse((out / f"{stem}.srt").read_text(encoding="utf-8")))
        assert " ".join(c.content.replace("\n", " ") for c in cues) == PHRASE


def test_unknown_format_and_unexported_model_are_one_line(exported_project: Project, tmp_path):
    bad_format = run_cli(exported_project, str(PHRASE_WAV), "--format", "docx")
    assert bad_format.returncode == 2
    assert bad_format.stderr.strip() == "error: unknown format docx; use txt,srt,vtt,json."
    unknown_model = run_cli(exported_project, str(PHRASE_WAV), "--model", "whisper")
    assert unknown_model.returncode == 2
    assert "Unknown model 'whisper'" in unknown_model.stderr and "Traceback" not in unknown_model.stderr


@pytest.mark.slow
def test_transcription_settings_come_from_config_toml(exported_project: Project, tmp_path):
    """[transcription] in config.toml reaches the engine: full attention turned off there makes the
    tiny Parakeet run in local attention, and the JSON transcript records why."""
    import json

    import tomlkit

    document = tomlkit.parse(exported_project.config.read_text(encoding="utf-8"))
    document["models_dir"] = str(exported_project.models_dir)
    document["transcription"]["full_attention_max_minutes"] = 0
    config = tmp_path / "config.toml"
    config.write_text(tomlkit.dumps(document), encoding="utf-8")
    out = tmp_path / "out"

    result = subprocess.run(
        [sys.executable, "-m", "localstt.cli", "--config", str(config), str(PHRASE_WAV)]
        + ["--format", "json", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=exported_project.env(),
        cwd=REPO_ROOT,
    )

    assert result.returncode == 0, result.stderr
    transcript = json.loads((out / f"{PHRASE_WAV.stem}.json").read_text(encoding="utf-8"))
    assert transcript["text"] == PHRASE
    reason = "local attention for long audio: 3 s is longer than full_attention_max_minutes = 0"
    assert transcript["notes"] == [reason]
