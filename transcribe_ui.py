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
from collections.abc import AsyncIterator, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from localstt.config import AppConfig, ConfigError, load_config  # noqa: E402
from localstt.errors import LocalSttError  # noqa: E402
from localstt.gpu_queue import GpuQueue  # noqa: E402
from localstt.logfile import log_to_console  # noqa: E402
from localstt.manifest import human_size  # noqa: E402
from localstt.models import Answerer, Progress, Transcriber, family_for  # noqa: E402
from localstt.store import ModelStatus, ModelStore  # noqa: E402
from localstt.transcript import Transcript  # noqa: E402

FORMATS = ["txt", "srt", "vtt", "json"]
STATUS_REFRESH_S = 1.0  # how often an open page re-reads the status while a model loads
SEGMENT_HEADERS = ["file", "start", "end", "text"]
SPEAKER_SEGMENT_HEADERS = ["file", "start", "end", "speaker", "text"]  # with "Identify speakers"
UPLOAD_GONE = (
    "this upload is no longer on the server: uploads are deleted as soon as a transcription that "
    "used them ends (Gradio stores identical files once, so also someone else's); add the file again."
)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:06.3f}" if hours else f"{minutes}:{secs:06.3f}"


def load_headline(row: ModelStatus) -> str:
    """One line on the model's load, for the status panel ("" when nothing happened to it yet)."""
    if row.phase == "ready":
        return f"{row.key}: ready on {row.device} ({row.dtype})"
    if row.phase == "loading":
        return f"loading {row.key}… {row.stage} ({row.seconds:.0f} s)"
    if row.phase == "failed":
        return f"{row.key} could not be loaded: {row.error}"
    return ""


def status_markdown(store: ModelStore) -> str:
    rows = store.status()
    lines = []
    for headline in (line for row in rows if (line := load_headline(row))):
        lines += [f"**{headline}**", ""]  # a paragraph each
    lines += ["| model | repo @ pinned commit | on disk | state |", "|---|---|---|---|"]
    for row in rows:
        commit = row.revision[:12] or "not pinned yet"
        if row.loaded:
            state = f"loaded on {row.device} ({row.dtype})"
        elif row.phase == "loading":
            state = f"loading: {row.stage}"
        else:
            state = "exported, not loaded" if row.exported else row.message
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
        self.store = ModelStore(config)
        self.options = config.transcription
        self.upload_root = upload_root or gradio_upload_folder()
        if output_root is None:
            self.upload_root.mkdir(parents=True, exist_ok=True)
            output_root = Path(tempfile.mkdtemp(prefix="localstt-out-", dir=self.upload_root))
        self.output_root = output_root
        self.keep_outputs_s = keep_outputs_s
        self.max_queue = max_queue
        # The API's requests (localstt/api.py) and these jobs take turns on the models here.
        self.gpu_queue = GpuQueue(max_waiting=max_queue)
        self._sweeper: threading.Thread | None = None
        self._preloader: threading.Thread | None = None
        self._demo: Any = None  # the Blocks build() made; the warm-up starts once it serves
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

    def start_preload(
        self, after_server: bool = True, server_wait_s: float = 120.0
    ) -> threading.Thread | None:
        """Load config.toml's [app] preload models in a background thread; returns at once.

        `after_server`: wait until the page built by build() is served (at most `server_wait_s`),
        so that importing NeMo does not slow the first page down. A job that comes meanwhile waits
        for the same load (localstt.store).
        """
        keys = self.store.config.app.preload
        if not keys or self._preloader is not None:
            return self._preloader

        def warm_up() -> None:
            deadline = time.monotonic() + server_wait_s
            while after_server and time.monotonic() < deadline:
                if self._demo is not None and getattr(self._demo, "is_running", False):
                    break
                time.sleep(0.05)
            for key in keys:
                self.store.warm_up(key)

        self._preloader = threading.Thread(target=warm_up, name="preload-models", daemon=True)
        self._preloader.start()
        return self._preloader

    def status_update(self) -> tuple[str, Any]:
        """The status panel now, and the timer that refreshes it: ticking only while a model loads."""
        import gradio as gr

        return status_markdown(self.store), gr.Timer(active=self.store.loading() is not None)

    def transcribe(
        self,
        files: list[str] | None,
        recording: str | None,
        model_key: str,
        formats: list[str] | None,
        progress: Any = None,
        speakers: bool = False,
        speaker_names: str = "",
    ) -> tuple[str, list[list[Any]], list[str], str]:
        """(transcript text, the segments table's rows, the files made, the status panel) of one job;
        with `speakers`, each row has the speaker before the text (SPEAKER_SEGMENT_HEADERS)."""
        import gradio as gr

        from localstt.engine import diarizer_key
        from localstt.jobs import transcribe_file
        from localstt.logfile import report_unexpected
        from localstt.speakers import parse_names

        inputs = [*(files or []), *([recording] if recording else [])]
        if not inputs:
            raise gr.Error("Add a recording first: upload a file or record with the microphone.")
        options = self.options
        if speakers:
            try:
                diarizer_key(self.store)
            except ConfigError as error:
                raise gr.Error(str(error)) from None
            options = options.replace(speakers=True, speaker_names=tuple(parse_names(speaker_names or "")))
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

                def wait(ahead: int, report: Progress = report) -> None:
                    report(0.0, f"waiting for {ahead} API request{'s' if ahead > 1 else ''} to finish")

                if not Path(path).exists():
                    failures.append(f"{name}: {UPLOAD_GONE}")
                    continue
                try:
                    with self.gpu_queue.turn(waiting=wait):
                        result = transcribe_file(
                            Path(path),
                            model_key,
                            options,
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
                done = result.transcript
                texts.append(header + (_speaker_text(done) if done.has_speakers else done.text))
                for s in done.segments:
                    speaker = [done.speaker_name(s.speaker)] if speakers else []
                    rows.append([name, _clock(s.start), _clock(s.end), *speaker, s.text])
                family = family_for(self.store.config.model(model_key).kind)
                if speakers and not done.has_speakers:
                    gr.Warning(f"{name}: the speaker diarizer heard no speech, so no speakers are shown.")
                elif speakers and not (isinstance(family, Transcriber) and family.has_word_times):
                    gr.Info(
                        f"{name}: {family.makeup.name} gives no word times, so each of its windows is "
                        "labelled with the speaker heard most in it."
                    )
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
            with self.gpu_queue.turn():
                answer = ask_llm(self.store, model_key, transcript_text, question)
        except LocalSttError as error:
            raise gr.Error(str(error)) from None
        except Exception as error:
            sentence = report_unexpected(error, f"asking {model_key}", self.store.config.path)
            raise gr.Error(f"The question could not be answered: {sentence}.") from None
        return answer.answer, answer.thinking

    def build(self) -> Any:
        import gradio as gr

        keys = list(self.store.config.transcribers)
        llm_keys = [
            k for k, spec in self.store.config.models.items() if isinstance(family_for(spec.kind), Answerer)
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
                    speakers = gr.Checkbox(
                        value=False,
                        label="Identify speakers",
                        info="Up to 4 voices, labelled in every file (needs the sortformer model exported).",
                        elem_id="speakers",
                    )
                    speaker_names = gr.Textbox(
                        value="",  # a value: API clients may leave the field out
                        label="Speaker names",
                        placeholder="Ana, Ben: in the order they first speak (optional)",
                        elem_id="speaker-names",
                    )
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
            status = gr.Markdown(status_markdown(self.store), elem_id="status")
            refresh = gr.Timer(STATUS_REFRESH_S, active=False)

            def on_transcribe(
                files_value: list[str] | None,
                recording_value: str | None,
                key: str,
                formats_value: list[str],
                speakers_value: bool,
                names_value: str,
                progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented idiom
            ) -> tuple[str, dict[str, Any], list[str], str]:
                text, rows, written, status = self.transcribe(
                    files_value, recording_value, key, formats_value, progress, speakers_value, names_value
                )
                headers = SPEAKER_SEGMENT_HEADERS if speakers_value else SEGMENT_HEADERS
                return text, {"headers": headers, "data": rows}, written, status

            run.click(
                on_transcribe,
                [files, recording, model_key, formats, speakers, speaker_names],
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
            # Not queued: the status shows while a job holds the queue, and ticks never fill it.
            outputs = [status, refresh]
            quiet: dict[str, Any] = {"queue": False, "show_progress": "hidden"}
            demo.load(
                self.status_update, None, outputs, api_name="status", api_visibility="undocumented", **quiet
            )
            refresh.tick(self.status_update, None, outputs, api_visibility="private", **quiet)
            # A job can start a load (the other model): the page polls until it is done.
            run.click(lambda: gr.Timer(active=True), None, refresh, api_visibility="private", **quiet)
        demo.queue(default_concurrency_limit=1, max_size=self.max_queue)  # beyond: "queue is full"
        self._demo = demo
        return demo


def _speaker_text(transcript: Transcript) -> str:
    """The transcript as the TXT download has it: one paragraph per turn, "Name: ..."."""
    from localstt.subtitles import TxtWriter

    return TxtWriter().render(transcript).strip()


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
        "--api-key", help="key the API under /v1 requires as a Bearer token (or LOCALSTT_API_KEY)"
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
    api_key = args.api_key or environment.api_key()
    if not _is_loopback(host) or args.share:
        print(f"WARNING: the app will be reachable from other machines ({host}, share={args.share}).")
        if auth is None and not args.allow_no_auth:
            print(
                "error: add --auth user:password (or --allow-no-auth if you really mean it).", file=sys.stderr
            )
            return 2
        if api_key is None and not args.allow_no_auth:
            print(
                "error: add --api-key KEY for the API under /v1 (or --allow-no-auth if you really mean it).",
                file=sys.stderr,
            )
            return 2
    app = TranscriptionApp(config, keep_outputs_s=args.keep_outputs_minutes * 60, max_queue=args.max_queue)
    app.start_preload()
    try:
        serve(app, host, port, auth=auth, api_key=api_key, share=args.share)
    finally:
        shutil.rmtree(app.output_root, ignore_errors=True)
    return 0


def server_app(app: TranscriptionApp, auth: tuple[str, str] | None = None, api_key: str | None = None) -> Any:
    """One ASGI app: OpenAI's API under /v1 (localstt/api.py) and the page at /, mounted on FastAPI as
    Gradio documents; the page's password (`auth`) guards the page, `api_key` the API."""
    import gradio as gr
    from fastapi import FastAPI

    from localstt.api import ApiServer

    max_upload_bytes = app.store.config.app.max_upload_mb << 20
    api = ApiServer(app.store, app.options, app.gpu_queue, api_key=api_key, max_upload_bytes=max_upload_bytes)
    demo = app.build()

    @contextlib.asynccontextmanager
    async def running(_: FastAPI) -> AsyncIterator[None]:
        demo.is_running = True  # as launch() sets it once it serves; the warm-up waits for it
        yield
        demo.is_running = False

    server = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=running)
    server.mount("/v1", api.app())  # before the page: "/" takes every path left
    mounted = gr.mount_gradio_app(server, demo, path="/", auth=auth, max_file_size=max_upload_bytes)
    # Gradio checks that a request's files were uploaded (not any path on this machine) only once
    # `has_launched` is set, which launch() does and mount_gradio_app (Gradio 6.31) does not.
    demo.has_launched = True
    return mounted


def serve(
    app: TranscriptionApp,
    host: str,
    port: int,
    *,
    auth: tuple[str, str] | None = None,
    api_key: str | None = None,
    share: bool = False,
) -> None:
    """Serve the page and the API on host:port until Ctrl-C (or SIGTERM)."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(server_app(app, auth, api_key), host=host, port=port, log_level="warning")
    )
    shown = f"[{host}]" if ":" in host else host
    print(f"* Running on http://{shown}:{port} (the page) and http://{shown}:{port}/v1 (the API)")
    if share:
        threading.Thread(
            target=_share_link, args=(server, host, port), name="share-link", daemon=True
        ).start()
    server.run()


def _share_link(server: Any, host: str, port: int) -> None:
    """Gradio's public link, made as `launch(share=True)` makes it, once the server is up."""
    import secrets

    from gradio import networking

    while not server.started:
        time.sleep(0.2)
    try:
        url = networking.setup_tunnel(host, port, secrets.token_urlsafe(32), None, None)
    except Exception as error:
        print(f"WARNING: no share link could be made ({error}); the app serves locally.", file=sys.stderr)
        return
    print(f"* Running on public URL: {url.replace('http://', 'https://', 1)}")


if __name__ == "__main__":
    sys.exit(main())
