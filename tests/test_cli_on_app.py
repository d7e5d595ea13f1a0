"""`transcribe` with the app running: the app's warm model does the work, the command line never
imports NeMo, and what it writes is what it writes in-process (localstt/runs/on_app.py,
localstt/web/openai_api/jobs.py). The real app, started here with the tiny models."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from testkit.app import RunningApp, launch_app
from testkit.store_env import Project
from testkit.tiny_models import PHRASE_DE_WAV, PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
KEY = "cli-test-key"
pytestmark = pytest.mark.slow

# The command line in a process of its own, then whether that process imported NeMo or torch.
DRIVER = """
import sys
from localstt.cli import main
status = main(sys.argv[1:])
heavy = sorted({name.split(".")[0] for name in sys.modules if name.split(".")[0] in ("nemo", "torch")})
print("IMPORTED", ",".join(heavy) or "nothing heavy", file=sys.stderr)
sys.exit(status)
"""

# The app, made to stop dead when its second batch comes (as if it were closed mid-job).
DIES_ON_SECOND_BATCH = """
import os, runpy, sys
from localstt.web.openai_api import jobs

calls = []
original = jobs.JobRoutes._results

def results(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        os._exit(1)
    yield from original(self, *args, **kwargs)

jobs.JobRoutes._results = results
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def app_config(project: Project, folder: Path, batch_minutes: float = 10) -> Path:
    """A copy of the project's config.toml (the same models) for one app and its command lines."""
    text = project.config.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^batch_minutes = .*$", f"batch_minutes = {batch_minutes}", text)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(
        text.replace('models_dir = "local_models"', f'models_dir = "{project.models_dir}"'), "utf-8"
    )
    return path


def cli(
    project: Project, config: Path, out: Path, *args: str, key: str | None = KEY
) -> subprocess.CompletedProcess[str]:
    env = project.env()
    env.pop("LOCALSTT_API_KEY", None)
    if key is not None:
        env["LOCALSTT_API_KEY"] = key
    command = [sys.executable, "-c", DRIVER, "--config", str(config), "--out", str(out), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=project.root)


def recordings(folder: Path) -> list[Path]:
    """The phrase, the phrase after a second of quiet (another recording, not a copy), and a text file
    named .wav."""
    folder.mkdir(parents=True, exist_ok=True)
    speech, rate = sf.read(PHRASE_WAV, dtype="int16")
    paths = [folder / "first.wav", folder / "second.wav"]
    shutil.copy(PHRASE_WAV, paths[0])
    sf.write(paths[1], np.concatenate([np.zeros(rate, np.int16), speech]), rate, subtype="PCM_16")
    damaged = folder / "notes.wav"
    damaged.write_text("These are my meeting notes, not a recording.\n" * 20, encoding="utf-8")
    return [paths[0], damaged, paths[1]]


def job_lines(out: Path) -> list[dict]:
    lines = [json.loads(line) for line in (out / "job.jsonl").read_text(encoding="utf-8").splitlines()]
    for line in lines:
        line.pop("finished_at")
    return sorted(lines, key=lambda line: line["input"])


def without_times(json_text: str) -> dict:
    data = json.loads(json_text)
    data.pop("timings", None)
    return data


@pytest.fixture(scope="module")
def served(
    exported_project: Project, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningApp, Path]]:
    folder = tmp_path_factory.mktemp("cli-on-app")
    config = app_config(exported_project, folder)
    with launch_app(
        exported_project, folder / "app", "--api-key", KEY, config=config, spy_on_model=True
    ) as app:
        yield app, config


def test_the_running_app_does_the_work_and_the_files_are_those_made_here(
    served: tuple[RunningApp, Path], exported_project: Project, tmp_path: Path
):
    app, config = served
    inputs = [str(p) for p in recordings(tmp_path / "in")]
    before = app.model_runs().calls
    rules = tmp_path / "rules.txt"  # the job's own options travel with it: a replacement rule here
    rules.write_text("lazy dog => sleepy dog\n", encoding="utf-8")
    job = ("--format", "txt,srt,json", "--replace", str(rules))
    through_app = cli(exported_project, config, tmp_path / "app-out", *inputs, *job, "--server", app.url)
    assert through_app.returncode == 1, through_app.stderr  # the damaged file
    assert f"transcribing with the app at {app.url.rstrip('/')}" in through_app.stderr
    assert "IMPORTED nothing heavy" in through_app.stderr  # no NeMo, no torch in the command line
    failed = [line for line in through_app.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 1 and "notes.wav" in failed[0] and "not an audio file" in failed[0]
    assert app.model_runs().calls > before  # the app's model ran

    here = cli(exported_project, config, tmp_path / "here-out", *inputs, *job, "--local")
    assert here.returncode == 1 and "IMPORTED nemo,torch" in here.stderr
    assert [line for line in here.stderr.splitlines() if line.startswith("failed: ")] == failed
    made = sorted(p.name for p in (tmp_path / "app-out").iterdir())
    assert made == sorted(p.name for p in (tmp_path / "here-out").iterdir())
    assert {"first.txt", "first.srt", "first.json", "second.txt", "job.jsonl"} <= set(made)
    for name in made:
        mine, theirs = (tmp_path / "app-out" / name).read_text(), (tmp_path / "here-out" / name).read_text()
        if name.endswith(".json"):
            assert without_times(mine) == without_times(theirs), name
        elif name != "job.jsonl":
            assert mine == theirs, name
    app_lines, here_lines = job_lines(tmp_path / "app-out"), job_lines(tmp_path / "here-out")
    for line in (*app_lines, *here_lines):
        line["outputs"] = [Path(p).name for p in line["outputs"]]
    assert app_lines == here_lines
    assert (tmp_path / "app-out" / "first.txt").read_text().strip() == PHRASE.replace(
        "lazy dog", "sleepy dog"
    )

    # Again: what was done is skipped, and the app's model does not run for it.
    runs = app.model_runs().calls
    again = cli(exported_project, config, tmp_path / "app-out", *inputs, *job, "--server", app.url)
    assert "2 of 3 already done" in again.stdout and again.returncode == 1
    assert app.model_runs().calls == runs


def test_the_app_is_found_from_config_toml_and_a_wrong_key_is_one_sentence(
    served: tuple[RunningApp, Path], exported_project: Project, tmp_path: Path
):
    app, config = served
    port = app.url.rstrip("/").rsplit(":", 1)[1]
    found = tmp_path / "config.toml"
    text = config.read_text(encoding="utf-8")
    found.write_text(re.sub(r"(?m)^port = \d+$", f"port = {port}", text), encoding="utf-8")
    # Another config.toml (a copy, even of the same settings) is not the app's: the job runs here.
    other = cli(exported_project, found, tmp_path / "other", str(PHRASE_WAV))
    assert other.returncode == 0, other.stderr
    assert f"transcribing here: the app at http://127.0.0.1:{port} serves {config}" in other.stderr
    # The app's own config.toml, with [app]'s port: found by itself.
    config.write_text(re.sub(r"(?m)^port = \d+$", f"port = {port}", text), encoding="utf-8")
    try:
        same = cli(exported_project, config, tmp_path / "same", str(PHRASE_WAV))
        assert same.returncode == 0 and f"transcribing with the app at http://127.0.0.1:{port}" in same.stderr
        wrong = cli(exported_project, config, tmp_path / "wrong", str(PHRASE_WAV), key="not-the-key")
        assert wrong.returncode == 0  # found by itself: a refusal means the job runs here, said so
        assert "transcribing here: the app at" in wrong.stderr and "set LOCALSTT_API_KEY" in wrong.stderr
        named = cli(
            exported_project, config, tmp_path / "named", str(PHRASE_WAV), "--server", app.url, key="no"
        )
        assert named.returncode == 2
        errors = [line for line in named.stderr.splitlines() if line.startswith("error: ")]
        assert errors == [
            f"error: The app at {app.url.rstrip('/')} wants its API key: set LOCALSTT_API_KEY to it."
        ]
        assert "Traceback" not in named.stderr
    finally:
        config.write_text(text, encoding="utf-8")


def test_an_app_that_stops_mid_job_is_one_line_and_the_rerun_finishes_here(
    exported_project: Project, tmp_path: Path
):
    config = app_config(exported_project, tmp_path / "dies", batch_minutes=0.01)  # a batch per file
    runner = tmp_path / "dies_on_second_batch.py"
    runner.write_text(DIES_ON_SECOND_BATCH, encoding="utf-8")
    inputs = [str(p) for p in recordings(tmp_path / "in") if p.name != "notes.wav"]
    out = tmp_path / "out"
    with launch_app(
        exported_project, tmp_path / "app", "--api-key", KEY, config=config, runner=runner
    ) as app:
        first = cli(exported_project, config, out, *inputs, "--server", app.url)
        assert app.process.wait(timeout=60) == 1  # it died on the second batch
    assert first.returncode == 2, first.stderr
    errors = [line for line in first.stderr.splitlines() if line.startswith("error: ")]
    assert (
        len(errors) == 1 and "stopped answering mid-job" in errors[0] and "run the same command" in errors[0]
    )
    assert len(job_lines(out)) == 1  # the first batch's recording is done and recorded
    rerun = cli(exported_project, config, out, *inputs)
    assert rerun.returncode == 0, rerun.stderr
    assert "transcribing here: no app answers at http://127.0.0.1:7860" in rerun.stderr
    assert "1 of 2 already done" in rerun.stdout
    assert [line["status"] for line in job_lines(out)] == ["done", "done"]


def test_a_translation_travels_to_the_app_with_its_languages(
    served: tuple[RunningApp, Path], exported_project: Project, tmp_path: Path
):
    app, config = served
    out = tmp_path / "out"
    job = ("--model", "canary-1b-v2", "--language", "de", "--translate-to", "en", "--format", "json")
    done = cli(exported_project, config, out, str(PHRASE_DE_WAV), *job, "--server", app.url)
    assert done.returncode == 0, done.stderr
    assert "IMPORTED nothing heavy" in done.stderr  # the app's model did it
    transcript = json.loads((out / "phrase-de.json").read_text(encoding="utf-8"))
    assert (transcript["text"], transcript["language"], transcript["translated_to"]) == (PHRASE, "de", "en")
    (line,) = job_lines(out)
    assert (line["language"], line["translated_to"]) == ("de", "en")
