"""A job the user can stop and resume: `transcribe ... --out OUT` with OUT/job.jsonl (localstt/joblog.py,
localstt/cli.py), on the tiny Parakeet."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import srt

import localstt.cli
from localstt.models.parakeet import Parakeet
from localstt.runs.resume import JobEntry, JobLog, remove_unfinished_outputs
from testkit.store_env import Project
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()


def recordings(folder: Path, count: int) -> list[Path]:
    """`count` different recordings of the phrase (each with its own length of silence before it)."""
    speech, rate = sf.read(PHRASE_WAV, dtype="float32")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        path = folder / f"rec{number:02d}.wav"
        sf.write(path, np.concatenate([np.zeros(rate * number // 4, dtype=np.float32), speech]), rate)
        paths.append(path)
    return paths


def small_batches(project: Project, tmp_path: Path) -> Path:
    """The project's config with batches of about two recordings (5 s of audio)."""
    config = project.root / f"batches-{tmp_path.name}.toml"  # beside config.toml: same local_models/
    config.write_text(re.sub(r"(?m)^batch_minutes = .*$", "batch_minutes = 0.09", project.config.read_text()))
    return config


def lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "job.jsonl").read_text().splitlines()]


def count_model_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many recordings the model was given, per call of the family's batch or single run."""
    runs: list[int] = []
    batch, single = Parakeet.transcribe_batch, Parakeet.transcribe

    def counted_batch(self, loaded, audios, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        runs.append(len(audios))
        return batch(self, loaded, audios, *args, **kwargs)

    def counted_single(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        runs.append(1)
        return single(self, *args, **kwargs)

    monkeypatch.setattr(Parakeet, "transcribe_batch", counted_batch)
    monkeypatch.setattr(Parakeet, "transcribe", counted_single)
    return runs


def test_a_rerun_skips_what_is_done_and_redoes_what_changed(
    exported_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    paths = recordings(inbox, 4)
    command = [str(inbox), "--out", str(out), "--format", "txt", "--config", str(exported_project.config)]
    assert localstt.cli.main(command) == 0
    first = lines(out)
    assert sorted(Path(e["input"]).name for e in first) == [p.name for p in paths]
    assert {e["status"] for e in first} == {"done"}
    assert all(e["sha256"] == hashlib.sha256(Path(e["input"]).read_bytes()).hexdigest() for e in first)
    revision = re.search(
        r'(?ms)^\[models\.parakeet\].*?^revision = "(\w+)"', exported_project.config.read_text()
    )
    assert revision and {e["revision"] for e in first} == {revision.group(1)}

    runs = count_model_runs(monkeypatch)
    capsys.readouterr()
    assert localstt.cli.main(command) == 0
    assert runs == []  # nothing transcribed again
    assert "4 of 4 already done" in capsys.readouterr().out
    assert len(lines(out)) == 4

    sf.write(
        paths[2], np.concatenate([sf.read(paths[2], dtype="float32")[0], np.zeros(8000, np.float32)]), 16000
    )
    (out / "rec03.txt").unlink()  # an output that is gone: that recording is done again too
    assert localstt.cli.main(command) == 0
    assert sum(runs) == 2
    redone = lines(out)[4:]
    assert sorted(Path(e["input"]).name for e in redone) == ["rec02.wav", "rec03.wav"]
    assert (out / "rec03.txt").read_text().strip() == PHRASE
    assert (out / "rec02.txt").read_text().strip() == PHRASE  # same text: the same file, kept


def test_a_rerun_with_other_line_controls_redoes_the_subtitles_and_with_the_same_skips(
    exported_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    recordings(inbox, 2)
    command = [str(inbox), "--out", str(out), "--format", "srt", "--config", str(exported_project.config)]
    assert localstt.cli.main(command) == 0
    assert "subtitles" not in lines(out)[0]  # the defaults: lines as before
    runs = count_model_runs(monkeypatch)
    one_line = [*command, "--max-lines-per-cue", "1", "--max-chars-per-line", "12"]
    assert localstt.cli.main(one_line) == 0
    assert sum(runs) == 2  # other line controls: both done again
    assert {e["subtitles"] for e in lines(out)[2:]} == {
        "max_chars=12 max_lines=1 max_duration=7.0 min_gap=0.0"
    }
    redone = {Path(e["input"]).name: e["outputs"] for e in lines(out)[2:]}
    cues = (out / redone["rec00.wav"][0]).read_text(encoding="utf-8").split("\n\n")
    assert all(len(cue.strip().splitlines()) == 3 for cue in cues if cue.strip()), cues  # one text line
    capsys.readouterr()
    assert localstt.cli.main(one_line) == 0
    assert sum(runs) == 2 and "2 of 2 already done" in capsys.readouterr().out  # the same: skipped
    text_only = [str(inbox), "--out", str(tmp_path / "txt"), "--config", str(exported_project.config)]
    assert localstt.cli.main([*text_only, "--format", "txt", "--max-lines-per-cue", "1"]) == 0
    assert localstt.cli.main([*text_only, "--format", "txt"]) == 0
    assert sum(runs) == 4  # a job without subtitles ignores the line controls: the second run skipped both


KILLED_AFTER_LINES = r"""
import os, signal, sys
import localstt.runs.resume

append = localstt.runs.resume.JobLog.append
written = 0

def append_then_die(self, entry):
    global written
    append(self, entry)
    written += 1
    if written == int(os.environ["KILL_AFTER_LINES"]):
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup of any kind, as a power cut or kill -9

localstt.runs.resume.JobLog.append = append_then_die
from localstt.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_job_killed_mid_way_finishes_on_the_rerun_with_every_file_done_once(
    exported_project: Project, tmp_path: Path
):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    paths = recordings(inbox, 9)
    config = small_batches(exported_project, tmp_path)
    driver = tmp_path / "killed_driver.py"
    driver.write_text(textwrap.dedent(KILLED_AFTER_LINES))
    args = [str(inbox), "--out", str(out), "--format", "txt,srt", "--config", str(config)]
    env = exported_project.env(KILL_AFTER_LINES="3")

    killed = subprocess.run(
        [sys.executable, str(driver), *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = lines(out)
    assert len(before) == 3 and {e["status"] for e in before} == {"done"}

    rerun = subprocess.run(
        [sys.executable, "-m", "localstt.cli", *args],
        capture_output=True,
        text=True,
        env=exported_project.env(),
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "3 of 9 already done" in rerun.stdout
    after = lines(out)
    names = [Path(e["input"]).name for e in after]
    assert sorted(names) == [p.name for p in paths]  # every recording exactly once
    assert {e["status"] for e in after} == {"done"}
    for path in paths:
        assert (out / f"{path.stem}.txt").read_text().strip() == PHRASE
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["job.jsonl", *(f"{p.stem}.{ext}" for p in paths for ext in ("txt", "srt"))]
    )


def test_a_manifest_names_the_recordings(exported_project: Project, tmp_path: Path, capsys):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    paths = recordings(inbox, 2)
    manifest = inbox / "list.jsonl"
    manifest.write_text(
        json.dumps({"audio_filepath": paths[0].name, "duration": 3.4, "text": "ignored"})
        + "\n"
        + json.dumps({"audio_filepath": str(paths[1])})
        + "\n"
    )
    args = [
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--format",
        "txt",
        "--config",
        str(exported_project.config),
    ]
    assert localstt.cli.main(args) == 0
    assert sorted(Path(e["input"]).name for e in lines(out)) == ["rec00.wav", "rec01.wav"]

    manifest.write_text('{"path": "a.wav"}\n')
    capsys.readouterr()
    assert localstt.cli.main(args) == 2
    assert capsys.readouterr().err == (
        f'error: {manifest} line 1 is not a JSON object with "audio_filepath"; write one per line, '
        'e.g. {"audio_filepath": "a.wav", "duration": 3.2}.\n'
    )


def test_a_line_cut_short_by_a_kill_is_ignored_and_the_next_starts_on_its_own(tmp_path: Path):
    log = JobLog(tmp_path)
    entry = JobEntry("a.wav", "a" * 64, "parakeet", "c" * 40, "done", outputs=("a.txt",))
    log.append(entry)
    with (tmp_path / "job.jsonl").open("a") as handle:
        handle.write('{"input": "b.wav", "sha2')  # what a kill mid-write leaves
    (tmp_path / "a.txt").write_text("text")
    again = JobLog(tmp_path)
    assert again.entries == [entry]
    assert again.done("a" * 64, "parakeet", "c" * 40) == entry
    assert again.done("a" * 64, "parakeet", "d" * 40) is None  # another commit: to be done again
    again.append(JobEntry("b.wav", "b" * 64, "parakeet", "c" * 40, "failed", error="bad"))
    assert [e.input for e in JobLog(tmp_path).entries] == ["a.wav", "b.wav"]


def test_only_the_killed_runs_own_unclaimed_files_are_removed(tmp_path: Path):
    """A marker names files by content: a file of the same name with other bytes, and a file a line
    claims, are kept; the killed run's unclaimed file (also at a -N name) goes, then the marker."""
    ours, theirs = b'{"text": "ours"}', b'{"text": "the user\'s own"}'
    (tmp_path / "a.json").write_bytes(ours)
    (tmp_path / "a-1.json").write_bytes(ours)
    (tmp_path / "b.json").write_bytes(theirs)
    (tmp_path / "c.json").write_bytes(ours)
    (tmp_path / "a.json.bak").write_bytes(ours)  # not one of a's names
    JobLog(tmp_path).append(JobEntry("c.wav", "c" * 64, "parakeet", "r" * 40, "done", outputs=("c.json",)))
    digest = hashlib.sha256(ours).hexdigest()
    for stem in ("a", "b", "c"):
        marker = tmp_path / f".writing-{stem * 64}.json"
        marker.write_text(json.dumps({"stem": stem, "files": {"json": digest}}))
    (tmp_path / f".writing-{'d' * 64}.json").write_text('{"stem": "d", "fi')  # cut short by a kill

    remove_unfinished_outputs(JobLog(tmp_path))

    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json.bak", "b.json", "c.json", "job.jsonl"]
    assert (tmp_path / "b.json").read_bytes() == theirs


KILLED_WHILE_WRITING = r"""
import os, signal, sys
import localstt.formats

write = localstt.formats._write_new_file
written = 0

def write_then_die(*args, **kwargs):
    global written
    path = write(*args, **kwargs)
    written += 1
    if written == int(os.environ["KILL_AFTER_FILES"]):
        os.kill(os.getpid(), signal.SIGKILL)  # the recording's other file is never written
    return path

localstt.formats._write_new_file = write_then_die
from localstt.cli import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass
class KilledBetweenFiles:
    out: Path
    paths: list[Path]
    before: list[dict]  # job.jsonl after the kill
    after: list[dict]  # and after the rerun
    cut_short: str  # the stem of the recording that had its first file only
    rerun: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def killed_between_files(
    exported_project: Project, tmp_path_factory: pytest.TempPathFactory
) -> KilledBetweenFiles:
    """A job killed after the first of a recording's two files is written (before its second file and
    its line in job.jsonl), then the same command again."""
    tmp_path = tmp_path_factory.mktemp("killed-between-files")
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    paths = recordings(inbox, 6)
    config = small_batches(exported_project, tmp_path)
    driver = tmp_path / "killed_while_writing.py"
    driver.write_text(textwrap.dedent(KILLED_WHILE_WRITING))
    args = [str(inbox), "--out", str(out), "--format", "json,srt", "--config", str(config)]
    # two files a recording: the 5th is the first file of the third recording written
    env = exported_project.env(KILL_AFTER_FILES="5")

    killed = subprocess.run(
        [sys.executable, str(driver), *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = lines(out)
    assert len(before) == 2 and {e["status"] for e in before} == {"done"}
    done = {Path(e["input"]).stem for e in before}
    left = sorted(p.name for p in out.iterdir() if p.name != "job.jsonl" and p.stem not in done)
    markers = [name for name in left if name.startswith(".writing-")]
    half = [name for name in left if name not in markers]
    assert len(half) == 1 and half[0].endswith(".json"), half  # one recording has its first file only
    assert len(markers) == 1, left  # the marker that names it

    rerun = subprocess.run(
        [sys.executable, "-m", "localstt.cli", *args],
        capture_output=True,
        text=True,
        env=exported_project.env(),
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr
    return KilledBetweenFiles(out, paths, before, lines(out), Path(half[0]).stem, rerun)


@pytest.mark.slow  # a kill and a rerun of the command
def test_a_kill_between_a_recordings_files_leaves_no_stray_file(killed_between_files: KilledBetweenFiles):
    job = killed_between_files
    for entry in job.after:
        stem = Path(entry["input"]).stem
        assert entry["outputs"] == [f"{stem}.json", f"{stem}.srt"], entry
    assert sorted(p.name for p in job.out.iterdir()) == sorted(
        ["job.jsonl", *(f"{p.stem}.{ext}" for p in job.paths for ext in ("json", "srt"))]
    )


@pytest.mark.slow  # a kill and a rerun of the command
def test_a_kill_between_a_recordings_files_is_redone_on_the_rerun(killed_between_files: KilledBetweenFiles):
    job = killed_between_files
    assert "2 of 6 already done" in job.rerun.stdout
    assert job.after[:2] == job.before
    assert sorted(Path(e["input"]).name for e in job.after) == [p.name for p in job.paths]  # each once
    assert {e["status"] for e in job.after} == {"done"}
    assert job.cut_short in {Path(e["input"]).stem for e in job.after[2:]}  # the one cut short: again
    for entry in job.after:  # every file the job lists is whole
        json_name, srt_name = entry["outputs"]
        assert json.loads((job.out / json_name).read_text(encoding="utf-8"))["text"] == PHRASE
        cues = list(srt.parse((job.out / srt_name).read_text(encoding="utf-8")))
        assert " ".join(c.content.replace("\n", " ") for c in cues) == PHRASE
