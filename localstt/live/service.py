"""Live sessions, many at once, on the models of the store: one worker thread steps them all.

    service = LiveService(store, config.live)
    session = service.open(model_key, listener)     # LiveError when full, or the model cannot go live
    session.feed(samples)                            # from any thread; the worker steps when a chunk is whole
    transcript = service.close(session)              # the tail flushed, the last words kept
    service.stop()                                   # the worker ends; open sessions end with it

The worker takes, at each step, one whole chunk from every session of a model that has one, and runs
them in ONE model call (the decoder batches the streams). A model runs one call at a time: a step
takes the model's lock ahead of any file job waiting for it (`ModelLock.first`), and file jobs let
go of it between their batches (`yield_to_first`), so a step waits at most for the one file-job call
in progress. While it waits, each session hears why (a `status` event, with how far behind it is):
never silent lag. A model with open sessions stays loaded until they end.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from localstt.config import LiveOptions
from localstt.engine import boosted, vocabulary_notes, with_rules
from localstt.errors import LiveError
from localstt.live.session import Listener, LiveSession
from localstt.logfile import report_unexpected
from localstt.models import LiveDecoder, LoadedModel, ModelLock, Streamer, families, family_for
from localstt.spec import Vocabulary
from localstt.store import ModelStore
from localstt.transcript import Transcript

logger = logging.getLogger(__name__)

WAIT_REPORT_S = 0.5  # a step that waits this long for the model tells its sessions why
CLOSE_TIMEOUT_S = 600.0  # the most a close waits for the tail to be flushed


@dataclass
class _ModelLive:
    """A model with open sessions: held loaded, with its decoder."""

    loaded: LoadedModel
    decoder: LiveDecoder
    hold: ExitStack  # the store.use() that keeps the model loaded


class LiveService:
    def __init__(self, store: ModelStore, options: LiveOptions) -> None:
        self.store = store
        self.options = options
        self._sessions: dict[int, LiveSession] = {}
        self._models: dict[str, _ModelLive] = {}
        self._changed = threading.Condition()
        self._stopping = False
        self._worker: threading.Thread | None = None
        self.steps = 0  # model calls made so far (the tests count them)
        # (streams, seconds) of the latest steps: what a step costs (benchmarks/live.py reads it)
        self.step_log: deque[tuple[int, float]] = deque(maxlen=10_000)

    # Sessions

    def streaming_models(self) -> list[str]:
        """The keys of config.toml's models that can go live."""
        return [
            key
            for key, spec in self.store.config.transcribers.items()
            if isinstance(family_for(spec.kind), Streamer)
        ]

    def open(self, model_key: str, listener: Listener, vocabulary: Vocabulary | None = None) -> LiveSession:
        """A new session on `model_key`, its model loaded (the first one waits for the load).

        Raises:
            LiveError: the model cannot go live, or `max_live_sessions` are open already.
            ExportError, LoadError, ConfigError: the model cannot be used.
        """
        spec = self.store.config.model(model_key)
        family = family_for(spec.kind)
        if not isinstance(family, Streamer):
            live = ", ".join(self.streaming_models()) or "none in this config.toml"
            names = ", ".join(f.name for f in families() if isinstance(f, Streamer))
            raise LiveError(
                f"{model_key} ({family.name}) cannot transcribe live; live transcription works with "
                f"{names} models ({live})."
            )
        with self._changed:
            if len(self._sessions) >= self.options.max_live_sessions:
                raise LiveError(
                    f"{len(self._sessions)} live sessions are open, the most this app allows "
                    "(max_live_sessions in config.toml's [live]); try again when one ends."
                )
        loaded = self.store.load(model_key)  # here, in the caller's thread, with the load's own errors
        vocabulary = vocabulary or Vocabulary()
        if vocabulary.phrases:
            with loaded.lock, boosted(loaded, vocabulary):  # checks the phrases against the tokenizer
                pass
        session = LiveSession(model_key, listener, self.options.max_session_minutes * 60, vocabulary)
        with self._changed:
            if len(self._sessions) >= self.options.max_live_sessions:
                raise LiveError("The last live session place was just taken; try again when one ends.")
            self._sessions[session.stream_id] = session
            self._start_worker()
            self._changed.notify_all()
        return session

    def feed(self, session: LiveSession, samples: np.ndarray) -> None:
        """Add audio (16 kHz mono float32) to `session`; LiveError past its limits."""
        session.feed(samples)
        with self._changed:
            self._changed.notify_all()

    def close(self, session: LiveSession, timeout: float = CLOSE_TIMEOUT_S) -> Transcript:
        """End `session`: its tail is stepped as the last chunk, then its transcript is made."""
        session.end()
        with self._changed:
            self._changed.notify_all()
        if not session.ended.wait(timeout):
            self.abort(session, "the model did not get to the end of the recording in time")
        return self.transcript(session)

    def abort(self, session: LiveSession, why: str = "the client went away") -> None:
        """Drop a session at once (its client disconnected): its state is freed, nothing is stepped."""
        with self._changed:
            self._sessions.pop(session.stream_id, None)
            model = self._models.get(session.model_key)
        if model is not None and not session.ended.is_set():
            with model.loaded.lock:
                model.decoder.drop(session.stream_id)
        session.finish(why)
        self._release_idle_models()

    def transcript(self, session: LiveSession) -> Transcript:
        """The session's transcript, its replacement rules applied."""
        spec = self.store.config.model(session.model_key)
        notes = [f"transcribed live, {self._latency_note(session.model_key)}"]
        notes += vocabulary_notes(family_for(spec.kind), session.vocabulary)
        if session.error:
            notes.append(f"ended early: {session.error}")
        options = {"vocabulary": session.vocabulary.as_record()} if session.vocabulary else {}
        transcript = session.transcript(spec.revision, notes, options)
        return with_rules(transcript, session.vocabulary.replacements)

    def latency_s(self, model_key: str) -> float:
        """How long after it is spoken a word of `model_key` is final, compute time aside."""
        model = self._models.get(model_key)
        if model is not None:
            return model.decoder.latency_seconds
        loaded = self.store.loaded(model_key)
        settings = self.options.settings(loaded.device if loaded else "cpu")
        return settings.chunk_seconds + settings.right_seconds

    def open_sessions(self) -> int:
        with self._changed:
            return len(self._sessions)

    def stop(self) -> None:
        """End the worker; every open session ends with it."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join()
        for session in list(self._sessions.values()):
            session.finish("the app is stopping")
        self._sessions.clear()
        for model in list(self._models.values()):
            model.hold.close()
        self._models.clear()

    # The worker

    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="live-steps", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while True:
            with self._changed:
                while not self._stopping and not self._ready():
                    self._changed.wait(timeout=1.0)
                if self._stopping:
                    return
                by_model: dict[str, list[LiveSession]] = {}
                for session in self._sessions.values():
                    by_model.setdefault(session.model_key, []).append(session)
            for key, sessions in by_model.items():
                try:
                    self._step(key, sessions)
                except Exception as error:  # the model failed: its sessions end with one sentence
                    sentence = report_unexpected(error, f"a live step of {key}", self.store.config.path)
                    for session in sessions:
                        self.abort(session, sentence)
            self._forget_ended()

    def _ready(self) -> bool:
        """Whether some session has a whole chunk (or its tail, ending) to step."""
        for session in self._sessions.values():
            model = self._models.get(session.model_key)
            size = model.decoder.chunk_samples if model else 1
            if session.ending or session.received - session.stepped >= size:
                return True
        return False

    def _step(self, key: str, sessions: list[LiveSession]) -> None:
        model = self._model(key, sessions)
        chunks = [chunk for session in sessions for chunk in session.chunks(model.decoder.chunk_samples, 1)]
        if not chunks:
            return
        with self._model_turn(model.loaded.lock, sessions):
            started = time.perf_counter()
            updates = model.decoder.step(chunks)
            self.step_log.append((len(chunks), time.perf_counter() - started))
        self.steps += 1
        by_stream = {session.stream_id: session for session in sessions}
        for update in updates:
            by_stream[update.stream_id].apply(update)

    @contextlib.contextmanager
    def _model_turn(self, lock: ModelLock, sessions: list[LiveSession]) -> Iterator[None]:
        """The model's lock, ahead of file jobs; sessions hear it when they must wait for it."""
        if not lock.acquire_first(timeout=WAIT_REPORT_S):
            for session in sessions:
                session.status("waiting for a file job to let go of the model")
            lock.acquire_first()
            for session in sessions:
                session.status("")
        try:
            yield
        finally:
            lock.release()

    def _model(self, key: str, sessions: list[LiveSession]) -> _ModelLive:
        with self._changed:
            model = self._models.get(key)
        if model is not None:
            return model
        hold = ExitStack()
        try:
            loaded = hold.enter_context(self.store.use(key))
            family = loaded.family
            assert isinstance(family, Streamer)
            settings = self.options.settings(loaded.device)
            with self._model_turn(loaded.lock, sessions):
                decoder = family.live_decoder(loaded, settings)
        except BaseException:
            hold.close()
            raise
        model = _ModelLive(loaded, decoder, hold)
        with self._changed:
            if key in self._models:  # another thread made it meanwhile: keep theirs
                hold.close()
                return self._models[key]
            self._models[key] = model
        return model

    def _forget_ended(self) -> None:
        with self._changed:
            for stream_id in [sid for sid, s in self._sessions.items() if s.ended.is_set()]:
                del self._sessions[stream_id]
        self._release_idle_models()

    def _release_idle_models(self) -> None:
        """A model without open sessions is no longer held loaded (the store may unload it)."""
        with self._changed:
            busy = {session.model_key for session in self._sessions.values()}
            idle = [key for key in self._models if key not in busy]
            released = [self._models.pop(key) for key in idle]
        for model in released:
            model.hold.close()

    def _latency_note(self, key: str) -> str:
        model = self._models.get(key)
        if model is None:
            return "each word final a few seconds after it was spoken"
        return f"each word final about {model.decoder.latency_seconds:.1f} s after it was spoken"
