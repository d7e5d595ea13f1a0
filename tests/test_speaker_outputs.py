"""Who said what, end to end: the tiny Parakeet and the tiny Sortformer, exported from the test hub,
run by the `transcribe` command over a dialogue of two espeak-ng voices (fixtures/phrase-dialogue.wav),
and every output names the right speaker at the right words."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import srt
import webvtt
from test_cli import run_cli

from testkit.store_env import Project
from testkit.tiny_models import PHRASE_DIALOGUE_JSON, PHRASE_DIALOGUE_WAV, PHRASE_TXT, PHRASE_WAV

TRUTH: list[dict[str, Any]] = json.loads(PHRASE_DIALOGUE_JSON.read_text(encoding="utf-8"))
PHRASE = PHRASE_TXT.read_text().strip()


def expected_txt(names: list[str]) -> str:
    """The TXT the dialogue should give: one paragraph per true turn, "Name: " and its words."""
    return "".join(f"{names[t['speaker']]}: {t['text']}\n\n" for t in TRUTH).rstrip("\n") + "\n"


def true_speaker(start: float, end: float) -> int:
    """The speaker of the true turn that holds the middle of [start, end]."""
    middle = (start + end) / 2
    turn = min(TRUTH, key=lambda t: max(0.0, t["start"] - middle, middle - t["end"]))
    return int(turn["speaker"])


@pytest.mark.slow  # the CLI in its own process
def test_the_cli_names_each_speaker_at_the_right_words(exported_project: Project, tmp_path: Path):
    out = tmp_path / "out"
    result = run_cli(
        exported_project,
        str(PHRASE_DIALOGUE_WAV),
        "--speakers",
        "--format",
        "txt,srt,vtt,json",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    default = ["Speaker 1", "Speaker 2"]
    assert (out / "phrase-dialogue.txt").read_text(encoding="utf-8") == expected_txt(default)

    data = json.loads((out / "phrase-dialogue.json").read_text(encoding="utf-8"))
    assert data["speakers"] == default
    words = [w for s in data["segments"] for w in s["words"]]
    assert " ".join(w["text"] for w in words) == " ".join(t["text"] for t in TRUTH)
    assert [w["speaker"] for w in words] == [default[true_speaker(w["start"], w["end"])] for w in words]
    assert [(s["speaker"], s["text"]) for s in data["segments"]] == [
        (default[t["speaker"]], t["text"]) for t in TRUTH
    ]
    assert {t["speaker"] for t in data["speaker_turns"]} == set(default)
    assert data["options"]["speakers"] is True
    assert data["timings"]["speakers_s"] > 0

    # SRT: each cue starts with its speaker's name; VTT: each cue is that speaker's voice span
    cues = list(srt.parse((out / "phrase-dialogue.srt").read_text(encoding="utf-8")))
    assert cues
    for cue in cues:
        name = cue.content.partition(": ")[0]
        spoken = true_speaker(cue.start.total_seconds(), cue.end.total_seconds())
        assert name == default[spoken], cue
    joined = " ".join(" ".join(c.content.partition(": ")[2].split()) for c in cues)
    assert joined == " ".join(t["text"] for t in TRUTH)
    vtt = webvtt.read(str(out / "phrase-dialogue.vtt"))
    assert [c.voice for c in vtt] == [c.content.partition(": ")[0] for c in cues]
    assert " ".join(" ".join(c.text.split()) for c in vtt) == joined

    job = [json.loads(line) for line in (out / "job.jsonl").read_text().splitlines()]
    assert [(e["status"], e["speakers"]) for e in job] == [("done", "on")]


@pytest.mark.slow  # the CLI in its own process
def test_names_map_in_order_of_first_appearance_and_a_new_setting_is_done_again(
    exported_project: Project, tmp_path: Path
):
    out = tmp_path / "out"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(PHRASE_DIALOGUE_WAV, inbox / "interview.wav")
    shutil.copy(PHRASE_WAV, inbox / "alone.wav")  # one voice: one speaker

    first = run_cli(exported_project, str(inbox), "--format", "txt", "--out", str(out))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Speaker" not in (out / "interview.txt").read_text(encoding="utf-8")

    # two recordings: the batch path (localstt/batch.py) with speakers; the names change the outputs,
    # so the job does them again rather than skipping them as done
    named = run_cli(
        exported_project, str(inbox), "--speaker-names", "Ana, Ben", "--format", "txt", "--out", str(out)
    )
    assert named.returncode == 0, named.stderr[-3000:]
    assert "already done" not in named.stdout
    assert (out / "interview-1.txt").read_text(encoding="utf-8") == expected_txt(["Ana", "Ben"])
    assert (out / "alone-1.txt").read_text(encoding="utf-8") == f"Ana: {PHRASE}\n"
    job = [json.loads(line) for line in (out / "job.jsonl").read_text().splitlines()]
    assert [e["speakers"] for e in job] == ["", "", "on: Ana, Ben", "on: Ana, Ben"]

    again = run_cli(
        exported_project, str(inbox), "--speaker-names", "Ana, Ben", "--format", "txt", "--out", str(out)
    )
    assert again.returncode == 0 and "2 of 2 already done" in again.stdout


def test_speakers_without_a_diarizer_in_config_is_one_sentence(exported_project: Project, tmp_path: Path):
    config = tmp_path / "config.toml"
    text = exported_project.config.read_text(encoding="utf-8")
    config.write_text(text[: text.index("[models.sortformer]")], encoding="utf-8")
    config.write_text(
        config.read_text().replace(
            'models_dir = "local_models"', f'models_dir = "{exported_project.models_dir}"'
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "localstt.cli", "--config", str(config), str(PHRASE_WAV), "--speakers"],
        capture_output=True,
        text=True,
        timeout=300,
        env=exported_project.env(),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: Identifying speakers needs a speaker diarizer in {config}; add the [models.sortformer] "
        'table of the shipped config.toml (repo = "nvidia/diar_streaming_sortformer_4spk-v2", kind = '
        '"sortformer") and export it.'
    ]
    diarizer_as_model = run_cli(exported_project, str(PHRASE_WAV), "--model", "sortformer")
    assert diarizer_as_model.returncode == 2
    assert "sortformer (diar_streaming_sortformer_4spk-v2) says who spoke but transcribes nothing" in (
        diarizer_as_model.stderr
    )
