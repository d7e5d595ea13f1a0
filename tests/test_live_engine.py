"""The live engine (localstt/live/, and the tiny Parakeet's Streamer: NeMo's buffered streaming
pipeline over the loaded model): the same words as offline, partial text before the end, the tail
kept, sessions stepped together, the model never run twice at once, and a live step ahead of a file
job. Audio goes in as a microphone gives it, in 100 ms pieces."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from localstt import engine
from localstt.config import LiveOptions, load_config
from localstt.errors import LiveError
from localstt.live.service import LiveService
from localstt.live.session import LiveEvent, LiveSession
from localstt.models import ModelLock
from localstt.store import ModelStore
from testkit.store_env import Project
from testkit.tiny_models import PHRASE_DIALOGUE_WAV, PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
PIECE = 1600  # 100 ms at 16 kHz
WAIT_S = 120  # a ceiling that fails loudly; a tiny model's step takes milliseconds
# NVIDIA's settings: the label-looping example, Parakeet's streaming config, the buffered_rnnt config
SETTINGS = {"2-10-2": (2.0, 10.0, 2.0), "0.8-9.6-1.6": (0.8, 9.6, 1.6), "4.8-1.6-1.6": (4.8, 1.6, 1.6)}


def samples(path: Path) -> np.ndarray:
    audio, rate = sf.read(str(path), dtype="float32")
    assert rate == 16000 and audio.ndim == 1
    return audio


@pytest.fixture(scope="module")
def store(exported_project: Project) -> ModelStore:
    """A store of its own: live steps set the model's decoding, and other tests share theirs."""
    return ModelStore(load_config(exported_project.config))


@pytest.fixture(scope="module")
def offline(exported_project: Project) -> dict[str, str]:
    """Each recording's offline transcript, from a store no live session ever touched."""
    fresh = ModelStore(load_config(exported_project.config))
    options = fresh.config.transcription
    return {
        path.name: engine.transcribe(path, "parakeet", options, fresh).text
        for path in (PHRASE_WAV, PHRASE_DIALOGUE_WAV)
    }


def service(store: ModelStore, setting: str = "0.8-9.6-1.6", **limits: object) -> LiveService:
    chunk, left, right = SETTINGS[setting]
    options = dataclasses.replace(
        LiveOptions(), chunk_seconds=chunk, left_seconds=left, right_seconds=right, **limits
    )
    return LiveService(store, options)


@pytest.fixture
def live(store: ModelStore) -> Iterator[LiveService]:
    running = service(store)
    yield running
    running.stop()


class Heard:
    """A session's events, and a way to wait for one."""

    def __init__(self) -> None:
        self.events: list[LiveEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: LiveEvent) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(self, kind: str, test: Callable[[LiveEvent], bool] = lambda e: bool(e.text)) -> LiveEvent:
        """The first event of `kind` that passes `test` (by default: it has text)."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(e.kind == kind and test(e) for e in self.events), timeout=WAIT_S
            )
            if not found:
                pytest.fail(f"no such {kind} event within {WAIT_S} s; heard {[e.kind for e in self.events]}")
            return next(e for e in self.events if e.kind == kind and test(e))

    def finals(self) -> list[str]:
        with self._changed:
            return [e.text for e in self.events if e.kind == "final"]


class EncoderSpy:
    """Counts the model's encoder calls in this process, and how many ran at once at most."""

    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from nemo.collections.asr.modules import ConformerEncoder

        inner = ConformerEncoder.forward
        spy = self

        def forward(encoder: object, *args: object, **kwargs: object) -> object:
            with spy._lock:
                spy.calls += 1
                spy.running += 1
                spy.most_at_once = max(spy.most_at_once, spy.running)
            try:
                time.sleep(0.01)  # a little longer inside: two unguarded calls would overlap for sure
                return inner(encoder, *args, **kwargs)
            finally:
                with spy._lock:
                    spy.running -= 1

        monkeypatch.setattr(ConformerEncoder, "forward", forward)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not {what} within {WAIT_S} s")
        time.sleep(0.01)


def speak(live: LiveService, session: LiveSession, audio: np.ndarray) -> None:
    for start in range(0, len(audio), PIECE):
        live.feed(session, audio[start : start + PIECE])


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_live_text_is_the_offline_text(store: ModelStore, offline: dict[str, str], setting: str):
    """In 100 ms pieces, at each of NVIDIA's settings: the same words as the whole file offline, with
    word times on the recording's clock; and an offline job in between changes neither."""
    live = service(store, setting)
    try:
        for path in (PHRASE_WAV, PHRASE_DIALOGUE_WAV):
            session = live.open("parakeet", Heard())
            speak(live, session, samples(path))
            transcript = live.close(session)
            assert transcript.text == offline[path.name], (setting, path.name)
            words = transcript.words
            assert [w.text for w in words] == offline[path.name].split()
            assert all(0 <= w.start <= w.end <= transcript.duration for w in words)
            assert [w.start for w in words] == sorted(w.start for w in words)
            assert transcript.duration == pytest.approx(len(samples(path)) / 16000, abs=1e-3)
            # an offline job on the same model, between two live sessions
            between = engine.transcribe(path, "parakeet", store.config.transcription, store)
            assert between.text == offline[path.name]
    finally:
        live.stop()
    assert PHRASE in offline[PHRASE_DIALOGUE_WAV.name]


def test_every_session_shares_one_decoder_and_the_model_keeps_its_own_decoding(
    store: ModelStore, live: LiveService, monkeypatch: pytest.MonkeyPatch
):
    """NeMo's pipeline is built once per loaded model, not per session, and its decoding (per-stream
    boosting on) is swapped in for live steps only: file jobs keep the model's own."""
    from localstt.models import parakeet_live

    loaded = store.load("parakeet")
    for key in [key for key in loaded.cache if key.startswith("live decoder")]:
        del loaded.cache[key]
    builds = []
    build = parakeet_live.ParakeetLive.__init__

    def counted(self: parakeet_live.ParakeetLive, *args: object) -> None:
        builds.append(self)
        build(self, *args)

    monkeypatch.setattr(parakeet_live.ParakeetLive, "__init__", counted)
    own = loaded.model.decoding
    for _ in range(3):
        session = live.open("parakeet", Heard())
        speak(live, session, samples(PHRASE_WAV))
        assert live.close(session).text == PHRASE
        assert loaded.model.decoding is own
    assert len(builds) == 1


def test_partial_text_comes_before_the_end_and_the_last_words_after_it(live: LiveService):
    heard = Heard()
    session = live.open("parakeet", heard)
    audio = samples(PHRASE_DIALOGUE_WAV)
    speak(live, session, audio)  # every piece is in; the stream has not ended
    partial = heard.wait_for("partial")
    final = heard.wait_for("final")
    assert partial.text and final.text
    chunk = round(0.8 * 16000)
    wait_until(lambda: session.behind_s * 16000 < chunk, "every whole chunk stepped")
    words_before_end = sum(len(text.split()) for text in heard.finals())
    transcript = live.close(session)
    # What was final before the end is the transcript's beginning; the last words (within the
    # right context of the end) became final only when the stream ended: the tail is flushed.
    assert " ".join(heard.finals()).startswith(" ".join(transcript.text.split()[:words_before_end]))
    assert 0 < words_before_end < len(transcript.words)
    assert transcript.words[-1].end > transcript.duration - 1.6 - 0.8
    assert heard.events[-1].kind == "ended"


def test_two_sessions_at_once_get_their_own_text_in_shared_steps(
    store: ModelStore, offline: dict[str, str], live: LiveService, monkeypatch: pytest.MonkeyPatch
):
    """Both streams in the same model calls, and the model never runs two calls at once, also with
    a file job on the same model at the same time."""
    spy = EncoderSpy()
    spy.install(monkeypatch)
    one, two = live.open("parakeet", Heard()), live.open("parakeet", Heard())
    first, second = samples(PHRASE_DIALOGUE_WAV), samples(PHRASE_WAV)
    threads = [
        threading.Thread(target=speak, args=(live, one, first)),
        threading.Thread(target=speak, args=(live, two, second)),
        threading.Thread(
            target=engine.transcribe, args=(PHRASE_WAV, "parakeet", store.config.transcription, store)
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    results = [live.close(one), live.close(two)]
    assert [r.text for r in results] == [offline[PHRASE_DIALOGUE_WAV.name], offline[PHRASE_WAV.name]]
    assert spy.most_at_once == 1
    chunk = round(0.8 * 16000)
    chunks = sum(len(audio) // chunk + 1 for audio in (first, second))
    assert spy.calls < chunks  # some steps held both streams: fewer model calls than chunks


def test_a_live_step_waits_for_a_file_job_and_says_so(store: ModelStore, live: LiveService):
    """While a file job holds the model, the session hears why it lags; then it catches up."""
    heard = Heard()
    session = live.open("parakeet", heard)
    loaded = store.loaded("parakeet")
    assert loaded is not None
    with loaded.lock:  # a file job's model call in progress
        speak(live, session, samples(PHRASE_DIALOGUE_WAV)[: 16000 * 4])
        status = heard.wait_for("status", lambda e: bool(e.waiting))
        assert status.waiting == "waiting for a file job to let go of the model"
        assert status.behind_s > 0
    heard.wait_for("status", lambda e: e.waiting == "")  # and when it has the model again
    heard.wait_for("partial")  # caught up once the job let go
    live.close(session)


def test_a_live_step_goes_ahead_of_waiting_file_jobs_and_between_their_batches():
    lock = ModelLock()
    order: list[str] = []
    lock.acquire()  # a file job's first batch

    def job(name: str) -> None:
        with lock:
            order.append(name)

    def live_step() -> None:
        lock.acquire_first()
        order.append("live")
        lock.release()

    waiting_job = threading.Thread(target=job, args=("job",))
    waiting_job.start()
    while not lock._changed._waiters:  # type: ignore[attr-defined]  # the job waits for the lock
        time.sleep(0.001)
    step = threading.Thread(target=live_step)
    step.start()
    while lock._first_waiting == 0:  # the live step waits too
        time.sleep(0.001)
    lock.yield_to_first()  # between the first job's batches
    order.append("first job, next batch")
    lock.release()
    step.join(WAIT_S)
    waiting_job.join(WAIT_S)
    assert order == ["live", "first job, next batch", "job"]


def test_limits_and_models_that_cannot_go_live_are_one_sentence(store: ModelStore, exported_project: Project):
    live = service(store, max_live_sessions=1, max_session_minutes=0.05)  # 3 s
    try:
        session = live.open("parakeet", Heard())
        with pytest.raises(LiveError) as full:
            live.open("parakeet", Heard())
        assert str(full.value) == (
            "1 live sessions are open, the most this app allows (max_live_sessions in config.toml's "
            "[live]); try again when one ends."
        )
        with pytest.raises(LiveError) as too_long:
            speak(live, session, samples(PHRASE_DIALOGUE_WAV))
        assert str(too_long.value) == (
            "A live session lasts at most 0.05 minutes (max_session_minutes in config.toml's [live]); "
            "start a new one."
        )
        assert live.close(session).duration <= 3.0  # what came before the limit is kept
        with pytest.raises(LiveError) as cannot:
            live.open("canary-qwen", Heard())
        assert str(cannot.value) == (
            "canary-qwen (Canary-Qwen) cannot transcribe live; live transcription works with "
            "Parakeet models (parakeet, parakeet-v3)."
        )
    finally:
        live.stop()
