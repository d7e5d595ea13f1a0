"""A job on Ray Data (localstt/ray_job.py) with a local Ray instance, CPU only, and offline.

Each job runs in its own process under testkit/offline.py --allow-loopback, and a sitecustomize.py on
its PYTHONPATH blocks the network the same way in every Python process Ray starts (workers, agents),
so an attempt to leave loopback anywhere lands in the attempts file. Meanwhile the test reads the
sockets of the whole process tree (raylet and gcs_server included) and checks every one is on
127.0.0.1, and at the end that Ray's processes are gone.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf

from localstt.audio import decode_audio
from localstt.errors import AudioError
from localstt.runs.resume import JobEntry
from testkit.store_env import OFFLINE_RUNNER, kill_tree, process_alive, wait_for
from testkit.tiny_models import PHRASE_DIALOGUE_JSON, PHRASE_DIALOGUE_WAV, PHRASE_TXT, PHRASE_WAV

pytest.importorskip("ray")

PHRASE = PHRASE_TXT.read_text().strip()
TESTS = Path(__file__).resolve().parent
RAY_GONE_CEILING_S = 180  # a ceiling, not a goal: Ray's shutdown takes seconds

DRIVER = """
import json, sys
from pathlib import Path

from localstt.errors import LocalSttError
from localstt.runs.ray import run_on_ray

args = json.loads(sys.argv[1])
try:
    results = run_on_ray(
        [Path(p) for p in args["paths"]], "parakeet", ["txt", "json"], Path(args["out"]), args["config"],
        actors=args["actors"], batch_size=4, num_cpus=2,
    )
except LocalSttError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
rows = [
    {"index": r.index, "path": str(r.path), "text": r.transcript.text if r.transcript else None,
     "failure": r.failure, "outputs": [p.name for p in r.outputs], "node": r.ray.node, "pid": r.ray.actor_pid,
     "loads": r.ray.actor_loads, "threads": r.ray.torch_threads}
    for r in results
]
Path(args["report"]).write_text(json.dumps(rows))
"""

# The command itself: `transcribe FILES --ray --actors N` (localstt/cli.py). With HOLD_AFTER_LINES
# set, it stops in its tracks once that many lines are in job.jsonl, Ray still running, to be killed.
CLI_DRIVER = """
import json, os, sys, threading
import localstt.runs.resume
from localstt.cli import main

if os.environ.get("HOLD_AFTER_LINES"):
    append = localstt.runs.resume.JobLog.append
    written = 0

    def append_then_hold(self, entry):
        global written
        append(self, entry)
        written += 1
        if written == int(os.environ["HOLD_AFTER_LINES"]):
            threading.Event().wait()

    localstt.runs.resume.JobLog.append = append_then_hold
sys.exit(main(json.loads(sys.argv[1])))
"""

# Every Python process of the job (the driver and all Ray starts) blocks the network on start-up.
SITECUSTOMIZE = """
import importlib.util, os
if os.environ.get("OFFLINE_ATTEMPTS_FILE"):
    _spec = importlib.util.spec_from_file_location("_offline_guard", {offline!r})
    _guard = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_guard)
    _guard.block_network(allow_loopback=True)
    with open("/proc/self/cmdline", "rb") as _cmdline:
        _command = _cmdline.read().replace(b"\\0", b" ").decode(errors="replace")
    with open(os.environ["OFFLINE_GUARDED_FILE"], "a", encoding="utf-8") as _out:
        _out.write(_command + "\\n")
"""


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """20 recordings of the phrase (different silences before and after it), and one damaged WAV."""
    folder = tmp_path_factory.mktemp("ray-recordings")
    speech, rate = sf.read(PHRASE_WAV, dtype="float32")
    good = []
    for number in range(20):
        before = np.zeros(int(rate * 0.1 * (number % 7)), dtype=np.float32)
        after = np.zeros(int(rate * 0.25 * (number % 4)), dtype=np.float32)
        path = folder / f"phrase-{number:02d}.wav"
        sf.write(path, np.concatenate([before, speech, after]), rate)
        good.append(path)
    damaged = folder / "damaged.wav"
    damaged.write_bytes(PHRASE_WAV.read_bytes()[:44] + b"\xff" * 7 + b"not audio at all" * 50)
    with pytest.raises(AudioError):
        decode_audio(damaged, None)
    return good, damaged


@dataclass
class Job:
    returncode: int
    stderr: str
    rows: list[dict]
    lines: list[JobEntry]
    attempts: list[str]
    guarded: list[str]
    sockets: set[tuple[str, str, str]] = field(default_factory=set)  # (process, local, remote)
    processes: dict[int, psutil.Process] = field(default_factory=dict)  # all seen, Ray's included
    ray_pids: set[int] = field(default_factory=set)
    ray_outlived: list[int] = field(default_factory=list)  # Ray's processes alive long after the job
    actor_pids: set[int] = field(default_factory=set)  # the TranscriberActor pool's processes


def _is_ray(process: psutil.Process) -> bool:
    name = process.name()
    return name in ("raylet", "gcs_server") or " ".join(process.cmdline()).startswith("ray::")


def _watch(root: psutil.Process, job: Job, stop: threading.Event) -> None:
    """Every inet socket of `root` and its descendants, and Ray's processes among them, until `stop`."""
    while not stop.is_set():
        try:
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for process in processes:
            job.processes.setdefault(process.pid, process)
            try:
                if _is_ray(process):
                    job.ray_pids.add(process.pid)
                    if " ".join(process.cmdline()).startswith("ray::MapWorker(MapBatches(TranscriberActor))"):
                        job.actor_pids.add(process.pid)
                name = process.name()
                for conn in process.net_connections(kind="inet"):
                    local = conn.laddr.ip if conn.laddr else ""
                    remote = conn.raddr.ip if conn.raddr else ""
                    job.sockets.add((name, local, remote))
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        stop.wait(0.3)


def run_job(
    exported_project,
    tmp_path: Path,
    paths: list[Path],
    actors: int,
    config: Path | None = None,
    command: bool = False,
    extra: tuple[str, ...] = (),
    hold_after_lines: int = 0,
) -> Job:
    """The driver above (`command`: the CLI with --ray), in its own process with the network blocked,
    watched from here. `hold_after_lines`: the command stops after that many lines of job.jsonl, and
    the whole job (Ray included) is killed from here, as a user or a power cut stops it."""
    out = tmp_path / "out"
    driver = tmp_path / "driver.py"
    driver.write_text(CLI_DRIVER if command else DRIVER, encoding="utf-8")
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        SITECUSTOMIZE.format(offline=str(OFFLINE_RUNNER)), encoding="utf-8"
    )
    attempts, guarded, report = tmp_path / "attempts.log", tmp_path / "guarded.log", tmp_path / "report.json"
    env = exported_project.env(OFFLINE_ATTEMPTS_FILE=str(attempts), OFFLINE_GUARDED_FILE=str(guarded))
    if hold_after_lines:
        env["HOLD_AFTER_LINES"] = str(hold_after_lines)
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    arguments = {
        "paths": [str(p) for p in paths],
        "out": str(out),
        "config": str(config or exported_project.config),
        "actors": actors,
        "report": str(report),
    }
    if command:
        argv = [
            *arguments["paths"],
            "--out",
            str(out),
            "--config",
            arguments["config"],
            "--format",
            "txt,json",
        ]
        arguments = [*argv, "--ray", "--actors", str(actors), *extra]  # type: ignore[assignment]
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w", encoding="utf-8") as err:
        process = subprocess.Popen(
            [sys.executable, str(OFFLINE_RUNNER), "--allow-loopback", str(driver), json.dumps(arguments)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its own process group, Ray's processes in it
        )
    ray_temp_before = set(Path("/tmp").glob("lsr*"))
    job = Job(0, "", [], [], [], [])
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(psutil.Process(process.pid), job, stop), daemon=True)
    watcher.start()
    try:
        if hold_after_lines:
            log = out / "job.jsonl"
            wait_for(
                f"{hold_after_lines} lines in job.jsonl",
                lambda: log.exists() and len(log.read_text().splitlines()) >= hold_after_lines,
                seen=lambda: stderr.read_text()[-3000:],
                process=process,
                timeout=600,
            )
        else:
            process.wait(timeout=600)
            job.ray_outlived = outliving([job.processes[pid] for pid in job.ray_pids], RAY_GONE_CEILING_S)
    finally:
        stop.set()
        watcher.join()
        left = kill_job(process, job)
        if hold_after_lines:  # a killed driver never removes its local Ray's temp folder: do it here
            for folder in set(Path("/tmp").glob("lsr*")) - ray_temp_before:
                shutil.rmtree(folder, ignore_errors=True)
    job.stderr = stderr.read_text()
    assert left == [], f"the job's processes outlived its kill: {left}"
    job.returncode = process.returncode
    job.rows = json.loads(report.read_text()) if report.exists() else []
    log = out / "job.jsonl"
    job.lines = [JobEntry.from_json(line) for line in log.read_text().splitlines()] if log.exists() else []  # type: ignore[misc]
    job.attempts = attempts.read_text().splitlines() if attempts.exists() else []
    job.guarded = guarded.read_text().splitlines() if guarded.exists() else []
    return job


def kill_job(process: subprocess.Popen[bytes], job: Job) -> list[str]:
    """Nothing of the job is left afterwards: its process group is killed, and every process of its
    tree (Ray's daemons included, wherever they went). Returns what is still alive (should be none)."""
    # Safe after the leader is gone too: Linux keeps a group's id while any process is in it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    alive = kill_tree(process, also=job.processes.values())
    process.wait(timeout=60)
    return [f"{p.pid} {' '.join(p.cmdline())[:200]}" for p in alive if process_alive(p)]


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return (mapped or address).is_loopback


def assert_only_loopback(job: Job) -> None:
    names = {name for name, _, _ in job.sockets}
    assert {"raylet", "gcs_server"} <= names, f"the watcher saw no Ray sockets: {sorted(job.sockets)}"
    outside = [s for s in job.sockets if not all(is_loopback(ip) for ip in s[1:] if ip)]
    assert outside == [], f"sockets off loopback: {outside}"
    assert job.attempts == [], job.attempts
    assert any("default_worker.py" in line for line in job.guarded), job.guarded  # workers were guarded


def outliving(processes: list[psutil.Process], ceiling: float) -> list[int]:
    """Waits until none of `processes` runs; the pids of those still running after `ceiling` s."""
    deadline = time.monotonic() + ceiling
    while (alive := [p.pid for p in processes if process_alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def assert_ray_gone(job: Job) -> None:
    """Ray's processes ended by themselves after the job (run_job waited for that, then killed
    whatever was left)."""
    assert job.ray_pids, "no Ray process was seen"
    assert job.ray_outlived == [], f"Ray processes still running {RAY_GONE_CEILING_S} s after the job"


@pytest.mark.slow
@pytest.mark.parametrize("actors", [1, 2])
def test_a_ray_job_transcribes_each_file_once_per_actor_load_and_stays_on_loopback(
    exported_project, recordings, tmp_path: Path, actors: int
):
    good, damaged = recordings
    paths = [*good[:13], damaged, *good[13:]]
    with pytest.raises(AudioError) as caught:
        decode_audio(damaged, None)
    job = run_job(exported_project, tmp_path, paths, actors)
    assert job.returncode == 0, job.stderr[-3000:]
    assert [row["path"] for row in job.rows] == [str(p) for p in paths]  # in input order
    texts = [row["text"] for row in job.rows]
    assert texts == [PHRASE] * 13 + [None] + [PHRASE] * 7
    assert job.rows[13]["failure"] == str(caught.value)
    assert [row["failure"] for i, row in enumerate(job.rows) if i != 13] == [""] * 20
    # As many actors as asked for, each loading the model once (Ray gives a batch to the least busy
    # actor, so with the tiny model one of two may get no batch at all: it still loaded the model).
    assert len(job.actor_pids) == actors, job.actor_pids
    transcribed_by = {row["pid"]: row["loads"] for row in job.rows}
    assert set(transcribed_by) <= job.actor_pids
    assert set(transcribed_by.values()) == {1}
    # Each actor's torch keeps to its share of the 2 CPUs (1 of them, or half of it), not the node's cores.
    assert {row["threads"] for row in job.rows} == {1}
    assert all(row["node"].startswith(socket.gethostname()) for row in job.rows)
    # job.jsonl: one line per file, the outputs of each done one in OUT.
    assert len(job.lines) == 21
    assert sorted(entry.input for entry in job.lines) == sorted(str(p) for p in paths)
    by_input = {entry.input: entry for entry in job.lines}
    assert by_input[str(damaged)].status == "failed"
    assert by_input[str(damaged)].error == str(caught.value)
    for path in good:
        entry = by_input[str(path)]
        assert entry.status == "done"
        assert entry.outputs == (f"{path.stem}.txt", f"{path.stem}.json")
        assert (tmp_path / "out" / f"{path.stem}.txt").read_text().strip() == PHRASE
    assert_only_loopback(job)
    assert_ray_gone(job)


def test_a_node_without_the_export_fails_the_job_with_one_sentence_naming_it(
    exported_project, recordings, tmp_path: Path
):
    empty = tmp_path / "empty-models"
    empty.mkdir()
    text = exported_project.config.read_text()
    assert 'models_dir = "local_models"' in text
    config = tmp_path / "config.toml"
    config.write_text(text.replace('models_dir = "local_models"', f'models_dir = "{empty}"', 1))
    good, _ = recordings
    job = run_job(exported_project, tmp_path, good[:3], 1, config=config, command=True)
    assert job.returncode == 2, job.stderr[-3000:]
    error = [line for line in job.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1, job.stderr[-3000:]
    assert error[0].startswith(f"error: on node {socket.gethostname()} (127.0.0.1): parakeet is not exported")
    assert re.search(r"`uv run python export_models\.py .*parakeet` once to export it\.$", error[0]), error[0]
    assert job.lines == []  # nothing was claimed done
    assert job.attempts == []
    assert_ray_gone(job)


@pytest.mark.slow
def test_the_command_with_ray_does_the_good_files_and_names_the_bad_one(
    exported_project, recordings, tmp_path: Path
):
    good, damaged = recordings
    paths = [good[0], damaged, good[1], good[2]]
    job = run_job(exported_project, tmp_path, paths, 1, command=True)
    assert job.returncode == 1, job.stderr[-3000:]
    failed = [line for line in job.stderr.splitlines() if line.startswith("failed: ")]
    with pytest.raises(AudioError) as caught:
        decode_audio(damaged, None)
    assert failed == [f"failed: {damaged}: {caught.value}"]
    assert sorted((e.input, e.status) for e in job.lines) == sorted(
        [(str(p), "failed" if p == damaged else "done") for p in paths]
    )
    for path in (good[0], good[1], good[2]):
        assert (tmp_path / "out" / f"{path.stem}.txt").read_text().strip() == PHRASE
    assert job.attempts == []
    assert_only_loopback(job)
    assert_ray_gone(job)


@pytest.mark.slow
def test_the_command_with_ray_names_the_speakers(exported_project, recordings, tmp_path: Path):
    good, _ = recordings
    truth = json.loads(PHRASE_DIALOGUE_JSON.read_text(encoding="utf-8"))
    job = run_job(
        exported_project,
        tmp_path,
        [PHRASE_DIALOGUE_WAV, good[0]],
        1,
        command=True,
        extra=("--speaker-names", "Ana,Ben"),
    )
    assert job.returncode == 0, job.stderr[-3000:]
    names = ["Ana", "Ben"]
    want = "".join(f"{names[t['speaker']]}: {t['text']}\n\n" for t in truth).rstrip("\n") + "\n"
    assert (tmp_path / "out" / "phrase-dialogue.txt").read_text(encoding="utf-8") == want
    assert (tmp_path / "out" / f"{good[0].stem}.txt").read_text(encoding="utf-8") == f"Ana: {PHRASE}\n"
    assert {entry.speakers for entry in job.lines} == {"on: Ana, Ben"}
    assert job.attempts == []
    assert_only_loopback(job)
    assert_ray_gone(job)


@pytest.mark.slow  # Ray, twice
def test_a_stopped_ray_job_resumes_with_every_file_done_once(exported_project, recordings, tmp_path: Path):
    """docs/usage.md: "a stopped `--ray` job resumes like any other". The command is stopped after
    three recordings are in job.jsonl, and the whole job killed (Ray's daemons with it); the same
    command again does the rest."""
    good, _ = recordings
    paths = good[:8]
    stopped = run_job(exported_project, tmp_path, paths, 1, command=True, hold_after_lines=3)
    assert stopped.returncode == -signal.SIGKILL, stopped.stderr[-3000:]
    assert stopped.ray_pids, "Ray was not running when the job was stopped"
    assert [entry.status for entry in stopped.lines] == ["done"] * 3

    resumed = run_job(exported_project, tmp_path, paths, 1, command=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.lines[:3] == stopped.lines  # what was done stays done
    assert sorted(entry.input for entry in resumed.lines) == sorted(str(p) for p in paths)  # each once
    assert {entry.status for entry in resumed.lines} == {"done"}
    for path in paths:
        assert (tmp_path / "out" / f"{path.stem}.txt").read_text().strip() == PHRASE
        assert json.loads((tmp_path / "out" / f"{path.stem}.json").read_text())["text"] == PHRASE
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["job.jsonl", *(f"{p.stem}.{ext}" for p in paths for ext in ("txt", "json"))]
    )
    assert resumed.attempts == []
    assert_ray_gone(resumed)
