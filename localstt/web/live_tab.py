"""The page's Live tab: the microphone streamed to a live session, final text in normal type and
partial text greyed as it comes, how far behind the steps are when the machine cannot keep up, and on
Stop an ordinary transcript: the segments, the files (TXT/SRT/VTT/JSON) and the recording as a WAV.

Gradio's streaming microphone (`gr.Audio(streaming=True)`) sends the recording in pieces every
`STREAM_EVERY_S` through the page's own connection (no WebRTC server, nothing beyond the page's
origin). Browsers give the microphone only to a secure page: http://127.0.0.1 or localhost, or HTTPS.
"""

from __future__ import annotations

import contextlib
import html
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np
import soundfile as sf
import soxr

from localstt import engine
from localstt.errors import LiveError, LocalSttError
from localstt.formats import WRITERS, write_outputs
from localstt.live.session import LiveEvent, LiveSession
from localstt.logfile import report_unexpected
from localstt.models import Streamer, families
from localstt.speakers import parse_names
from localstt.transcript import Transcript
from localstt.web.app import TranscriptionApp, clock, speaker_text
from localstt.web.vocabulary_box import job_vocabulary, vocabulary_boxes

STREAM_EVERY_S = 0.5
SAMPLE_RATE = 16000
SECURE_PAGE_NOTE = (
    "Browsers give the microphone only to a secure page: open the app at http://127.0.0.1 or "
    "http://localhost on this machine. From another machine on your network, start the app with "
    "`--share` (a public HTTPS link), or serve it over HTTPS through a reverse proxy."
)
BEHIND_NOTE_S = 1.0  # "behind by" shows once the steps lag this much beyond the settings' own latency
EARLY_AUDIO_S = 120.0  # the most audio kept for a page while its Record is still opening the session


@dataclass(eq=False)
class PageSession:
    """One browser's live session: the text as it came, and the microphone's rate to resample from."""

    live: LiveSession
    final: list[str] = field(default_factory=list)
    partial: str = ""
    waiting: str = ""
    behind_s: float = 0.0
    resampler: Any = None
    rate: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    feeding: threading.Lock = field(default_factory=threading.Lock)  # the audio goes in in order

    def heard(self, event: LiveEvent) -> None:
        with self.lock:
            if event.kind == "final":
                self.final.append(event.text)
            elif event.kind == "partial":
                self.partial = event.text
            elif event.kind == "status":
                self.waiting = event.waiting
            if event.kind in ("final", "partial", "status"):
                self.behind_s = event.behind_s


class LiveTab:
    """The Live tab's events, over the app's live sessions.

    The page knows its session by the key `start` returns (a gr.State). On a busy machine the
    microphone's first pieces can reach `chunk` before that key reaches the page, for seconds; they
    are kept for the browser page (Gradio's session hash) whose Record is opening a session, fed to
    it first once it is open, and later pieces find it by the page too: none of the recording is lost.
    """

    def __init__(self, app: TranscriptionApp) -> None:
        self.app = app
        self._sessions: dict[str, PageSession] = {}
        self._pages: dict[str, str] = {}  # a browser page -> the key of its open session
        self._opening: dict[str, list[tuple[int, np.ndarray]]] = {}  # a page's audio before its session
        self._lock = threading.Lock()

    def start(
        self, model_key: str, phrases: str = "", rules: str = "", request: gr.Request | None = None
    ) -> tuple[str, str]:
        """(the page session's key, the live view): a live session opens on `model_key`, its phrases
        boosted in its own stream and its rules applied at Stop."""
        browser = _browser(request)
        if browser:
            with self._lock:
                self._opening[browser] = []
        vocabulary = job_vocabulary(self.app.options.vocabulary, phrases, rules)
        try:
            holder: list[PageSession] = []
            live = self.app.live.open(
                model_key, lambda event: holder[0].heard(event) if holder else None, vocabulary
            )
        except LocalSttError as error:
            if browser:
                with self._lock:
                    self._opening.pop(browser, None)
            raise gr.Error(str(error)) from None
        page = PageSession(live)
        holder.append(page)
        key = secrets.token_hex(8)
        with page.feeding:
            with self._lock:
                self._sessions[key] = page
                early = self._opening.pop(browser, []) if browser else []
                if browser:
                    self._pages[browser] = key
            for rate, samples in early:
                self._feed(page, rate, samples)
        return key, self.view(page)

    def chunk(
        self, audio: tuple[int, np.ndarray] | None, key: str | None, request: gr.Request | None = None
    ) -> str:
        """One piece of the microphone's stream; the live view as it is now."""
        browser = _browser(request)
        with self._lock:
            page = self._find(key, browser)
            if page is None and audio is not None and browser in self._opening:
                early = self._opening[browser]
                if sum(len(piece) / rate for rate, piece in early) < EARLY_AUDIO_S:
                    early.append(audio)
                return self.view(None)
        if page is None or audio is None:
            return self.view(page)
        with page.feeding:
            self._feed(page, *audio)
        return self.view(page)

    def _find(self, key: str | None, browser: str) -> PageSession | None:
        """The session of `key`, else the open session of the browser page (its key not there yet)."""
        page = self._sessions.get(str(key)) if key else None
        if page is None and browser in self._pages:
            page = self._sessions.get(self._pages[browser])
        return page

    def _feed(self, page: PageSession, rate: int, samples: np.ndarray) -> None:
        if page.resampler is None or page.rate != rate:
            page.rate = rate
            page.resampler = (
                None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, "float32")
            )
        mono = to_mono_float(samples)
        if page.resampler is not None:
            mono = page.resampler.resample_chunk(mono)
        try:
            self.app.live.feed(page.live, mono)
        except LiveError as error:
            gr.Warning(str(error))

    def stop(
        self,
        key: str | None,
        formats: list[str] | None,
        speakers: bool,
        names: str,
        request: gr.Request | None = None,
    ) -> tuple[str, str, dict[str, Any], list[str]]:
        """(the live view, the transcript, the segments table, the files): the session ends, its last
        words are flushed, and it becomes an ordinary transcript."""
        browser = _browser(request)
        with self._lock:
            page = self._find(key, browser)
            if page is None:
                raise gr.Error("Start the microphone first: press Record.")
            for known, session in list(self._sessions.items()):
                if session is page:
                    del self._sessions[known]
            if self._pages.get(browser) not in self._sessions:
                self._pages.pop(browser, None)
        with page.feeding:  # a piece being fed goes in before the end
            pass
        if page.resampler is not None:
            tail = page.resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                with contextlib.suppress(LiveError):  # past the session's limit: what came before is kept
                    self.app.live.feed(page.live, tail)
        transcript = self.app.live.close(page.live)
        recording = page.live.recording()
        if speakers and len(recording):
            transcript = self._with_speakers(transcript, recording, names)
        if note := self.app.keeper.keep(transcript, "live", samples=recording):
            gr.Warning(note)
        try:
            written = self._files(transcript, recording, formats or ["txt", "srt"])
        except OSError as error:
            sentence = report_unexpected(error, "writing a live transcript", self.app.store.config.path)
            raise gr.Error(f"The files could not be written: {sentence}.") from None
        text = speaker_text(transcript) if transcript.has_speakers else transcript.text
        headers = ["start", "end", *(["speaker"] if transcript.has_speakers else []), "text"]
        rows = [
            [
                clock(s.start),
                clock(s.end),
                *([transcript.speaker_name(s.speaker)] if transcript.has_speakers else []),
                s.text,
            ]
            for s in transcript.segments
        ]
        return self.view(page, ended=True), text, {"headers": headers, "data": rows}, written

    def _with_speakers(self, transcript: Transcript, recording: np.ndarray, names: str) -> Transcript:
        from localstt.audio import DecodedAudio

        audio = DecodedAudio.of_samples(recording, "live")
        try:
            with self.app.gpu_queue.turn():
                return engine.with_speakers(transcript, audio, self.app.store, parse_names(names or ""))
        except LocalSttError as error:
            gr.Warning(f"The live transcript is kept without speakers: {error}")
            return transcript

    def _files(self, transcript: Transcript, recording: np.ndarray, formats: list[str]) -> list[str]:
        job_dir = self.app.outputs.start_job()
        try:
            layout = self.app.store.config.subtitles
            written = [str(p) for p in write_outputs(transcript, formats, job_dir, "live", layout)]
            wav = job_dir / "live-recording.wav"
            sf.write(str(wav), recording, SAMPLE_RATE, subtype="PCM_16")
            return [*written, str(wav)]
        finally:
            self.app.outputs.end_job(job_dir)

    def view(self, page: PageSession | None, ended: bool = False) -> str:
        """Final text in normal type, partial text greyed, and how far behind the steps are."""
        if page is None:
            return '<div id="live-view" class="live-view"></div>'
        with page.lock:
            final, partial, waiting, behind = " ".join(page.final), page.partial, page.waiting, page.behind_s
        parts = [f'<span class="live-final">{html.escape(final)}</span>']
        if partial and not ended:
            parts.append(f' <span class="live-partial" style="color: #888">{html.escape(partial)}</span>')
        note = ""
        latency = self.app.live.latency_s(page.live.model_key)
        if not ended and (waiting or behind > latency + BEHIND_NOTE_S):
            why = f"; {waiting}" if waiting else ""
            note = f'<div class="live-behind" style="color: #b45309">behind by {behind:.1f} s{why}</div>'
        return f'<div id="live-view" class="live-view">{"".join(parts)}</div>{note}'


def _browser(request: gr.Request | None) -> str:
    """The browser page a call comes from ("" for a call made in code)."""
    return str(getattr(request, "session_hash", "") or "") if request is not None else ""


def to_mono_float(samples: np.ndarray) -> np.ndarray:
    """The microphone's samples (int16, or float, one or two channels) as mono float32 in [-1, 1]."""
    data = np.asarray(samples)
    if data.dtype.kind == "i":
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    data = data.astype(np.float32)
    return data.mean(axis=1).astype(np.float32) if data.ndim == 2 else data


def build_live_tab(app: TranscriptionApp) -> list[Any]:
    """The Live tab, inside the page's Blocks; the events after which the page refreshes its status
    panel (a session opened, a session ended): none where no model can go live."""
    tab = LiveTab(app)
    models = app.live.streaming_models()
    with gr.Tab("Live", elem_id="live-tab"):
        if not models:
            live = ", ".join(f.name for f in families() if isinstance(f, Streamer)) or "none"
            gr.Markdown(f"No model of this config.toml can transcribe live; the families that can: {live}.")
            return []
        gr.Markdown(
            "Speak, and the words appear as they settle: final text in normal type, text that may "
            f"still change in grey. {SECURE_PAGE_NOTE}"
        )
        with gr.Row():
            with gr.Column(scale=1):
                model = gr.Dropdown(models, value=models[0], label="Model", elem_id="live-model")
                microphone = gr.Audio(
                    sources=["microphone"],
                    streaming=True,
                    type="numpy",
                    label="Microphone",
                    elem_id="live-mic",
                )
                formats = gr.CheckboxGroup(list(WRITERS), value=["txt", "srt", "vtt"], label="Files to make")
                speakers = gr.Checkbox(
                    value=False, label="Label speakers when I stop", elem_id="live-speakers"
                )
                names = gr.Textbox(value="", label="Speaker names", placeholder="Ana, Ben")
                words = vocabulary_boxes(app, "live")
            with gr.Column(scale=2):
                view = gr.HTML(tab.view(None), elem_id="live-text")
                transcript = gr.Textbox(
                    label="Transcript", lines=8, buttons=["copy"], elem_id="live-transcript"
                )
                segments = gr.Dataframe(
                    headers=["start", "end", "text"], label="Segments", elem_id="live-segments"
                )
                downloads = gr.File(
                    label="Downloads", file_count="multiple", interactive=False, elem_id="live-files"
                )
        session = gr.State(None)
        started = microphone.start_recording(
            tab.start,
            [model, words.phrases, words.rules],
            [session, view],
            api_name="live_start",
            queue=False,
            show_progress="hidden",
        )
        microphone.stream(
            tab.chunk,
            [microphone, session],
            [view],
            stream_every=STREAM_EVERY_S,
            time_limit=int(app.store.config.live.max_session_minutes * 60),
            concurrency_limit=app.store.config.live.max_live_sessions,
            concurrency_id="live",
            show_progress="hidden",
            api_name="live_chunk",
        )
        stopped = microphone.stop_recording(
            tab.stop,
            [session, formats, speakers, names],
            [view, transcript, segments, downloads],
            api_name="live_stop",
            concurrency_limit=app.store.config.live.max_live_sessions,
            concurrency_id="live-stop",
        )
    return [started, stopped]
