"""Shared pytest fixtures, and the real web app launched on 127.0.0.1 (``launch_app``)."""

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
from hubserver import HubServer, run_hub

from localstt.compat import tarfile_with_extraction_filters

tarfile_with_extraction_filters()  # before any test imports NeMo (its restore_from needs PEP 706)


@pytest.fixture
def hub() -> Iterator[HubServer]:
    """A fake Hugging Face Hub on 127.0.0.1 (see tests/hubserver.py); pass ``endpoint=hub.endpoint``."""
    with run_hub() as server:
        yield server


@pytest.fixture(scope="session")
def tiny_repo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """Files of the three hub repos, made from tiny models of the real classes (built offline)."""
    from store_env import NEMO_NAME, read_folder
    from tiny_models import TINY_PARAKEET_NEMO, build_tiny_canary_repos

    canary_dir, llm_dir = build_tiny_canary_repos(tmp_path_factory.mktemp("tiny-canary"))
    return {
        "parakeet": {NEMO_NAME: TINY_PARAKEET_NEMO.read_bytes()},
        "canary": read_folder(canary_dir),
        "llm": read_folder(llm_dir),
    }


@pytest.fixture
def project(hub: HubServer, tiny_repo_files: dict[str, dict[str, bytes]], tmp_path: Path):  # noqa: ANN201
    """A fresh config.toml (no pins yet) and empty local_models/, with the test hub seeded."""
    from store_env import NEMO_NAME, make_project, seed_hub

    seed_hub(hub, tiny_repo_files["parakeet"][NEMO_NAME], tiny_repo_files["canary"], tiny_repo_files["llm"])
    return make_project(tmp_path / "project", hub)


@pytest.fixture(scope="session")
def exported_project(tiny_repo_files: dict[str, dict[str, bytes]], tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Both tiny models exported once for the whole session, through the real export script."""
    from store_env import NEMO_NAME, make_project, seed_hub

    with run_hub() as server:
        seed_hub(
            server, tiny_repo_files["parakeet"][NEMO_NAME], tiny_repo_files["canary"], tiny_repo_files["llm"]
        )
        project = make_project(tmp_path_factory.mktemp("exported") / "project", server)
        result = project.export()
        assert result.returncode == 0, result.stderr
        yield project


@pytest.fixture(scope="session")
def model_store(exported_project):  # noqa: ANN201
    """A ModelStore in this process over the exported tiny models."""
    import model_loader
    from localstt.config import load_config

    return model_loader.ModelStore(load_config(exported_project.config))


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
) -> RunningApp:
    """Start transcribe_ui.py for `project` (its config.toml unless `config`); returns at once.

    `runner`: a Python script that runs the app (e.g. to watch its sockets); `env`: variables to
    set, or to remove with None.
    """
    from store_env import REPO_ROOT

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    port = free_port()
    log = workdir / "server.log"
    environment = project.env(GRADIO_TEMP_DIR=str(workdir / "gradio"), TMPDIR=str(workdir / "tmp"))
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
