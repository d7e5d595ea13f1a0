"""Live transcription over OpenAI's Realtime API (`GET /v1/realtime`), driven by the official `openai`
SDK's realtime client against the real app on 127.0.0.1, with the tiny Parakeet."""

from __future__ import annotations

import base64
import queue
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
import soxr
import websockets.sync.client
from gradio_client import Client
from openai import OpenAI
from websockets.exceptions import InvalidStatus

from localstt.audio import decode_audio
from testkit.app import RunningApp, launch_app
from testkit.store_env import Project
from testkit.tiny_models import PHRASE_DIALOGUE_WAV, PHRASE_TXT, PHRASE_WAV

pytestmark = pytest.mark.slow  # the app in its own process, driven over its WebSocket

PHRASE = PHRASE_TXT.read_text().strip()
KEY = "live-key-3a9c"
EVENT_WAIT_S = 120  # generous: a step of the tiny model takes milliseconds, but the machine may be busy
# Small steps so that text comes while audio is still being sent (about 2.4 s after each word).
LIVE_TABLE = """
[live]
chunk_seconds = 0.8
left_seconds = 9.6
right_seconds = 1.6
endpoint_ms = 800
max_live_sessions = 2
max_session_minutes = 1
"""


def live_config(project: Project, table: str = LIVE_TABLE, name: str = "live.toml") -> Path:
    """The project's config.toml with `table` as its [live] table, beside it (same models)."""
    text = project.config.read_text(encoding="utf-8")
    text = re.sub(r"^\[live\]\n(?:(?!\[).*\n)*", table.lstrip() + "\n", text, flags=re.M)
    path = project.root / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def app(exported_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    workdir = tmp_path_factory.mktemp("live-api")
    config = live_config(exported_project)
    with launch_app(exported_project, workdir / "app", "--api-key", KEY, config=config) as running:
        yield running


def pcm16_24k(path: Path) -> bytes:
    """A recording as the SDK sends audio: 24 kHz mono 16-bit little-endian PCM."""
    samples, rate = sf.read(str(path), dtype="float32")
    resampled = soxr.resample(samples, rate, 24000)
    return (np.clip(resampled, -1, 1) * 32767).astype("<i2").tobytes()


class Events:
    """A realtime connection's events, read on a thread of their own so that a test can wait for
    one with a ceiling that fails loudly."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._queue: queue.Queue[Any] = queue.Queue()
        self.seen: list[Any] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                self._queue.put(self.connection.recv())
        except Exception as error:  # the connection closed
            self._queue.put(error)

    def next(self, kind: str) -> Any:
        """The next event of type `kind` (the others on the way are kept in `seen`)."""
        deadline = time.monotonic() + EVENT_WAIT_S
        while True:
            left = deadline - time.monotonic()
            try:
                event = self._queue.get(timeout=max(left, 0.001))
            except queue.Empty:
                pytest.fail(f"no {kind} event within {EVENT_WAIT_S} s; seen: {[e.type for e in self.seen]}")
            if isinstance(event, Exception):
                pytest.fail(f"the connection closed before a {kind} event: {event!r}")
            self.seen.append(event)
            if event.type == kind:
                return event


def client(app: RunningApp, key: str = KEY) -> OpenAI:
    return OpenAI(base_url=f"{app.url}v1", api_key=key, max_retries=0)


def transcription_session(model: str = "parakeet", turn_detection: Any = None) -> dict[str, Any]:
    return {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": model},
                "turn_detection": turn_detection,
            }
        },
    }


def append_all(connection: Any, audio: bytes, piece_ms: int = 100) -> None:
    step = 24000 * 2 * piece_ms // 1000
    for start in range(0, len(audio), step):
        connection.input_audio_buffer.append(audio=base64.b64encode(audio[start : start + step]).decode())


def test_deltas_come_before_the_commit_and_completed_has_the_whole_text(app: RunningApp):
    audio = pcm16_24k(PHRASE_DIALOGUE_WAV)
    offline = (
        client(app).audio.transcriptions.create(file=PHRASE_DIALOGUE_WAV.open("rb"), model="parakeet").text
    )
    with client(app).realtime.connect(extra_query={"intent": "transcription"}) as connection:
        events = Events(connection)
        events.next("session.created")
        connection.session.update(session=transcription_session())  # type: ignore[arg-type]
        assert events.next("session.updated").session.type == "transcription"
        append_all(connection, audio)
        first = events.next("conversation.item.input_audio_transcription.delta")  # no commit yet
        assert first.delta and offline.startswith(first.delta)
        connection.input_audio_buffer.commit()
        committed = events.next("input_audio_buffer.committed")
        completed = events.next("conversation.item.input_audio_transcription.completed")
    assert committed.item_id == first.item_id == completed.item_id
    assert completed.transcript == offline  # the same words as the whole file offline
    assert offline.count(PHRASE) == 2  # and those are the dialogue's sentences
    deltas = [e.delta for e in events.seen if e.type == "conversation.item.input_audio_transcription.delta"]
    assert "".join(deltas) == completed.transcript  # final text only, never taken back
    assert completed.usage.type == "duration" and completed.usage.seconds == pytest.approx(
        decode_audio(PHRASE_DIALOGUE_WAV, None).duration, abs=0.05
    )


def kept_realtime(app: RunningApp) -> dict[int, dict[str, Any]]:
    """The library's transcripts that realtime connections made, by id (GET /v1/library)."""
    listing = httpx.get(f"{app.url}v1/library", headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert listing.status_code == 200, listing.text
    return {entry["id"]: entry for entry in listing.json()["data"] if entry["origin"] == "realtime"}


def test_the_last_words_come_after_the_commit(app: RunningApp):
    """The tail is flushed: the phrase is shorter than one step's right context, so nothing is final
    before the commit and everything after it. By `completed`, the item is in the library."""
    before = kept_realtime(app)
    with client(app).realtime.connect(extra_query={"intent": "transcription"}) as connection:
        events = Events(connection)
        connection.session.update(session=transcription_session())  # type: ignore[arg-type]
        events.next("session.updated")
        append_all(connection, pcm16_24k(PHRASE_WAV))
        connection.input_audio_buffer.commit()
        completed = events.next("conversation.item.input_audio_transcription.completed")
    assert completed.transcript == PHRASE
    committed_at = next(i for i, e in enumerate(events.seen) if e.type == "input_audio_buffer.committed")
    deltas = [
        i for i, e in enumerate(events.seen) if e.type == "conversation.item.input_audio_transcription.delta"
    ]
    assert deltas and min(deltas) > committed_at
    (new,) = set(kept_realtime(app)) - set(before)
    kept = httpx.get(f"{app.url}v1/library/{new}", headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert kept.json()["transcript"]["text"] == PHRASE


def test_a_wrong_key_or_none_is_refused_at_the_handshake(app: RunningApp):
    """The API key covers the WebSocket too: refused with 401 before it opens."""
    connect = client(app, "wrong-key").realtime.connect(extra_query={"intent": "transcription"})
    with pytest.raises(InvalidStatus) as wrong:
        connect.enter()
    assert wrong.value.response.status_code == 401
    assert b"Incorrect API key provided." in wrong.value.response.body
    url = f"{app.url.replace('http', 'ws', 1)}v1/realtime?intent=transcription"
    with pytest.raises(InvalidStatus) as missing:
        websockets.sync.client.connect(url, open_timeout=EVENT_WAIT_S)  # no Authorization header at all
    assert missing.value.response.status_code == 401
    assert b"Send the API key as the header Authorization: Bearer KEY" in missing.value.response.body


def test_a_bad_event_gets_an_error_and_the_session_goes_on(app: RunningApp):
    with client(app).realtime.connect(extra_query={"intent": "transcription"}) as connection:
        events = Events(connection)
        connection.session.update(session=transcription_session())  # type: ignore[arg-type]
        events.next("session.updated")
        connection.input_audio_buffer.append(audio="this is not base64!!")
        error = events.next("error").error
        assert error.type == "invalid_request_error" and error.param == "audio"
        assert "not valid base64" in error.message
        connection.send(
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x01\x02\x03").decode()}
        )
        assert "odd number of bytes" in events.next("error").error.message
        connection.send({"type": "no.such.event"})
        assert events.next("error").error.code == "unknown_event"
        connection.session.update(session=transcription_session(model="canary-qwen"))  # type: ignore[arg-type]
        assert events.next("error").error.message == (
            "canary-qwen cannot transcribe live; the models that can: parakeet, parakeet-v3."
        )
        append_all(connection, pcm16_24k(PHRASE_WAV))  # and the session goes on
        connection.input_audio_buffer.commit()
        assert events.next("conversation.item.input_audio_transcription.completed").transcript == PHRASE


def live_sessions(app: RunningApp) -> int:
    """The live sessions the app has open, as its status panel says."""
    status = Client(app.url, verbose=False, analytics_enabled=False).predict(api_name="/status")[0]
    for line in str(status).splitlines():
        if line.startswith("**live sessions:"):
            return int(line.removeprefix("**live sessions:").strip(" *"))
    return 0


def test_a_client_that_goes_away_frees_its_session(app: RunningApp):
    with client(app).realtime.connect(extra_query={"intent": "transcription"}) as connection:
        events = Events(connection)
        connection.session.update(session=transcription_session())  # type: ignore[arg-type]
        events.next("session.updated")
        append_all(connection, pcm16_24k(PHRASE_DIALOGUE_WAV)[: 24000 * 2 * 3])  # 3 s, no commit
        events.next("localstt.transcription.partial")  # the session is open and stepping
        assert live_sessions(app) == 1
    deadline = time.monotonic() + EVENT_WAIT_S
    while (open_now := live_sessions(app)) != 0:
        if time.monotonic() > deadline:
            pytest.fail(f"{open_now} live session(s) still open {EVENT_WAIT_S} s after the client left")
        time.sleep(0.2)


def test_server_turn_detection_completes_each_turn_as_it_ends(app: RunningApp):
    """OpenAI's default turn detection: a turn ends when NeMo's endpointing sees a pause; each turn is
    its own item, committed and completed, and the last one when the audio is committed."""
    offline = (
        client(app).audio.transcriptions.create(file=PHRASE_DIALOGUE_WAV.open("rb"), model="parakeet").text
    )
    with client(app).realtime.connect(extra_query={"intent": "transcription"}) as connection:
        events = Events(connection)
        connection.session.update(session=transcription_session(turn_detection={"type": "server_vad"}))  # type: ignore[arg-type]
        assert events.next("session.updated").session.audio.input.turn_detection.type == "server_vad"
        append_all(connection, pcm16_24k(PHRASE_DIALOGUE_WAV))
        first = events.next("conversation.item.input_audio_transcription.completed")  # before any commit
        connection.input_audio_buffer.commit()
        events.next("input_audio_buffer.committed")
        last = events.next("conversation.item.input_audio_transcription.completed")
        while (
            " ".join(
                e.transcript
                for e in events.seen
                if e.type == "conversation.item.input_audio_transcription.completed"
            )
            != offline
        ):
            events.next("conversation.item.input_audio_transcription.completed")
    completed = [e for e in events.seen if e.type == "conversation.item.input_audio_transcription.completed"]
    committed = [e for e in events.seen if e.type == "input_audio_buffer.committed"]
    assert len(completed) >= 2 and first.item_id != last.item_id
    assert [e.item_id for e in completed] == [e.item_id for e in committed]  # one item per turn
    assert " ".join(e.transcript for e in completed) == offline
