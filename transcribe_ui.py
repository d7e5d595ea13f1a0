"""The web app: upload or record, pick a model, get a transcript, segments and subtitle files.

    uv run python transcribe_ui.py [--host 127.0.0.1] [--port 7860] [--auth user:password] [--share]

All transcription happens in localstt.engine; this file only wires it to Gradio.

What a job leaves behind: its uploads are deleted when it ends (also on error); its transcript files
live in one folder inside Gradio's upload folder (so Gradio serves them without a second copy) and
are deleted `--keep-outputs-minutes` after the job, and the rest when the app stops.
"""

from __future__ import annotations

import localstt.offline  # noqa: F401,I001  # first: the hub libraries are offline before they are imported
from localstt import environment

environment.no_gradio_analytics()  # before gradio: no calls to api.gradio.app

import argparse  # noqa: E402
import contextlib  # noqa: E402
import ipaddress  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from localstt.config import AppConfig, ConfigError, load_config  # noqa: E402
from localstt.errors import LocalSttError  # noqa: E402
from localstt.logfile import log_to_console  # noqa: E402
from localstt.manifest import human_size  # noqa: E402
from localstt.models import family_for  # noqa: E402
from localstt.store import ModelStore  # noqa: E402

FORMATS = ["txt", "srt", "vtt", "json"]
SEGMENT_HEADERS = ["file", "start", "end", "text"]
UPLOAD_GONE = (
    "this upload is no longer on the server: uploads are deleted as soon as a transcription that "
    "used them ends (Gradio stores identical files once, so also someone else's); add the file again."
)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:06.3f}" if hours else f"{minutes}:{secs:06.3f}"


def status_markdown(store: ModelStore) -> str:
    lines = ["| model | repo @ pinned commit | on disk | state |", "|---|---|---|---|"]
    for row in store.status():
        commit = row.revision[:12] or "not pinned yet"
        state = f"loaded on {row.device}" if row.loaded else ("ready" if row.exported else row.message)
        size = human_size(row.size_on_disk) if row.exported else "-"
        lines.append(f"| {row.key} | {row.repo} @ {commit} | {size} | {state} |")
    return "\n".join(lines)


def gradio_upload_folder() -> Path:
    """Where Gradio stores uploads (and serves files from): GRADIO_TEMP_DIR, else <tmp>/gradio."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def _remove_uploads(paths: Sequence[str], upload_root: Path, keep: Path) -> None:
    """Delete a job's uploaded files, and the per-upload folder Gradio made for each once it is empty.

    Only files inside Gradio's upload folder are touched (the paths come from the client), and never
    the app's own output folder inside it.
    """
    root = Path(os.path.realpath(upload_root))
    for path in paths:
        upload = Path(os.path.abspath(path))
        folder = Path(os.path.realpath(upload.parent))
        if not folder.is_relative_to(root) or folder.is_relative_to(os.path.realpath(keep)):
            continue
        with contextlib.suppress(OSError):
            upload.unlink(missing_ok=True)
        if folder != root:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty


def recordings_component(**kwargs: Any) -> Any:
    """gr.File for the uploads, handing the stored paths over as they are.

    gr.File's own preprocess (Gradio 6.31, type="filepath") also opens a NamedTemporaryFile in the
    upload folder for every file and leaves it there, empty and untracked: one stray file per upload
    for the life of the server. The instance gets a preprocess without that (a subclass would make
    Gradio write a .pyi stub beside this file at import).
    """
    import gradio as gr
    from gradio.data_classes import FileData, ListFiles
    from gradio.utils import NamedString

    component = gr.File(**kwargs)

    def preprocess(payload: ListFiles | FileData | None) -> list[str] | None:
        if payload is None:
            return None
        files = payload.root if isinstance(payload, ListFiles) else [payload]
        return [NamedString(file.path) for file in files]  # type: ignore[no-untyped-call]

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


class TranscriptionApp:
    """Holds the store and the options; each method is one UI event."""

    def __init__(
        self,
        config: AppConfig,
        output_root: Path | None = None,
        *,
        upload_root: Path | None = None,
        keep_outputs_s: float = 600.0,
        max_queue: int = 16,
    ) -> None:
        from localstt.engine import TranscribeOptions

        self.store = ModelStore(config)
        self.options = TranscribeOptions.from_config(config)
        self.upload_root = upload_root or gradio_upload_folder()
        if output_root is None:
            self.upload_root.mkdir(parents=True, exist_ok=True)
            output_root = Path(tempfile.mkdtemp(prefix="localstt-out-", dir=self.upload_root))
        self.output_root = output_root
        self.keep_outputs_s = keep_outputs_s
        self.max_queue = max_queue
        self._sweeper: threading.Thread | None = None
        self._running: set[str] = set()  # names of the job folders still being written
        self._jobs_lock = threading.Lock()

    def remove_old_outputs(self) -> None:
        """Delete the folders of jobs that ended more than `keep_outputs_s` ago (never a running one)."""
        cutoff = time.time() - self.keep_outputs_s
        with self._jobs_lock:
            for job_dir in self.output_root.glob("job-*"):
                with contextlib.suppress(OSError):
                    if job_dir.name not in self._running and job_dir.stat().st_mtime < cutoff:
                        shutil.rmtree(job_dir)

    def _start_job(self) -> Path:
        with self._jobs_lock:
            self.output_root.mkdir(parents=True, exist_ok=True)  # a temp-folder cleaner may have removed it
            job_dir = Path(tempfile.mkdtemp(prefix="job-", dir=self.output_root))
            self._running.add(job_dir.name)
        return job_dir

    def _end_job(self, job_dir: Path) -> None:
        with self._jobs_lock:
            self._running.discard(job_dir.name)
            with contextlib.suppress(OSError):
                os.utime(job_dir)  # the folder's age counts from the end of its job

    def _start_sweeper(self) -> None:
        """One background thread that removes old job folders even when no new job comes."""
        if self._sweeper is not None:
            return
        interval = min(60.0, max(0.5, self.keep_outputs_s / 2))

        def sweep() -> None:
            while True:
                time.sleep(interval)
                self.remove_old_outputs()

        self._sweeper = threading.Thread(target=sweep, name="remove-old-outputs", daemon=True)
        self._sweeper.start()

    def transcribe(
        self,
        files: list[str] | None,
        recording: str | None,
        model_key: str,
        formats: list[str] | None,
        progress: Any = None,
    ) -> tuple[str, list[list[Any]], list[str], str]:
        import gradio as gr

        from localstt.jobs import transcribe_file
        from localstt.logfile import report_unexpected

        inputs = [*(files or []), *([recording] if recording else [])]
        if not inputs:
            raise gr.Error("Add a recording first: upload a file or record with the microphone.")
        self.remove_old_outputs()
        self._start_sweeper()
        try:
            job_dir = self._start_job()
        except OSError as error:
            _remove_uploads(inputs, self.upload_root, self.output_root)
            sentence = report_unexpected(error, "making a job folder", self.store.config.path)
            raise gr.Error(f"Could not start the job: {sentence}.") from None
        texts: list[str] = []
        rows: list[list[Any]] = []
        written: list[str] = []
        failures: list[str] = []
        try:
            for index, path in enumerate(inputs):
                name = Path(path).name

                def report(fraction: float, message: str, index: int = index, name: str = name) -> None:
                    if progress is not None:
                        progress((index + fraction) / len(inputs), desc=f"{name}: {message}")

                if not Path(path).exists():
                    failures.append(f"{name}: {UPLOAD_GONE}")
                    continue
                try:
                    result = transcribe_file(
                        Path(path),
                        model_key,
                        self.options,
                        self.store,
                        formats or ["srt"],
                        job_dir,
                        name=name,
                        progress=report,
                    )
                except LocalSttError as error:  # the whole job: the model is not usable
                    raise gr.Error(str(error)) from None
                if result.transcript is None:
                    failures.append(f"{name}: {result.failure}")
                    continue
                written += [str(p) for p in result.written]
                header = f"[{name}]\n" if len(inputs) > 1 else ""
                texts.append(header + result.transcript.text)
                rows += [[name, _clock(s.start), _clock(s.end), s.text] for s in result.transcript.segments]
        finally:
            _remove_uploads(inputs, self.upload_root, self.output_root)
            self._end_job(job_dir)
        if failures and not texts:
            raise gr.Error(" ".join(failures))
        for failure in failures:
            gr.Warning(failure)
        return "\n\n".join(texts), rows, written, status_markdown(self.store)

    def ask(self, model_key: str, transcript_text: str, question: str) -> tuple[str, str]:
        import gradio as gr

        from localstt.engine import ask_llm
        from localstt.logfile import report_unexpected

        if not transcript_text.strip():
            raise gr.Error("Transcribe something first; the question is asked about the transcript.")
        try:
            answer = ask_llm(self.store, model_key, transcript_text, question)
        except LocalSttError as error:
            raise gr.Error(str(error)) from None
        except Exception as error:
            sentence = report_unexpected(error, f"asking {model_key}", self.store.config.path)
            raise gr.Error(f"The question could not be answered: {sentence}.") from None
        return answer.answer, answer.thinking

    def build(self) -> Any:
        import gradio as gr

        keys = list(self.store.config.models)
        llm_keys = [
            k for k, spec in self.store.config.models.items() if family_for(spec.kind).answers_questions
        ]
        # Gradio deletes what it tracks (uploads that never became a job, e.g. refused by the queue)
        # after 15 minutes; the app deletes a job's uploads when it ends and its outputs earlier.
        cache_age = max(900, int(self.keep_outputs_s))
        with gr.Blocks(title="Local transcription", delete_cache=(300, cache_age)) as demo:
            gr.Markdown(
                "# Local transcription\nEverything runs on this machine; nothing is uploaded anywhere."
            )
            with gr.Row():
                with gr.Column(scale=1):
                    files = recordings_component(label="Recordings", file_count="multiple", type="filepath")
                    recording = gr.Audio(label="Or record", sources=["microphone"], type="filepath")
                    model_key = gr.Dropdown(keys, value=keys[0] if keys else None, label="Model")
                    formats = gr.CheckboxGroup(FORMATS, value=["txt", "srt", "vtt"], label="Files to make")
                    run = gr.Button("Transcribe", variant="primary")
                with gr.Column(scale=2):
                    transcript = gr.Textbox(
                        label="Transcript", lines=12, buttons=["copy"], elem_id="transcript"
                    )
                    segments = gr.Dataframe(
                        headers=SEGMENT_HEADERS, label="Segments", wrap=True, elem_id="segments"
                    )
                    downloads = gr.File(label="Downloads", file_count="multiple", interactive=False)
            with gr.Accordion("Ask the language model about the transcript (Canary-Qwen)", open=False):
                llm_key = gr.Dropdown(llm_keys, value=llm_keys[0] if llm_keys else None, label="Model")
                question = gr.Textbox(label="Question", value="Summarise this transcript in a few sentences.")
                ask = gr.Button("Ask")
                answer = gr.Textbox(label="Answer", lines=6)
                thinking = gr.Textbox(label="The model's reasoning (<think>)", lines=4)
            status = gr.Markdown(status_markdown(self.store))

            def on_transcribe(
                files_value: list[str] | None,
                recording_value: str | None,
                key: str,
                formats_value: list[str],
                progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented idiom
            ) -> tuple[str, list[list[Any]], list[str], str]:
                return self.transcribe(files_value, recording_value, key, formats_value, progress)

            run.click(
                on_transcribe,
                [files, recording, model_key, formats],
                [transcript, segments, downloads, status],
                api_name="transcribe",
                concurrency_limit=1,
                concurrency_id="gpu",
            )
            ask.click(
                self.ask,
                [llm_key, transcript, question],
                [answer, thinking],
                api_name="ask",
                concurrency_limit=1,
                concurrency_id="gpu",
            )
        demo.queue(default_concurrency_limit=1, max_size=self.max_queue)  # beyond: "queue is full"
        return demo


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local transcription web app.")
    parser.add_argument("--config", help="path to config.toml")
    parser.add_argument("--host", help="address to bind (default from config.toml: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default from config.toml: 7860)")
    parser.add_argument("--share", action="store_true", help="also make a public gradio.live link")
    parser.add_argument("--auth", help="user:password required to open the app (or LOCALSTT_AUTH)")
    parser.add_argument(
        "--allow-no-auth", action="store_true", help="serve on a non-loopback address without --auth"
    )
    parser.add_argument(
        "--max-queue", type=int, default=16, help="requests waiting at most; more are refused (16)"
    )
    parser.add_argument(
        "--keep-outputs-minutes",
        type=float,
        default=10.0,
        help="delete a job's transcript files this long after the job (10)",
    )
    args = parser.parse_args(argv)
    log_to_console()
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    host = args.host or config.app.host
    port = args.port or config.app.port
    auth_text = args.auth or environment.auth()
    auth = None
    if auth_text:
        user, sep, password = auth_text.partition(":")
        if not sep or not user or not password:
            print("error: --auth takes user:password.", file=sys.stderr)
            return 2
        auth = (user, password)
    if not _is_loopback(host) or args.share:
        print(f"WARNING: the app will be reachable from other machines ({host}, share={args.share}).")
        if auth is None and not args.allow_no_auth:
            print(
                "error: add --auth user:password (or --allow-no-auth if you really mean it).", file=sys.stderr
            )
            return 2
    app = TranscriptionApp(config, keep_outputs_s=args.keep_outputs_minutes * 60, max_queue=args.max_queue)
    demo = app.build()
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            share=args.share,
            auth=auth,
            max_file_size=f"{config.app.max_upload_mb}mb",
        )
    finally:
        shutil.rmtree(app.output_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
