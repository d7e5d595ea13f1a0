"""One bad file never costs the others: an unexpected error while doing one file of a multi-file job.

The second of three recordings fails with an error that is not one of the app's own (a RuntimeError
as NeMo raises for a CUDA fault, an OSError from writing its transcript); the first and third are
still transcribed, the user gets one sentence naming the file and the log file, and the traceback is
in the log file (localstt/logfile.py), never in the terminal or the browser.
"""

from __future__ import annotations

import errno
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client, handle_file

import localstt.cli
import localstt.engine
import localstt.formats
from localstt.errors import LoadError
from localstt.logfile import LOG_DIR_ENV
from testkit.app import launch_app
from testkit.store_env import REPO_ROOT, Project, config_on
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
CUDA_MESSAGE = "CUDA error: an illegal memory access was encountered"


def cuda_error() -> RuntimeError:
    return RuntimeError(f"{CUDA_MESSAGE}\nCUDA kernel errors might be asynchronously reported.")


def disk_error() -> OSError:
    return OSError(errno.EIO, "Input/output error")


ERRORS = {  # case: (what raises it, the error, how the sentence names it)
    "RuntimeError in the engine": ("transcribe", cuda_error, f"RuntimeError ({CUDA_MESSAGE} ...)"),
    "OSError writing the files": ("publish_outputs", disk_error, "OSError ([Errno 5] Input/output error)"),
}


def injected_failure(make_error: Callable[[], BaseException]) -> None:
    """Where the injected error is raised (a new one each time): the log's traceback must show this."""
    raise make_error()


def inject(
    monkeypatch: pytest.MonkeyPatch, where: str, make_error: Callable[[], BaseException], names: set[str]
) -> None:
    """Make localstt.engine.transcribe ("transcribe") or localstt.formats.publish_outputs
    ("publish_outputs", which writes a recording's files for the app and the CLI alike) raise
    `make_error()` for the recordings in `names`; the others run as usual.
    A batch (engine.transcribe_together, the CLI's) that holds one of them fails as a whole, as a
    model would; the batch is then done one recording at a time."""
    if where == "transcribe":
        real_transcribe = localstt.engine.transcribe
        real_together = localstt.engine.transcribe_together

        def transcribe(audio: Path, *args: object, **kwargs: object) -> object:
            if Path(audio).name in names:
                injected_failure(make_error)
            return real_transcribe(audio, *args, **kwargs)

        def together(recordings: list[tuple[object, str]], *args: object, **kwargs: object) -> object:
            if any(name in names for _, name in recordings):
                injected_failure(make_error)
            return real_together(recordings, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(localstt.engine, "transcribe", transcribe)
        monkeypatch.setattr(localstt.engine, "transcribe_together", together)
    else:
        real_publish = localstt.formats.publish_outputs
        stems = {Path(name).stem for name in names}

        def publish_outputs(rendered: object, out_dir: Path, stem: str) -> list[Path]:
            if stem in stems:
                injected_failure(make_error)
            return real_publish(rendered, out_dir, stem)  # type: ignore[arg-type]

        monkeypatch.setattr(localstt.formats, "publish_outputs", publish_outputs)


def three_recordings(folder: Path) -> list[Path]:
    """a.wav, b.wav, c.wav (the phrase), each in its own folder as Gradio stores uploads."""
    paths = []
    for name in ("a", "b", "c"):
        path = folder / f"upload-{name}" / f"{name}.wav"
        path.parent.mkdir(parents=True)
        shutil.copyfile(PHRASE_WAV, path)
        paths.append(path)
    return paths


class LogFile:
    """The log file; `new()` is what was appended since this object was made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = path.stat().st_size if path.exists() else 0

    def new(self) -> str:
        assert self.path.is_file(), f"no log file at {self.path}"
        with self.path.open("rb") as handle:
            handle.seek(self.start)
            return handle.read().decode("utf-8")


def assert_traceback_logged(text: str, error_type: str, count: int = 1) -> None:
    assert text.count("Traceback (most recent call last)") == count, text
    assert text.count("in injected_failure") == count, text
    assert f"\n{error_type}: " in text, text


def assert_phrase_files(out: Path, stems: list[str]) -> None:
    for stem in stems:
        assert (out / f"{stem}.txt").read_text(encoding="utf-8").strip() == PHRASE
        assert (out / f"{stem}.srt").is_file()
    assert not list(out.glob("b.*"))


@pytest.mark.parametrize("case", ERRORS)
def test_cli_does_the_other_files_and_logs_the_traceback(
    case: str, exported_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    """localstt.cli.main in this process; the log goes to logs/ beside config.toml (the default)."""
    where, make_error, summary = ERRORS[case]
    monkeypatch.delenv(LOG_DIR_ENV, raising=False)
    log = LogFile(exported_project.config.resolve().parent / "logs" / "localstt.log")
    a, b, c = three_recordings(tmp_path / "in")
    inject(monkeypatch, where, make_error, {"b.wav"})
    out = tmp_path / "out"

    status = localstt.cli.main(
        ["--config", str(exported_project.config), str(a), str(b), str(c), "--out", str(out)]
    )

    captured = capsys.readouterr()
    assert status == 1, captured.err
    failed = [line for line in captured.err.splitlines() if line.startswith("failed: ")]
    assert failed == [f"failed: {b}: unexpected {summary}; details are in {log.path}"]
    assert "Traceback" not in captured.err + captured.out
    assert_phrase_files(out, ["a", "c"])
    assert_traceback_logged(log.new(), summary.split()[0])
    assert f"transcribing {b} with parakeet failed" in log.new()


# The first lines of a runner script: localstt.engine.transcribe fails for b.wav, in that process.
INJECT_IN_PROCESS = r"""
import sys
from pathlib import Path

import localstt.engine

real = localstt.engine.transcribe

def injected_failure(audio, *args, **kwargs):
    if Path(audio).name == "b.wav":
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    return real(audio, *args, **kwargs)

real_together = localstt.engine.transcribe_together

def injected_batch_failure(recordings, *args, **kwargs):
    if any(name == "b.wav" for _, name in recordings):  # a batch with b.wav fails as a whole
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    return real_together(recordings, *args, **kwargs)

localstt.engine.transcribe = injected_failure
localstt.engine.transcribe_together = injected_batch_failure
"""

CLI_RUNNER = (
    "import logging, sys\n"
    "logging.basicConfig(stream=sys.stderr)  # as a library may do: the root logger writes to stderr\n"
    + INJECT_IN_PROCESS
    + "from localstt.cli import main\nsys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.slow  # the CLI in its own process
def test_cli_process_prints_no_traceback_and_honours_the_log_dir(exported_project: Project, tmp_path: Path):
    """The real command in its own process, the root logger writing to stderr, LOCALSTT_LOG_DIR set."""
    runner = tmp_path / "runner.py"
    runner.write_text(CLI_RUNNER, encoding="utf-8")
    a, b, c = three_recordings(tmp_path / "in")
    out, log_dir = tmp_path / "out", tmp_path / "elsewhere" / "logs"
    result = subprocess.run(
        [sys.executable, str(runner), "--config", str(exported_project.config), str(a), str(b), str(c)]
        + ["--format", "txt,srt", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=exported_project.env(**{LOG_DIR_ENV: str(log_dir)}),
        cwd=REPO_ROOT,
    )
    assert result.returncode == 1, result.stderr
    log = log_dir / "localstt.log"
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    assert failed == [f"failed: {b}: unexpected RuntimeError ({CUDA_MESSAGE}); details are in {log}"]
    assert "Traceback" not in result.stderr + result.stdout
    assert_phrase_files(out, ["a", "c"])
    text = log.read_text(encoding="utf-8")
    assert text.count("Traceback (most recent call last)") == 1 and "in injected_failure" in text
    assert f"\nRuntimeError: {CUDA_MESSAGE}" in text


def test_cli_model_that_does_not_load_still_ends_the_run(
    exported_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    """An error about the whole run (the model cannot load) stays fatal: `error: ...`, exit 2."""
    a, b, c = three_recordings(tmp_path / "in")
    inject(
        monkeypatch,
        "transcribe",
        lambda: LoadError("The export of parakeet is damaged."),
        {"b.wav"},
    )
    out = tmp_path / "out"
    # Batches of one recording (each is 3.4 s), so that a is done before b's batch stops the run.
    config = exported_project.root / "one-per-batch.toml"
    config.write_text(
        re.sub(r"(?m)^batch_minutes = .*$", "batch_minutes = 0.06", exported_project.config.read_text())
    )
    status = localstt.cli.main(["--config", str(config), str(a), str(b), str(c), "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.strip().splitlines()[-1] == "error: The export of parakeet is damaged."
    assert "failed: " not in captured.err and "Traceback" not in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["a.srt", "a.txt", "job.jsonl"]  # what was done is kept


@pytest.fixture
def app(transcription_app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """The web app's object, its log in tmp_path/logs (LOCALSTT_LOG_DIR), over the session's store."""
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "logs"))
    return transcription_app()


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    shown: list[str] = []
    monkeypatch.setattr(gr, "Warning", shown.append)
    return shown


@pytest.mark.parametrize("case", ERRORS)
def test_app_job_does_the_other_files_and_warns_once(
    case: str, app, warnings: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    where, make_error, summary = ERRORS[case]
    uploads = three_recordings(tmp_path / "uploads")
    inject(monkeypatch, where, make_error, {"b.wav"})

    text, rows, written, _ = app.transcribe([str(p) for p in uploads], None, "parakeet", ["txt", "srt"])

    log = tmp_path / "logs" / "localstt.log"
    assert warnings == [f"b.wav: unexpected {summary}; details are in {log}"]
    assert text == f"[a.wav]\n{PHRASE}\n\n[c.wav]\n{PHRASE}"
    assert [(row[0], row[3]) for row in rows] == [("a.wav", PHRASE), ("c.wav", PHRASE)]
    assert sorted(Path(p).name for p in written) == ["a.srt", "a.txt", "c.srt", "c.txt"]
    assert_phrase_files(Path(written[0]).parent, ["a", "c"])
    assert_traceback_logged(log.read_text(encoding="utf-8"), summary.split()[0])
    assert not any(p.exists() for p in uploads)  # the job's uploads are deleted, the failed one too


def test_app_job_where_every_file_fails_is_one_error(
    app, warnings: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    uploads = three_recordings(tmp_path / "uploads")
    inject(monkeypatch, "transcribe", cuda_error, {"a.wav", "b.wav", "c.wav"})
    with pytest.raises(gr.Error) as caught:
        app.transcribe([str(p) for p in uploads], None, "parakeet", ["txt"])
    log = tmp_path / "logs" / "localstt.log"
    sentence = f"unexpected RuntimeError ({CUDA_MESSAGE} ...); details are in {log}"
    assert caught.value.message == " ".join(f"{name}: {sentence}" for name in ("a.wav", "b.wav", "c.wav"))
    assert warnings == []
    assert "Traceback" not in caught.value.message
    assert_traceback_logged(log.read_text(encoding="utf-8"), "RuntimeError", count=3)


def test_app_job_model_that_does_not_load_is_still_one_error(
    app, warnings: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    uploads = three_recordings(tmp_path / "uploads")
    inject(
        monkeypatch,
        "transcribe",
        lambda: LoadError("The export of parakeet is damaged."),
        {"b.wav"},
    )
    with pytest.raises(gr.Error) as caught:
        app.transcribe([str(p) for p in uploads], None, "parakeet", ["txt"])
    assert caught.value.message == "The export of parakeet is damaged."
    assert warnings == [] and not (tmp_path / "logs").exists()


def test_ask_with_an_unexpected_error_names_the_log(app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def ask_llm(*args: object, **kwargs: object) -> None:
        injected_failure(cuda_error)

    monkeypatch.setattr(localstt.engine, "ask_llm", ask_llm)
    with pytest.raises(gr.Error) as caught:
        app.ask("canary", PHRASE, "Summarise this transcript.")
    log = tmp_path / "logs" / "localstt.log"
    assert caught.value.message == (
        f"The question could not be answered: unexpected RuntimeError ({CUDA_MESSAGE} ...); "
        f"details are in {log}."
    )
    text = log.read_text(encoding="utf-8")
    assert_traceback_logged(text, "RuntimeError")
    assert "asking canary failed" in text and PHRASE not in text  # the transcript is not logged


SERVER_RUNNER = INJECT_IN_PROCESS + (
    "import runpy\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def drain_warnings(job: object) -> list[str]:
    """The gr.Warning texts the server sent for this job (gradio_client keeps them as status logs)."""
    shown, updates = [], job.communicator.updates  # type: ignore[attr-defined]
    while not updates.empty():
        update = updates.get_nowait()
        log = getattr(update, "log", None)
        if log and log[1] == "warning":
            shown.append(log[0])
    return shown


@pytest.mark.slow  # the app in its own process
def test_web_app_over_http_does_the_other_files(exported_project: Project, tmp_path: Path):
    """The real server (its transcribe wrapped by a runner script, no hook in the app) and
    gradio_client: the job returns two transcripts and one warning; the server prints no traceback."""
    runner = tmp_path / "runner.py"
    runner.write_text(SERVER_RUNNER, encoding="utf-8")
    a, b, c = three_recordings(tmp_path / "in")
    log = tmp_path / "logs" / "localstt.log"
    env = {LOG_DIR_ENV: str(log.parent)}
    config = config_on(exported_project, "cpu")
    with launch_app(exported_project, tmp_path / "app", config=config, runner=runner, env=env) as server:
        client = Client(server.url, verbose=False)
        files = [handle_file(str(p)) for p in (a, b, c)]
        job = client.submit(files, None, "parakeet", ["txt"], api_name="/transcribe")
        text, segments, downloads, _ = job.result(timeout=300)
        shown = drain_warnings(job)
        assert server.process.poll() is None
    assert text == f"[a.wav]\n{PHRASE}\n\n[c.wav]\n{PHRASE}"
    assert [row[0] for row in segments["data"]] == ["a.wav", "c.wav"]
    assert sorted(Path(d).name for d in downloads) == ["a.txt", "c.txt"]
    assert shown == [f"b.wav: unexpected RuntimeError ({CUDA_MESSAGE}); details are in {log}"]
    assert "Traceback" not in server.log.read_text()
    logged = log.read_text(encoding="utf-8")
    assert logged.count("Traceback (most recent call last)") == 1 and "in injected_failure" in logged
    assert PHRASE not in logged  # transcripts never go to the log
