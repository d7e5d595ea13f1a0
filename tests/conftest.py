"""Shared pytest fixtures (the pieces they are made of are in testkit/), the `gpu` and `slow`
markers, the fast tier's bound, and the check that the suite leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from localstt.compat import tarfile_with_extraction_filters
from testkit import simulated_gpu
from testkit.hubserver import HubServer, run_hub

tarfile_with_extraction_filters()  # before any test imports NeMo (its restore_from needs PEP 706)

# gradio_client keeps every file it downloads, in GRADIO_TEMP_DIR (read when it is imported, so set
# here, before any test module imports it), else in <tmp>/gradio: the suite's own folder, removed at
# the end of the session. The app processes the tests start get their own (testkit/app.py).
DOWNLOADS_PREFIX = "localstt-suite-downloads-"
DOWNLOADS = Path(tempfile.mkdtemp(prefix=DOWNLOADS_PREFIX))
os.environ["GRADIO_TEMP_DIR"] = str(DOWNLOADS)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(DOWNLOADS, ignore_errors=True)  # also after a run in which no test ran


# --------------------------------------------------------------------------- markers and tiers

# An unmarked test whose call takes longer than this fails the fast tier (`-m "not slow"`). The
# slowest fast tests take about 12 s on 2 cores, up to about 19 s with two other test runs beside
# them: 30 s leaves a busy machine its margin, and a new test that needs more belongs in the slow tier.
FAST_TIER_BOUND_S = float(os.environ.get("LOCALSTT_FAST_TIER_BOUND_S", "30"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needs_gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not needs_gpu:
        return
    import torch  # only when a test needs a GPU

    card = simulated_gpu.active()
    if card is not None:
        reason = f"needs a CUDA GPU: this one ({card.name}) is simulated, no kernel runs on it"
    elif not torch.cuda.is_available():
        reason = "needs a CUDA GPU: torch.cuda.is_available() is False on this machine"
    else:
        return
    for item in needs_gpu:
        item.add_marker(pytest.mark.skip(reason=reason))


def in_fast_tier(config: pytest.Config) -> bool:
    return "not slow" in (config.getoption("markexpr", "") or "")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if (
        call.when == "call"
        and report.passed
        and in_fast_tier(item.config)
        and item.get_closest_marker("slow") is None
        and call.duration > FAST_TIER_BOUND_S
    ):
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} took {call.duration:.1f} s, over the fast tier's bound of "
            f"{FAST_TIER_BOUND_S:g} s: mark it @pytest.mark.slow (and name a fast test of its promise in "
            "docs/development.md), or make it faster."
        )


# --------------------------------------------------------------------------- nothing left behind

SESSION_ENV = "LOCALSTT_TEST_SESSION"  # every process the suite starts inherits it
RAY_DAEMONS = ("raylet", "gcs_server", "plasma_store")
# In the temp folders. Gradio's own cache folders there (<tmp>/gradio/<hash>) are not counted: the
# suite's processes use their own GRADIO_TEMP_DIR, and other programs on the machine use that one.
TEMP_PATTERNS = ("localstt-*", "lsr*", "gradio/localstt-out-*")
LEFTOVER_WAIT_S = 60.0  # processes and threads stopped at the end may take a moment to be gone


def library_thread(thread: threading.Thread) -> bool:
    """A library's one thread per process, which it keeps until the interpreter exits: tqdm's
    monitor (started with the first progress bar shown, e.g. by NeMo's transcribe)."""
    from tqdm._monitor import TMonitor

    return isinstance(thread, TMonitor)


def temp_folders() -> set[Path]:
    """The suite's kinds of temp folder, but for the download folders of test runs (each run removes
    its own at its end; another run's may be there meanwhile)."""
    roots = {Path(tempfile.gettempdir()), Path("/tmp")}
    found = {path for root in roots for pattern in TEMP_PATTERNS for path in root.glob(pattern)}
    return {path for path in found if not path.name.startswith(DOWNLOADS_PREFIX)}


def session_processes(token: str) -> list[psutil.Process]:
    """Processes of this session other than this one: its children, and anything that carries its
    token in its environment (also once its parent is gone, as Ray's daemons are)."""
    me = psutil.Process()
    found = {child.pid: child for child in me.children(recursive=True)}
    for process in psutil.process_iter():
        try:
            if process.pid != me.pid and process.environ().get(SESSION_ENV) == token:
                found[process.pid] = process
        except (psutil.Error, OSError):
            continue
    return [p for p in found.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def another_session_runs(token: str) -> bool:
    """Whether another test run (its processes carry another token) is on the machine now."""
    for process in psutil.process_iter():
        try:
            if process.environ().get(SESSION_ENV, token) != token:
                return True
        except (psutil.Error, OSError):
            continue
    return False


def held_by_another_session(paths: set[Path], token: str) -> set[Path]:
    """Those of `paths` that a live process of another test run names (its Ray, say)."""
    held = set()
    for process in psutil.process_iter():
        try:
            if process.environ().get(SESSION_ENV) == token:
                continue
            command = " ".join(process.cmdline())
        except (psutil.Error, OSError):
            continue
        held |= {path for path in paths if str(path) in command}
    return held


def is_ray_daemon(process: psutil.Process) -> bool:
    try:
        return process.name() in RAY_DAEMONS
    except psutil.Error:
        return False


def describe(process: psutil.Process) -> str:
    try:
        what = f"{process.pid} {' '.join(process.cmdline())[:200] or process.name()}"
    except psutil.Error:
        what = f"{process.pid} (gone)"
    return f"{what} {after(process.pid)}"


LEFT_BY: dict[object, str] = {}  # a thread, a process id or a temp folder: the test it appeared in


def after(thing: object) -> str:
    return f"(new after {LEFT_BY[thing]})" if thing in LEFT_BY else "(new in a fixture)"


@pytest.fixture(autouse=True)
def note_what_each_test_leaves(request: pytest.FixtureRequest) -> Iterator[None]:
    """Notes what is new after each test, so that a leftover at the end can name its test."""
    me = psutil.Process()
    threads, folders, children = set(threading.enumerate()), temp_folders(), set(me.children(True))
    yield
    new = [*(set(threading.enumerate()) - threads), *(temp_folders() - folders)]
    new += [child.pid for child in set(me.children(True)) - children]
    for thing in new:
        LEFT_BY.setdefault(thing, request.node.nodeid)


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """At the end of the session: no thread that was not there at its start, no process it started
    (a child, or one that carries its token: Ray's daemons), no temp folder of the suite's. A temp
    folder cannot be told apart as this run's while another test run shares the machine: then those
    found are named in a warning instead."""
    token = uuid.uuid4().hex
    os.environ[SESSION_ENV] = token
    threads = set(threading.enumerate())
    folders = temp_folders()
    shared = another_session_runs(token)
    yield
    shutil.rmtree(DOWNLOADS, ignore_errors=True)
    deadline = time.monotonic() + LEFTOVER_WAIT_S
    while True:
        processes = session_processes(token)
        ray = [p for p in processes if is_ray_daemon(p)]
        new = temp_folders() - folders
        stray = new - held_by_another_session(new, token)
        left: dict[str, list[str]] = {
            "threads": [
                f"{t!r} {after(t)}"
                for t in threading.enumerate()
                if t not in threads and t.is_alive() and not library_thread(t)
            ],
            "processes": [describe(p) for p in processes if p not in ray],
            "Ray daemons": [describe(p) for p in ray],
            "temp folders": sorted(f"{p} {after(p)}" for p in stray),
        }
        if not any(left.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if left["temp folders"] and (shared or another_session_runs(token)):
        found = ", ".join(left.pop("temp folders"))
        stray = set()  # nor removed: they may be in use
        message = f"another test run shared the machine, so these temp folders may be its own: {found}"
        warnings.warn(pytest.PytestWarning(message), stacklevel=1)
    if any(left.values()):
        for process in session_processes(token):
            process.kill()
        for folder in stray:
            shutil.rmtree(folder, ignore_errors=True)
        found = "; ".join(f"{kind}: {', '.join(items)}" for kind, items in left.items() if items)
        pytest.fail(f"the suite left behind, {LEFTOVER_WAIT_S:g} s after its last test: {found}")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def hub() -> Iterator[HubServer]:
    """A fake Hugging Face Hub on 127.0.0.1 (see testkit/hubserver.py); pass ``endpoint=hub.endpoint``."""
    with run_hub() as server:
        yield server
        if "huggingface_hub" in sys.modules:  # the test used the client in this process
            from huggingface_hub.utils import close_session

            close_session()  # its shared connections: the hub's threads serving them end


@pytest.fixture(scope="session")
def tiny_repo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """Files of the three hub repos, made from tiny models of the real classes (built offline)."""
    from testkit.store_env import NEMO_NAME, read_folder
    from testkit.tiny_models import TINY_PARAKEET_NEMO, build_tiny_canary_repos

    canary_dir, llm_dir = build_tiny_canary_repos(tmp_path_factory.mktemp("tiny-canary"))
    return {
        "parakeet": {NEMO_NAME: TINY_PARAKEET_NEMO.read_bytes()},
        "canary": read_folder(canary_dir),
        "llm": read_folder(llm_dir),
    }


@pytest.fixture
def project(hub: HubServer, tiny_repo_files: dict[str, dict[str, bytes]], tmp_path: Path):  # noqa: ANN201
    """A fresh config.toml (no pins yet) and empty local_models/, with the test hub seeded."""
    from testkit.store_env import NEMO_NAME, make_project, seed_hub

    seed_hub(hub, tiny_repo_files["parakeet"][NEMO_NAME], tiny_repo_files["canary"], tiny_repo_files["llm"])
    return make_project(tmp_path / "project", hub)


@pytest.fixture(scope="session")
def exported_project(tiny_repo_files: dict[str, dict[str, bytes]], tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Both tiny models exported once for the whole session, through the real export script; its
    config.toml then says device = "cpu", which the tests that use it mean (on a GPU machine too)."""
    from testkit.store_env import NEMO_NAME, config_on, make_project, seed_hub

    with run_hub() as server:
        seed_hub(
            server, tiny_repo_files["parakeet"][NEMO_NAME], tiny_repo_files["canary"], tiny_repo_files["llm"]
        )
        project = make_project(tmp_path_factory.mktemp("exported") / "project", server)
        result = project.export()
        assert result.returncode == 0, result.stderr
        config_on(project, "cpu").replace(project.config)
        yield project


@pytest.fixture(scope="session")
def model_store(exported_project):  # noqa: ANN201
    """A ModelStore in this process over the exported tiny models, on the CPU (its config says so)."""
    from localstt.config import load_config
    from localstt.store import ModelStore

    return ModelStore(load_config(exported_project.config))


@pytest.fixture
def transcription_app(model_store, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Makes the web app's object in this process over the session's store and its config (its folders
    in tmp_path; keyword arguments are TranscriptionApp's), and closes each one after the test: its
    sweeper thread stopped, its outputs removed."""
    from localstt.web.app import TranscriptionApp

    made: list[TranscriptionApp] = []

    def make(**options: Any) -> TranscriptionApp:
        options = {"upload_root": tmp_path / "uploads", **options}
        app = TranscriptionApp(model_store.config, tmp_path / "outputs", **options)
        app.store = model_store
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()
