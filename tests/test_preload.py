"""Ready before the user is: config.toml's [app] preload loads a model in the background at start.

In process (a TranscriptionApp over a fresh store, the family's real `load` wrapped to count and to
hold it) and over HTTP against the real app, which is asked nothing but its status.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from gradio_client import Client

from localstt import cli
from localstt.config import load_config
from localstt.errors import ConfigError, ExportError
from localstt.models import family_for
from localstt.store import ModelStore
from localstt.web.app import TranscriptionApp
from localstt.web.status import status_markdown
from testkit.app import launch_app
from testkit.store_env import NEMO_NAME, Project
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
READY = "parakeet: ready on cpu (float32)"


def with_preload(project: Project, folder: Path, preload: str | None) -> Path:
    """A copy of the project's config.toml beside it (same local_models/) with `preload = ...`, or
    without the line when `preload` is None."""
    text = re.sub(r"(?m)^preload = .*\n", "", project.config.read_text())
    if preload is not None:
        text = text.replace("[app]\n", f"[app]\npreload = {preload}\n", 1)
    config = project.root / f"preload-{folder.name}.toml"
    config.write_text(text, encoding="utf-8")
    return config


MADE: list[TranscriptionApp] = []  # closed after each test (close_the_apps)


def make_app(config: Path, tmp_path: Path) -> TranscriptionApp:
    settings = load_config(config)
    assert settings.runtime.device == "cpu"  # READY's "on cpu" is what the config asks for, GPU or not
    app = TranscriptionApp(settings, tmp_path / "outputs", upload_root=tmp_path / "uploads")
    MADE.append(app)
    return app


@pytest.fixture(autouse=True)
def close_the_apps() -> Iterator[None]:
    """Every app a test made is closed after it: its outputs' sweeper thread stopped."""
    yield
    while MADE:
        MADE.pop().close()


class LoadSpy:
    """The parakeet family's real `load`, counted; `hold()` makes it wait until `release()`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
        self.family = family_for(kind)
        self.real = self.family.load
        self.calls = 0
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        monkeypatch.setattr(self.family, "load", self.load)

    def load(self, *args: Any) -> tuple[Any, str]:
        self.calls += 1
        self.entered.set()
        assert self.gate.wait(300)
        return self.real(*args)

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()


@pytest.fixture
def spy(exported_project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoadSpy]:
    spy = LoadSpy(monkeypatch, load_config(exported_project.config).model("parakeet").kind)
    try:
        yield spy
    finally:
        spy.release()  # a test that failed while holding the load leaves no thread waiting on it


class Progress:
    """What gr.Progress is called with, and an event once a description contains `waiting_for`."""

    def __init__(self, waiting_for: str) -> None:
        self.said: list[str] = []
        self.waiting_for = waiting_for
        self.heard = threading.Event()

    def __call__(self, fraction: float, desc: str | None = None) -> None:
        self.said.append(desc or "")
        if self.waiting_for in (desc or ""):
            self.heard.set()


def upload(tmp_path: Path, name: str = "phrase.wav") -> str:
    (tmp_path / "uploads").mkdir(parents=True, exist_ok=True)
    return str(shutil.copy(PHRASE_WAV, tmp_path / "uploads" / name))


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


# --------------------------------------------------------------------------- the setting


def test_preload_defaults_to_the_first_model_and_names_only_models(exported_project: Project, tmp_path: Path):
    shipped = load_config(exported_project.config)
    assert shipped.app.preload == ("parakeet",)  # the shipped config.toml says so
    assert load_config(with_preload(exported_project, tmp_path / "absent", None)).app.preload == ("parakeet",)
    assert load_config(with_preload(exported_project, tmp_path / "off", "[]")).app.preload == ()
    unknown = with_preload(exported_project, tmp_path / "unknown", '["whisper"]')
    with pytest.raises(ConfigError) as caught:
        load_config(unknown)
    assert str(caught.value) == (
        f"[app] preload in {unknown} names 'whisper', which is not a model there; "
        "use one of: parakeet, parakeet-v3, canary-qwen, canary-1b-v2, sortformer."
    )
    for value in ('"parakeet"', "[1]"):
        with pytest.raises(ConfigError, match=r"must be a list of model keys"):
            load_config(with_preload(exported_project, tmp_path / "not-a-list", value))
    both = with_preload(exported_project, tmp_path / "both", '["parakeet", "canary-qwen"]')
    with pytest.raises(ConfigError, match=r"keep_all_loaded = false keeps only one loaded"):
        load_config(both)
    kept = both.read_text().replace("keep_all_loaded = false", "keep_all_loaded = true")
    both.write_text(kept)
    assert load_config(both).app.preload == ("parakeet", "canary-qwen")
    # the speaker diarizer is loaded beside a transcription model, so it may join one
    beside = with_preload(exported_project, tmp_path / "beside", '["parakeet", "sortformer"]')
    assert load_config(beside).runtime.keep_all_loaded is False
    assert load_config(beside).app.preload == ("parakeet", "sortformer")


# --------------------------------------------------------------------------- in process


def test_preload_loads_the_model_without_any_request(exported_project: Project, spy: LoadSpy, tmp_path: Path):
    app = make_app(exported_project.config, tmp_path)
    assert app.store.loaded("parakeet") is None and READY not in status_markdown(app.store)
    thread = app.start_preload(after_server=False)
    assert thread is not None
    thread.join(300)
    loaded = app.store.loaded("parakeet")
    assert loaded is not None and loaded.model is not None and spy.calls == 1
    status = status_markdown(app.store)
    assert f"**{READY}**" in status and "| loaded on cpu (float32) |" in status
    assert app.store.loaded("canary-qwen") is None


def test_a_job_during_the_warm_up_waits_for_that_same_load(
    exported_project: Project, spy: LoadSpy, tmp_path: Path
):
    app = make_app(exported_project.config, tmp_path)
    spy.hold()
    app.start_preload(after_server=False)
    assert spy.entered.wait(300)  # the warm-up is in the family's load, held there
    assert "**loading parakeet… loading weights (" in status_markdown(app.store)
    progress = Progress("waiting for the model")
    job, outcome = in_thread(lambda: app.transcribe([upload(tmp_path)], None, "parakeet", ["txt"], progress))
    assert progress.heard.wait(120), progress.said  # the job says it waits for the model...
    assert spy.calls == 1  # ...and started no load of its own
    spy.release()
    job.join(300)
    assert "error" not in outcome, outcome
    text, rows, written, status = outcome["result"]
    assert text == PHRASE and [row[3] for row in rows] == [PHRASE]
    assert Path(written[0]).read_text(encoding="utf-8").strip() == PHRASE
    assert spy.calls == 1  # one load for the warm-up and the job together
    assert "phrase.wav: waiting for the model: parakeet is loading (loading weights)" in progress.said
    assert f"**{READY}**" in status


def test_a_failed_warm_up_shows_its_sentence_and_the_next_job_gets_it(
    exported_project: Project, spy: LoadSpy, tmp_path: Path
):
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(exported_project.config, copy / "config.toml")
    shutil.copytree(exported_project.models_dir, copy / "local_models")
    nemo = copy / "local_models" / "parakeet" / NEMO_NAME
    nemo.write_bytes(nemo.read_bytes()[: nemo.stat().st_size // 2])
    app = make_app(copy / "config.toml", tmp_path)
    thread = app.start_preload(after_server=False)
    assert thread is not None
    thread.join(300)
    state = app.store.load_state("parakeet")
    assert state.phase == "failed" and app.store.loaded("parakeet") is None
    with pytest.raises(ExportError) as direct:
        ModelStore(app.store.config).load("parakeet")
    sentence = str(direct.value)
    assert state.error == sentence and sentence.count(".") >= 1 and "\n" not in sentence
    assert f"**parakeet could not be loaded: {sentence}**" in status_markdown(app.store)
    with pytest.raises(gr.Error) as caught:
        app.transcribe([upload(tmp_path)], None, "parakeet", ["txt"])
    assert caught.value.message == sentence
    assert spy.calls == 0  # the damaged export never reached NeMo


def test_a_job_that_waited_for_a_failed_load_gets_its_error_without_loading_again(
    exported_project: Project, spy: LoadSpy, tmp_path: Path
):
    """The load fails after its checks (the family's LoadError): the waiting job gets that sentence."""
    from localstt.errors import LoadError

    app = make_app(exported_project.config, tmp_path)
    spy.hold()

    def failing(*args: Any) -> tuple[Any, str]:
        spy.calls += 1
        spy.entered.set()
        assert spy.gate.wait(300)
        raise LoadError("The model could not be loaded: the test says so; run the export again.")

    spy.family.load = failing  # type: ignore[method-assign]  # (monkeypatch restores the real one)
    app.start_preload(after_server=False)
    assert spy.entered.wait(300)
    progress = Progress("waiting for the model")
    job, outcome = in_thread(lambda: app.transcribe([upload(tmp_path)], None, "parakeet", ["txt"], progress))
    assert progress.heard.wait(120), progress.said
    spy.release()
    job.join(300)
    assert isinstance(outcome.get("error"), gr.Error), outcome
    assert (
        outcome["error"].message == "The model could not be loaded: the test says so; run the export again."
    )
    assert spy.calls == 1
    assert "could not be loaded: The model could not be loaded" in status_markdown(app.store)


def test_preload_off_loads_nothing_until_a_job_asks(exported_project: Project, spy: LoadSpy, tmp_path: Path):
    app = make_app(with_preload(exported_project, tmp_path / "off", "[]"), tmp_path)
    assert app.start_preload(after_server=False) is None  # no thread at all
    assert app.store.loaded("parakeet") is None and spy.calls == 0
    status = status_markdown(app.store)
    assert "ready on" not in status and "loading" not in status
    assert "| parakeet |" in status and "exported, not loaded" in status
    text, _, _, status = app.transcribe([upload(tmp_path)], None, "parakeet", ["txt"])
    assert text == PHRASE and spy.calls == 1 and f"**{READY}**" in status


def test_picking_the_other_model_after_the_warm_up_switches(
    exported_project: Project, spy: LoadSpy, tmp_path: Path
):
    app = make_app(exported_project.config, tmp_path)
    assert not app.store.config.runtime.keep_all_loaded
    thread = app.start_preload(after_server=False)
    assert thread is not None
    thread.join(300)
    assert app.store.loaded("parakeet") is not None
    text, _, _, status = app.transcribe([upload(tmp_path)], None, "canary-qwen", ["txt"])
    assert text.strip()  # the tiny Canary-Qwen's words (random weights): something, not a phrase
    assert app.store.loaded("parakeet") is None and app.store.loaded("canary-qwen") is not None
    assert "**canary-qwen: ready on cpu (float32)**" in status and READY not in status
    assert "loading" not in status


def test_the_cli_loads_the_model_while_the_first_file_decodes(
    exported_project: Project, spy: LoadSpy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The first file's decoding does not return until the model's load has begun: without the
    overlap this would never happen (the load would wait for the decoding) and the test would fail."""
    import localstt.engine

    decode = localstt.engine.decode_audio
    overlapped: list[bool] = []

    def decode_after_the_load_began(*args: Any, **kwargs: Any) -> Any:
        overlapped.append(spy.entered.wait(120))
        return decode(*args, **kwargs)

    monkeypatch.setattr(localstt.engine, "decode_audio", decode_after_the_load_began)
    monkeypatch.setattr("localstt.store._default_store", None)  # a fresh store: this test counts loads
    out = tmp_path / "out"
    code = cli.main([str(PHRASE_WAV), "--config", str(exported_project.config), "--out", str(out)])
    assert code == 0 and spy.calls == 1 and overlapped == [True]
    assert (out / "phrase.txt").read_text(encoding="utf-8").strip() == PHRASE


def test_the_cli_still_stops_with_one_line_when_the_model_cannot_load(
    exported_project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(exported_project.config, copy / "config.toml")
    shutil.copytree(exported_project.models_dir / "parakeet", copy / "local_models" / "parakeet")
    nemo = copy / "local_models" / "parakeet" / NEMO_NAME
    nemo.write_bytes(nemo.read_bytes()[:1000])
    monkeypatch.setattr("localstt.store._default_store", None)
    code = cli.main([str(PHRASE_WAV), "--config", str(copy / "config.toml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "parakeet" in lines[0] and "Traceback" not in err


# --------------------------------------------------------------------------- the real app, over HTTP


def status_over_http(client: Client) -> str:
    markdown, _timer = client.predict(api_name="/status")
    return str(markdown)


@pytest.fixture
def served(exported_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")  # gradio_client here: no telemetry thread
    assert load_config(exported_project.config).runtime.device == "cpu"  # as READY says
    with launch_app(exported_project, tmp_path / "app") as app:
        yield Client(app.url, verbose=False)


@pytest.mark.slow
def test_the_app_gets_ready_by_itself(served: Client):
    """Nothing but the status is asked; the warm-up loads parakeet and the status says so."""
    seen = [status_over_http(served)]
    deadline = time.monotonic() + 300
    while READY not in seen[-1] and "could not be loaded" not in seen[-1] and time.monotonic() < deadline:
        time.sleep(0.5)
        seen.append(status_over_http(served))
    assert f"**{READY}**" in seen[-1], seen[-1]
    assert "| parakeet |" in seen[-1] and "loaded on cpu (float32)" in seen[-1]


class FirstRunSpy:
    """The family's real `first_run`, counted, with what the status said and the model calls it made."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, family: Any, app: TranscriptionApp) -> None:
        self.real, self.app = family.first_run, app
        self.statuses: list[str] = []
        self.model_calls = 0
        self.held_lock: list[bool] = []
        monkeypatch.setattr(family, "first_run", self.first_run)

    def first_run(self, loaded: Any) -> None:
        self.statuses.append(status_markdown(self.app.store))
        self.held_lock.append(loaded.lock.locked())
        model_transcribe = loaded.model.transcribe

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.model_calls += 1
            return model_transcribe(*args, **kwargs)

        loaded.model.transcribe = counted
        try:
            self.real(loaded)
        finally:
            del loaded.model.transcribe


def test_the_warm_up_runs_the_model_once_before_calling_it_ready(
    exported_project: Project, spy: LoadSpy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    app = make_app(exported_project.config, tmp_path)
    first = FirstRunSpy(monkeypatch, spy.family, app)
    thread = app.start_preload(after_server=False)
    assert thread is not None
    thread.join(300)
    (said,) = first.statuses
    assert "**loading parakeet… a first run, on a second of quiet (" in said and READY not in said
    assert first.held_lock == [True] and first.model_calls == 1  # the real model ran, lock held
    assert f"**{READY}**" in status_markdown(app.store)
    text, rows, written, status = app.transcribe([upload(tmp_path)], None, "parakeet", ["txt"], Progress(""))
    assert text == PHRASE and spy.calls == 1 and len(first.statuses) == 1  # no second load or first run
    # a load that a job asks for (no warm-up) makes no first run: the job itself is the first
    ModelStore(load_config(exported_project.config)).load("parakeet")
    assert spy.calls == 2 and len(first.statuses) == 1


def test_a_failed_first_run_leaves_the_model_ready_for_the_job(
    exported_project: Project, spy: LoadSpy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def first_run(loaded: Any) -> None:
        raise RuntimeError("no kernel image is available for execution on the device")

    monkeypatch.setattr(spy.family, "first_run", first_run)
    app = make_app(exported_project.config, tmp_path)
    thread = app.start_preload(after_server=False)
    assert thread is not None
    thread.join(300)
    assert f"**{READY}**" in status_markdown(app.store)
    text, *_ = app.transcribe([upload(tmp_path)], None, "parakeet", ["txt"], Progress(""))
    assert text == PHRASE and spy.calls == 1
