"""A throwaway project (config.toml + local_models/) wired to the test hub, and ways to run its scripts."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil

from testkit.hubserver import HubServer
from testkit.tiny_models import (
    CANARY_1B_V2_REPO_ID,
    CANARY_REPO_ID,
    PARAKEET_REPO_ID,
    PARAKEET_V3_REPO_ID,
    QWEN_REPO_ID,
    SORTFORMER_REPO_ID,
    TINY_CANARY_1B_V2_NEMO,
    TINY_PARAKEET_V3_NEMO,
    TINY_SORTFORMER_NEMO,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
OFFLINE_RUNNER = Path(__file__).resolve().parent / "offline.py"
NEMO_NAME = "parakeet-tdt-0.6b-v2.nemo"
NEMO_V3_NAME = "parakeet-tdt-0.6b-v3.nemo"
SORTFORMER_NEMO_NAME = "diar_streaming_sortformer_4spk-v2.nemo"


T = TypeVar("T")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_for(
    what: str,
    ready: Callable[[], T],
    *,
    timeout: float = 300,
    seen: Callable[[], object] | None = None,
    process: subprocess.Popen[Any] | None = None,
) -> T:
    """Poll `ready` until it returns something true, and return that. The ceiling is generous and
    fails the test loudly, naming `what` and, from `seen`, what there was instead; so does the end
    of `process` (the one that was to make it happen) before it."""
    deadline = time.monotonic() + timeout
    while not (value := ready()):
        ended = process is not None and process.poll() is not None
        if ended or time.monotonic() > deadline:
            import pytest  # here: the benchmarks use this module without pytest

            why = f"not within {timeout:g} s"
            if ended and process is not None:
                why = f"the process ended first (exit status {process.returncode})"
            pytest.fail(f"{what}: {why}; seen: {seen() if seen else value!r}")
        time.sleep(0.02)
    return value


def as_in_a_terminal() -> None:
    """`preexec_fn` for a child that a test sends Ctrl-C: SIGINT at its default, as a program started
    in a terminal has it. A test run started in the background (`cmd &` without job control) passes
    SIGINT down as ignored, and Python then installs no KeyboardInterrupt handler at all: every Ctrl-C
    would be lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_tree(
    root: subprocess.Popen[Any], also: Iterable[psutil.Process] = (), timeout: float = 60
) -> list[psutil.Process]:
    """SIGKILL `root`, every descendant it has and the processes `also` (e.g. daemons seen in its tree
    that have left it since), children first, and wait for them. Returns those still running.

    Processes are psutil's, which know a reused pid: nothing but the tree's own is ever signalled."""
    processes: dict[int, psutil.Process] = {}
    for process in [*also, *_alive_tree(root.pid)]:
        if process_alive(process):
            processes.setdefault(process.pid, process)
            for child in _children(process):
                processes.setdefault(child.pid, child)
    for process in reversed(list(processes.values())):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    if root.poll() is None:
        root.kill()
    root.wait(timeout=timeout)
    _, alive = psutil.wait_procs(list(processes.values()), timeout=timeout)
    return [p for p in alive if process_alive(p)]


def _alive_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return []
    return [root, *_children(root)]


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def process_alive(process: psutil.Process) -> bool:
    """Whether `process` still runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextlib.contextmanager
def console_as_an_entry_point() -> Iterator[None]:
    """The package's messages on the console (stdout, warnings on stderr) as the entry points show
    them (localstt.logfile.log_to_console), in this process for the block only."""
    from localstt.logfile import CONSOLE_LOGGER, log_to_console

    logger = logging.getLogger(CONSOLE_LOGGER)
    handlers, level = list(logger.handlers), logger.level
    log_to_console()
    try:
        yield
    finally:
        for handler in [h for h in logger.handlers if h not in handlers]:
            logger.removeHandler(handler)
        logger.setLevel(level)


def read_folder(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def seed_hub(hub: HubServer, nemo: bytes, canary: dict[str, bytes], llm: dict[str, bytes]) -> None:
    """The six repos as the real hub lays them out, each with an older commit under main (the
    speaker diarizer's holds the tiny Sortformer)."""
    readme = b"# model card\n"
    for repo, files in (
        (PARAKEET_REPO_ID, {NEMO_NAME: nemo, "README.md": readme}),
        (PARAKEET_V3_REPO_ID, {NEMO_V3_NAME: TINY_PARAKEET_V3_NEMO.read_bytes(), "README.md": readme}),
        (
            CANARY_1B_V2_REPO_ID,
            {"canary-1b-v2.nemo": TINY_CANARY_1B_V2_NEMO.read_bytes(), "README.md": readme},
        ),
        (SORTFORMER_REPO_ID, {SORTFORMER_NEMO_NAME: TINY_SORTFORMER_NEMO.read_bytes(), "README.md": readme}),
        (CANARY_REPO_ID, {**canary, "README.md": readme}),
        # The LLM repo also holds weights that a correct export must never fetch.
        (QWEN_REPO_ID, {**llm, "model.safetensors": os.urandom(300_000), "README.md": readme}),
    ):
        hub.add_commit(repo, {"README.md": b"# first draft\n"})
        hub.add_commit(repo, files)


@dataclass
class Project:
    root: Path
    hub: HubServer

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def models_dir(self) -> Path:
        return self.root / "local_models"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
        env.update(
            HF_ENDPOINT=self.hub.endpoint,
            HF_HOME=str(self.root / "hf-home"),
            # No HF_HUB_DISABLE_TELEMETRY: the scripts must turn telemetry off themselves.
            HF_HUB_DOWNLOAD_TIMEOUT="5",
            # after these, the caller's own (a site folder of packages the machine lacks, for one)
            PYTHONPATH=os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def export_cmd(self, *args: str) -> list[str]:
        return [sys.executable, str(REPO_ROOT / "export_models.py"), "--config", str(self.config), *args]

    def export(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.export_cmd(*args), capture_output=True, text=True, timeout=timeout, env=self.env(**env)
        )

    def run_offline(
        self, script: str, *args: str, timeout: float = 300, config: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a Python snippet with every internet socket blocked; attempts go to blocked.log.
        $LOCALSTT_CONFIG is the project's config.toml, or `config`."""
        path = self.root / "snippet.py"
        path.write_text(script, encoding="utf-8")
        log = self.root / "blocked.log"
        log.unlink(missing_ok=True)
        return subprocess.run(
            [sys.executable, str(OFFLINE_RUNNER), str(path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(OFFLINE_ATTEMPTS_FILE=str(log), LOCALSTT_CONFIG=str(config or self.config)),
            cwd=self.root,
        )

    def blocked_attempts(self) -> list[str]:
        log = self.root / "blocked.log"
        return log.read_text().splitlines() if log.exists() else []


def config_on(project: Project, device: str, *, in_place: bool = False) -> Path:
    """A copy of the project's config.toml beside it (the same local_models/) whose [runtime] says
    `device = "<device>"`: a test that means "on the CPU" says so, whatever the machine has.
    `in_place`: config.toml itself says so from now on."""
    text, changed = re.subn(
        r'(?m)^device = "\w*"$', f'device = "{device}"', project.config.read_text(encoding="utf-8"), count=1
    )
    assert changed == 1, "config.toml has no `device = ...` line in [runtime]"
    path = project.config if in_place else project.root / f"config-{device}.toml"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def publish_crafted_export(project: Project, archive: bytes, revision: str) -> None:
    """A parakeet export whose manifest matches `archive`, as if the hub itself had published it."""
    from localstt.manifest import FileRecord, Manifest

    export_dir = project.models_dir / "parakeet"
    export_dir.mkdir(parents=True)
    (export_dir / NEMO_NAME).write_bytes(archive)
    pinned = project.config.read_text().replace('revision = ""', f'revision = "{revision}"', 1)
    project.config.write_text(pinned)
    manifest = Manifest(
        key="parakeet",
        kind="nemo-asr",
        repo=PARAKEET_REPO_ID,
        revision=revision,
        files=(FileRecord(NEMO_NAME, len(archive), sha256(archive), "crafted"),),
    )
    (export_dir / "manifest.json").write_text(manifest.to_json())


def make_project(root: Path, hub: HubServer, pins: dict[str, str] | None = None) -> Project:
    """A copy of the shipped config.toml with its comments, models_dir inside `root`."""
    text = (REPO_ROOT / "config.toml").read_text(encoding="utf-8")
    for needle, value in (pins or {}).items():
        text = text.replace(needle, value, 1)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text(text, encoding="utf-8")
    return Project(root, hub)
