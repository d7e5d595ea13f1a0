"""`transcribe --language` and `--translate-to`: the multilingual model (a tiny Parakeet-TDT of the real
class that knows the phrase in English and German), what each transcript and job line records, and
one sentence for what a model cannot do."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.store_env import REPO_ROOT, Project
from testkit.tiny_models import PHRASE_DE_TXT, PHRASE_DE_WAV, PHRASE_TXT, PHRASE_WAV

pytestmark = pytest.mark.slow  # a command-line process per run, up to three in a test

GERMAN = PHRASE_DE_TXT.read_text(encoding="utf-8").strip()
ENGLISH = PHRASE_TXT.read_text(encoding="utf-8").strip()


def run_cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localstt.cli", "--config", str(project.config), "--local", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=project.env(),
        cwd=REPO_ROOT,
    )


def job_lines(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "job.jsonl").read_text(encoding="utf-8").splitlines()]


def test_a_language_given_is_recorded_and_another_one_is_transcribed_again(
    exported_project: Project, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(PHRASE_DE_WAV, inbox / "german.wav")
    shutil.copy(PHRASE_WAV, inbox / "english.wav")
    out = tmp_path / "out"

    given = run_cli(
        exported_project, str(inbox / "german.wav"), "--model", "parakeet-v3", "--language", "de",
        "--format", "json", "--out", str(out),
    )  # fmt: skip
    assert given.returncode == 0, given.stderr
    transcript = json.loads((out / "german.json").read_text(encoding="utf-8"))
    assert (transcript["text"], transcript["language"]) == (GERMAN, "de")
    assert [(line["status"], line["language"]) for line in job_lines(out)] == [("done", "de")]

    again = run_cli(
        exported_project, str(inbox / "german.wav"), "--model", "parakeet-v3", "--language", "de",
        "--format", "json", "--out", str(out),
    )  # fmt: skip
    assert again.returncode == 0 and "1 of 1 already done" in again.stdout
    assert len(job_lines(out)) == 1

    # Left out, the model hears each language by itself, and says not which: "auto".
    heard = run_cli(
        exported_project, str(inbox), "--model", "parakeet-v3", "--format", "json", "--out", str(out)
    )
    assert heard.returncode == 0, heard.stderr
    assert json.loads((out / "german.json").read_text(encoding="utf-8"))["text"] == GERMAN
    english = json.loads((out / "english.json").read_text(encoding="utf-8"))
    assert (english["text"], english["language"]) == (ENGLISH, "auto")
    assert [line["language"] for line in job_lines(out)] == ["de", "auto", "auto"]


def test_the_english_model_records_english_and_refuses_german_in_one_sentence(
    exported_project: Project, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = run_cli(
        exported_project, str(PHRASE_WAV), "--model", "parakeet", "--format", "json", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "phrase.json").read_text(encoding="utf-8"))["language"] == "en"

    refused = run_cli(
        exported_project,
        str(PHRASE_DE_WAV),
        "--model",
        "parakeet",
        "--language",
        "de",
        "--out",
        str(tmp_path / "no"),
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: parakeet transcribes English, not German; send en or leave the language out."
    )
    assert "Traceback" not in refused.stderr and not (tmp_path / "no" / "job.jsonl").exists()

    translate = run_cli(
        exported_project, str(PHRASE_DE_WAV), "--model", "parakeet-v3", "--translate-to", "en"
    )
    assert translate.returncode == 2
    assert translate.stderr.strip().splitlines()[-1] == (
        "error: parakeet-v3 does not translate; leave the translation out."
    )


def test_help_lists_what_each_model_of_the_config_takes(exported_project: Project) -> None:
    shown = run_cli(exported_project, "--help")
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())  # argparse wraps the help
    assert "parakeet: English;" in text
    assert "parakeet-v3: 25 languages, detected (bg, cs, da, de," in text
    assert "canary-qwen: English" in text
    assert "canary-1b-v2: 25 languages; translates 48 pairs" in text
    assert "(canary-1b-v2 into en, bg, cs," in text  # --translate-to


def test_translate_with_the_model_that_translates(exported_project: Project, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_cli(
        exported_project, str(PHRASE_DE_WAV), "--model", "canary-1b-v2", "--language", "de",
        "--translate-to", "en", "--format", "json,txt", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    transcript = json.loads((out / "phrase-de.json").read_text(encoding="utf-8"))
    assert (transcript["text"], transcript["language"], transcript["translated_to"]) == (ENGLISH, "de", "en")
    assert (out / "phrase-de.txt").read_text(encoding="utf-8") == ENGLISH + "\n"
    (line,) = job_lines(out)
    assert (line["language"], line["translated_to"]) == ("de", "en")

    untold = run_cli(exported_project, str(PHRASE_DE_WAV), "--model", "canary-1b-v2", "--out", str(out))
    assert untold.returncode == 2
    last = untold.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: canary-1b-v2 must be told the spoken language: give one of bg, cs, da, de,"
    )
