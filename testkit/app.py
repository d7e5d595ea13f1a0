"""The real web app (transcribe_ui.py) started as its own process on 127.0.0.1, for tests and
benchmarks: `launch_app(project, workdir)` serves for the length of a `with` block."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from testkit import overlap
from testkit.store_env import REPO_ROOT

SPY_FILE = "overlap.json"  # in the app's workdir: what the spy on the model counted


@dataclass
class RunningApp:
    """transcribe_ui.py running as its own process; GRADIO_TEMP_DIR and TMPDIR are its own folders."""

    url: str
    process: subprocess.Popen[str]
    upload_dir: Path
    tmp_dir: Path
    log: Path

    def audio_left_behind(self) -> list[Path]:
        return [p for p in self.upload_dir.rglob("*") if p.suffix in {".wav", ".flac", ".mp3", ".ogg"}]

    def files(self) -> set[Path]:
        """Every file the app has in its upload folder and its temp folder."""
        return {p for root in (self.upload_dir, self.tmp_dir) for p in root.rglob("*") if not p.is_dir()}

    def memory_kb(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) of the server process, in kB."""
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
        return fields

    def model_runs(self) -> overlap.Overlap:
        """The model's forward passes so far and the most that ran at once, for an app started with
        `spy_on_model` (all zero otherwise)."""
        return overlap.read(self.log.parent / SPY_FILE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(
    project,  # noqa: ANN001
    workdir: Path,
    *args: str,
    config: Path | None = None,
    runner: Path | None = None,
    env: dict[str, str | None] | None = None,
    spy_on_model: bool = False,
) -> RunningApp:
    """Start transcribe_ui.py for `project` (its config.toml unless `config`); returns at once.

    `runner`: a Python script that runs the app (e.g. to watch its sockets); `env`: variables to
    set, or to remove with None. `spy_on_model`: the app runs with testkit/overlap.py's spy (a
    `runner` of the caller's then calls `overlap.install()` before it runs the app).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    port = free_port()
    log = workdir / "server.log"
    environment = project.env(GRADIO_TEMP_DIR=str(workdir / "gradio"), TMPDIR=str(workdir / "tmp"))
    if spy_on_model:
        environment.update(overlap.app_env(workdir / SPY_FILE))
        if runner is None:
            runner = workdir / "spied_runner.py"
            runner.write_text(overlap.RUNNER, encoding="utf-8")
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    command = [sys.executable, *([str(runner)] if runner else []), str(REPO_ROOT / "transcribe_ui.py")]
    command += ["--config", str(config or project.config)]
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
            text=True,
        )
    return RunningApp(f"http://127.0.0.1:{port}/", process, workdir / "gradio", workdir / "tmp", log)


def wait_until_serving(app: RunningApp, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert app.process.poll() is None, app.log.read_text()
        try:
            if httpx.get(app.url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"the app did not start within {timeout} s:\n" + app.log.read_text())


def stop_app(app: RunningApp) -> None:
    if app.process.poll() is None:
        app.process.terminate()
        try:
            app.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.process.kill()
            app.process.wait(timeout=30)


@contextmanager
def launch_app(project, workdir: Path, *args: str, **options: object) -> Iterator[RunningApp]:  # noqa: ANN001
    """The app serving on 127.0.0.1 for the duration of the block (stopped afterwards); the
    keyword options are start_app's."""
    app = start_app(project, workdir, *args, **options)  # type: ignore[arg-type]
    try:
        wait_until_serving(app)
        yield app
    finally:
        stop_app(app)
