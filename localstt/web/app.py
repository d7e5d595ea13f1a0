"""What the page's events do: a job of recordings through the engine, a question to a language model,
and the models loaded in the background as soon as the page serves.

Each method is one event of the page (localstt/web/page.py builds it); the page's jobs and the API's
requests take turns on the models through one GpuQueue.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import gradio as gr

from localstt import engine
from localstt.config import AppConfig
from localstt.errors import ConfigError, LocalSttError
from localstt.formats import WRITERS
from localstt.language_choice import checked_languages
from localstt.library.keeper import Keeper
from localstt.live.service import LiveService
from localstt.logfile import report_unexpected
from localstt.models import Progress, Transcriber, family_for
from localstt.runs.single import transcribe_file
from localstt.speakers import parse_names
from localstt.spec import Vocabulary
from localstt.store import ModelStore
from localstt.subtitles import SubtitleLayout
from localstt.transcript import Transcript
from localstt.web.gpu_queue import GpuQueue
from localstt.web.outputs import JobFolders, gradio_upload_folder, remove_uploads
from localstt.web.status import status_markdown

UPLOAD_GONE = (
    "this upload is no longer on the server: uploads are deleted as soon as a transcription that "
    "used them ends (Gradio stores identical files once, so also someone else's); add the file again."
)


def clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:06.3f}" if hours else f"{minutes}:{secs:06.3f}"


class TranscriptionApp:
    """Holds the store, the options, the queue and the job folders; each method is one page event."""

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
        self.outputs = JobFolders(output_root, keep_outputs_s)
        self.max_queue = max_queue
        # The API's requests (localstt/web/openai_api/) and these jobs take turns on the models here.
        self.gpu_queue = GpuQueue(max_waiting=max_queue)
        # Live sessions of the page and of the API's /v1/realtime, on the same models.
        self.live = LiveService(self.store, config.live)
        # Every transcript made here is kept in the library, unless [library] says otherwise.
        self.keeper = Keeper(config.library, config.path)
        self.keeper.start_retention()
        self._preloader: threading.Thread | None = None
        self.serving = threading.Event()  # set once the server serves the page: the warm-up waits for it

    @property
    def output_root(self) -> Path:
        return self.outputs.root

    def start_preload(
        self, after_server: bool = True, server_wait_s: float = 120.0
    ) -> threading.Thread | None:
        """Load config.toml's [app] preload models in a background thread; returns at once.

        `after_server`: wait until the server serves the page (at most `server_wait_s`), so that
        importing NeMo does not slow the first page down. A job that comes meanwhile waits for the
        same load (localstt.store).
        """
        keys = self.store.config.app.preload
        if not keys or self._preloader is not None:
            return self._preloader

        def warm_up() -> None:
            if after_server:
                self.serving.wait(server_wait_s)
            for key in keys:
                self.store.warm_up(key)

        self._preloader = threading.Thread(target=warm_up, name="preload-models", daemon=True)
        self._preloader.start()
        return self._preloader

    def close(self) -> None:
        """Stop the sweeper and the live sessions, and remove every output. A preload under way is left
        to end with its load (a daemon thread: it never holds the process up)."""
        self.serving.set()
        self.live.stop()
        self.keeper.stop()
        self.outputs.stop(remove_all=True)

    def status_update(self) -> tuple[str, Any]:
        """The status panel now, and the timer that refreshes it: ticking only while a model loads."""
        return self.status(), gr.Timer(active=self.store.loading() is not None)

    def status(self) -> str:
        """The status panel: the models, the live sessions open, and where transcripts are kept."""
        return status_markdown(self.store, self.live.open_sessions(), self.keeper.status_line())

    def transcribe(
        self,
        files: list[str] | None,
        recording: str | None,
        model_key: str,
        formats: list[str] | None,
        progress: Any = None,
        speakers: bool = False,
        speaker_names: str = "",
        vocabulary: Vocabulary | None = None,
        layout: SubtitleLayout | None = None,
        spoken: tuple[str, str] = ("", ""),
    ) -> tuple[str, list[list[Any]], list[str], str]:
        """(transcript text, the segments table's rows, the files made, the status panel) of one job;
        with `speakers`, each row has the speaker before the text; `vocabulary`: the job's words
        (default: config.toml's); `layout`: the subtitles' line controls (default: config.toml's). Each
        transcript is kept in the library (when it is on). `spoken`: (the spoken language, the one to
        translate into), "" for the model's choice and for none."""
        inputs = [*(files or []), *([recording] if recording else [])]
        if not inputs:
            raise gr.Error("Add a recording first: upload a file or record with the microphone.")
        options = self.options if vocabulary is None else self.options.replace(vocabulary=vocabulary)
        options = options.replace(language=spoken[0], translate_to=spoken[1])
        try:
            checked_languages(self.store.config.model(model_key), options)
        except LocalSttError as error:  # a language the model does not have, an unknown model
            raise gr.Error(str(error)) from None
        if speakers:
            try:
                engine.diarizer_key(self.store)
            except ConfigError as error:
                raise gr.Error(str(error)) from None
            options = options.replace(speakers=True, speaker_names=tuple(parse_names(speaker_names or "")))
        self.outputs.remove_old()
        self.outputs.start_sweeper()
        try:
            job_dir = self.outputs.start_job()
        except OSError as error:
            remove_uploads(inputs, self.upload_root, self.output_root)
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
                            layout=layout or self.store.config.subtitles,
                        )
                except LocalSttError as error:  # the whole job: the model is not usable
                    raise gr.Error(str(error)) from None
                if result.transcript is None:
                    failures.append(f"{name}: {result.failure}")
                    continue
                written += [str(p) for p in result.outputs]
                if note := self.keeper.keep(result.transcript, "page", source=Path(path)):
                    gr.Warning(note)
                header = f"[{name}]\n" if len(inputs) > 1 else ""
                done = result.transcript
                texts.append(header + (speaker_text(done) if done.has_speakers else done.text))
                for s in done.segments:
                    speaker = [done.speaker_name(s.speaker)] if speakers else []
                    rows.append([name, clock(s.start), clock(s.end), *speaker, s.text])
                family = family_for(self.store.config.model(model_key).kind)
                if speakers and not done.has_speakers:
                    gr.Warning(f"{name}: the speaker diarizer heard no speech, so no speakers are shown.")
                elif speakers and not (isinstance(family, Transcriber) and family.has_word_times):
                    gr.Info(
                        f"{name}: {family.name} gives no word times, so each of its windows is "
                        "labelled with the speaker heard most in it."
                    )
        finally:
            remove_uploads(inputs, self.upload_root, self.output_root)
            self.outputs.end_job(job_dir)
        if failures and not texts:
            raise gr.Error(" ".join(failures))
        for failure in failures:
            gr.Warning(failure)
        return "\n\n".join(texts), rows, written, self.status()

    def ask(self, model_key: str, transcript_text: str, question: str) -> tuple[str, str]:
        if not transcript_text.strip():
            raise gr.Error("Transcribe something first; the question is asked about the transcript.")
        try:
            with self.gpu_queue.turn():
                answer = engine.ask_llm(self.store, model_key, transcript_text, question)
        except LocalSttError as error:
            raise gr.Error(str(error)) from None
        except Exception as error:
            sentence = report_unexpected(error, f"asking {model_key}", self.store.config.path)
            raise gr.Error(f"The question could not be answered: {sentence}.") from None
        return answer.answer, answer.thinking


def speaker_text(transcript: Transcript) -> str:
    """The transcript as the TXT download has it: one paragraph per turn, "Name: ..."."""
    return WRITERS["txt"].render(transcript).strip()
