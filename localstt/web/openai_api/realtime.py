"""`GET /v1/realtime`: OpenAI's Realtime API for transcription, over a WebSocket.

As the official SDK speaks it (`client.realtime.connect(model=..., extra_query={"intent": "transcription"})`):

    client -> server                              server -> client
    session.update  (type "transcription",        session.created (on connect), session.updated
      audio.input: format audio/pcm 24 kHz,
      transcription.model, turn_detection)
    input_audio_buffer.append  (base64 PCM16)     conversation.item.input_audio_transcription.delta
                                                  (final text, as it settles; never taken back)
    input_audio_buffer.commit                     input_audio_buffer.committed, then ...completed
    input_audio_buffer.clear                      input_audio_buffer.cleared
                                                  error (OpenAI's shape; the session goes on)

Items: an item opens at the first append after the session starts or after the previous commit, so
its deltas come while audio is still being appended; the commit flushes its tail (the last words are
kept) and answers `committed` and `completed` with the same `item_id`. With `turn_detection` of type
`server_vad` (OpenAI's default), NeMo's endpointing ends the turns instead: each time text becomes
final after a pause, that item is committed and completed and the next one opens.

Two events of this server's own, which clients that do not know them ignore:
`localstt.transcription.partial` (the item's text after its final part, which may still change) and
`localstt.live.status` (how far behind the live steps are, and why: e.g. a file job holds the model).

The audio is 24 kHz PCM16 (the SDK's only rate); it is resampled to 16 kHz here. One connection is
one live session at a time; `max_live_sessions` of config.toml's [live] bounds them all.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soxr
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from localstt.errors import LiveError, LocalSttError
from localstt.library.keeper import Keeper
from localstt.live.service import LiveService
from localstt.live.session import LiveEvent, LiveSession
from localstt.transcript import Transcript
from localstt.web.openai_api.guards import ApiError
from localstt.web.openai_api.realtime_settings import INPUT_RATE, RealtimeSettings, read_session_update

logger = logging.getLogger(__name__)

MAX_APPEND_BYTES = 15 << 20  # OpenAI's own limit for one append's audio
CLIENT_EVENTS = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
)
_event_ids = itertools.count(1)


def server_event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": f"event_{next(_event_ids)}", **fields}


def error_event(
    message: str, code: str, param: str | None = None, client_event: str | None = None
) -> dict[str, Any]:
    error = {"type": "invalid_request_error", "code": code, "message": message, "param": param}
    return server_event("error", error={**error, "event_id": client_event})


@dataclass
class _Item:
    id: str
    session: LiveSession
    previous: str | None
    sent_final: list[str] = field(default_factory=list)  # final text of this item, as the deltas sent it


class RealtimeConnection:
    """One WebSocket: its settings, its open item, and the events going out in order."""

    def __init__(self, websocket: WebSocket, live: LiveService, keeper: Keeper | None = None) -> None:
        self.websocket = websocket
        self.live = live
        self.keeper = keeper  # the library, where each committed item's transcript is kept
        self.outgoing: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.settings = RealtimeSettings.default(live.store.config, live.streaming_models())
        self.session_id = "sess_" + secrets.token_hex(8)
        self.item: _Item | None = None
        self.last_item: str | None = None
        self.resampler = soxr.ResampleStream(INPUT_RATE, 16000, 1, "float32", "HQ")

    # The session's description, as session.created and session.updated give it

    def description(self) -> dict[str, Any]:
        detection = {"type": "server_vad"} if self.settings.server_vad else None
        return {
            "type": "transcription",
            "id": self.session_id,
            "object": "realtime.transcription_session",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": INPUT_RATE},
                    "transcription": {"model": self.settings.model_key},
                    "turn_detection": detection,
                }
            },
        }

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_all())
        try:
            await self.send(server_event("session.created", session=self.description()))
            while True:
                message = await self.websocket.receive_text()
                await self.handle(message)
        except WebSocketDisconnect:
            pass
        finally:
            if self.item is not None:  # the client went away mid-item: its state is freed at once
                self.live.abort(self.item.session, "the client disconnected")
                self.item = None
            await self.outgoing.put(None)
            await sender

    async def send(self, event: dict[str, Any]) -> None:
        await self.outgoing.put(event)

    async def _send_all(self) -> None:
        while (event := await self.outgoing.get()) is not None:
            try:
                await self.websocket.send_text(json.dumps(event, ensure_ascii=False))
            except Exception:  # the client went away: the receive loop sees it too
                return

    # Client events

    async def handle(self, message: str) -> None:
        try:
            event = json.loads(message)
        except ValueError:
            await self.send(
                error_event("The message is not JSON; send one JSON event per message.", "invalid_json")
            )
            return
        if not isinstance(event, dict):
            await self.send(error_event("An event is a JSON object with a `type`.", "invalid_event"))
            return
        kind, event_id = event.get("type"), event.get("event_id")
        try:
            if kind == "session.update":
                await self.update(event.get("session"), event_id)
            elif kind == "input_audio_buffer.append":
                await self.append(event.get("audio"), event_id)
            elif kind == "input_audio_buffer.commit":
                await self.commit(event_id)
            elif kind == "input_audio_buffer.clear":
                await self.clear()
            else:
                known = ", ".join(CLIENT_EVENTS)
                raise ApiError(
                    400,
                    f"This server does not handle {kind!r} events; it handles {known}.",
                    param="type",
                    code="unknown_event",
                )
        except ApiError as error:
            await self.send(error_event(error.message, error.code or "invalid_value", error.param, event_id))
        except LocalSttError as error:
            await self.send(error_event(str(error), "live_unavailable", None, event_id))

    async def update(self, session: Any, event_id: str | None) -> None:
        config, streaming = self.live.store.config, self.live.streaming_models()
        self.settings = read_session_update(session, self.settings, config, streaming, self.item is not None)
        await self.send(server_event("session.updated", session=self.description()))

    async def append(self, audio: Any, event_id: str | None) -> None:
        if not isinstance(audio, str):
            raise ApiError(
                400,
                "input_audio_buffer.append needs `audio`: base64 of 16-bit PCM.",
                param="audio",
                code="invalid_value",
            )
        if len(audio) * 3 // 4 > MAX_APPEND_BYTES:
            raise ApiError(
                400,
                f"One append carries at most {MAX_APPEND_BYTES >> 20} MB of audio; send smaller pieces.",
                param="audio",
                code="audio_too_large",
            )
        try:
            raw = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(
                400,
                "`audio` is not valid base64; send base64 of 16-bit PCM.",
                param="audio",
                code="invalid_value",
            ) from None
        if len(raw) % 2:
            raise ApiError(
                400,
                "`audio` has an odd number of bytes; 16-bit PCM has two per sample.",
                param="audio",
                code="invalid_value",
            )
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        item = self.item or await self._open_item()
        self.live.feed(item.session, self.resampler.resample_chunk(samples))

    async def commit(self, event_id: str | None) -> None:
        item = self.item
        if item is None or item.session.received == 0:
            raise ApiError(
                400,
                "Nothing to commit: append audio first.",
                param=None,
                code="input_audio_buffer_commit_empty",
            )
        self.item = None
        tail = self.resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        self.resampler = soxr.ResampleStream(INPUT_RATE, 16000, 1, "float32", "HQ")
        if len(tail):
            self.live.feed(item.session, tail)
        if not self.settings.server_vad:
            committed = server_event(
                "input_audio_buffer.committed", item_id=item.id, previous_item_id=item.previous
            )
            await self.send(committed)
            transcript = await run_in_threadpool(self.live.close, item.session)
            await run_in_threadpool(self._keep, transcript, item.session)  # in the library when completed
            await self.send(self._completed(item.id, transcript.text, transcript.duration))
            return
        # With turn detection the flush ends the last turn, which its final text commits and completes
        # (`_on_live_event`); a commit that brings no more text is acknowledged with an empty item.
        turn = item.id
        transcript = await run_in_threadpool(self.live.close, item.session)
        await asyncio.sleep(0)  # the flushed turn's events, queued from the worker, go first
        if item.id == turn:
            committed = server_event(
                "input_audio_buffer.committed", item_id=item.id, previous_item_id=item.previous
            )
            await self.send(committed)
            await self.send(self._completed(item.id, "", transcript.duration))
        await run_in_threadpool(self._keep, transcript, item.session)

    def _keep(self, transcript: Transcript, session: LiveSession) -> None:
        """The committed audio's transcript into the library (all its turns with server VAD)."""
        if self.keeper is not None and (
            note := self.keeper.keep(transcript, "realtime", samples=session.recording())
        ):
            logger.warning("%s", note)

    async def clear(self) -> None:
        if self.item is not None:
            self.live.abort(self.item.session, "the client cleared its audio")
            self.item = None
        self.resampler = soxr.ResampleStream(INPUT_RATE, 16000, 1, "float32", "HQ")
        await self.send(server_event("input_audio_buffer.cleared"))

    # Items

    async def _open_item(self) -> _Item:
        item_id = "item_" + secrets.token_hex(8)
        previous = self.last_item
        self.last_item = item_id
        opened: list[_Item] = []  # its events keep going to it after a commit, until completed

        def listener(event: LiveEvent) -> None:  # from the live worker's thread: into this loop
            self.loop.call_soon_threadsafe(self._on_live_event, opened, event)

        try:
            key, vocabulary = self.settings.model_key, self.settings.vocabulary
            session = await run_in_threadpool(self.live.open, key, listener, vocabulary)
        except LiveError as error:
            raise ApiError(400, str(error), code="live_unavailable") from None
        self.item = _Item(item_id, session, previous)
        opened.append(self.item)
        return self.item

    def _on_live_event(self, opened: list[_Item], event: LiveEvent) -> None:
        if not opened:
            return
        item = opened[0]
        if event.kind == "final" and event.text:
            delta = event.text if not item.sent_final else " " + event.text
            item.sent_final.append(event.text)
            self.outgoing.put_nowait(
                server_event(
                    "conversation.item.input_audio_transcription.delta",
                    item_id=item.id,
                    content_index=0,
                    delta=delta,
                )
            )
            if self.settings.server_vad:
                self.outgoing.put_nowait(
                    server_event(
                        "input_audio_buffer.committed", item_id=item.id, previous_item_id=item.previous
                    )
                )
                text = " ".join(item.sent_final)
                self.outgoing.put_nowait(
                    self._completed(item.id, text, event.words[-1].end if event.words else 0.0)
                )
                item.sent_final = []
                new_id = "item_" + secrets.token_hex(8)
                item.previous, item.id = item.id, new_id
                self.last_item = new_id
        elif event.kind == "partial":
            self.outgoing.put_nowait(
                server_event("localstt.transcription.partial", item_id=item.id, text=event.text)
            )
        elif event.kind == "status":
            self.outgoing.put_nowait(
                server_event("localstt.live.status", behind_s=round(event.behind_s, 2), waiting=event.waiting)
            )

    @staticmethod
    def _committed(item: _Item) -> dict[str, Any]:
        return server_event("input_audio_buffer.committed", item_id=item.id, previous_item_id=item.previous)

    @staticmethod
    def _completed(item_id: str, text: str, seconds: float) -> dict[str, Any]:
        return server_event(
            "conversation.item.input_audio_transcription.completed",
            item_id=item_id,
            content_index=0,
            transcript=text,
            usage={"type": "duration", "seconds": round(seconds, 3)},
        )
