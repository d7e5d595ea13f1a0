"""The routes of the API, and what each does with the app's store and queue.

Requests run through the same ModelStore and the same GpuQueue as the page's jobs, so a request
waits its turn like a job, and one that finds the queue full gets 503 with Retry-After at once. An
upload lives in a private temporary folder for the length of its request only.
"""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket

from localstt import engine
from localstt.errors import (
    AudioError,
    ConfigError,
    ExportError,
    LanguageError,
    LocalSttError,
    QueueFull,
    VocabularyError,
)
from localstt.library.keeper import Keeper
from localstt.live.service import LiveService
from localstt.logfile import report_unexpected
from localstt.manifest import export_command, read_manifest
from localstt.models import family_for
from localstt.options import TranscribeOptions
from localstt.spec import ModelSpec
from localstt.store import ModelStore
from localstt.transcript import Segment, Transcript
from localstt.vocabulary import merged
from localstt.web.gpu_queue import GpuQueue
from localstt.web.openai_api.fields import (
    TranscriptionRequest,
    check_fields,
    find_model,
    has_word_times,
    upload_name,
)
from localstt.web.openai_api.guards import ApiError, KeyCheck, UploadLimit, http_error, unsupported
from localstt.web.openai_api.jobs import JobRoutes
from localstt.web.openai_api.library import LibraryRoutes
from localstt.web.openai_api.realtime import RealtimeConnection
from localstt.web.openai_api.replies import model_card, sse_event, transcript_reply

logger = logging.getLogger(__name__)
RETRY_AFTER_S = 10
_CHUNK = 1 << 20


@dataclass
class ApiServer:
    """What the API needs from the app: its store, options, queue and limits."""

    store: ModelStore
    options: TranscribeOptions
    queue: GpuQueue
    api_key: str | None = None
    max_upload_bytes: int = 2048 << 20
    live: LiveService | None = None  # the app's live sessions, for /realtime
    library: Keeper | None = None  # the app's library: each transcript is kept there; /library

    def app(self) -> ASGIApp:
        """The ASGI app to mount at /v1."""
        routes = [
            Route("/audio/transcriptions", self.transcriptions, methods=["POST"]),
            Route("/audio/translations", self.translations, methods=["POST"]),
            Route("/models", self.list_models, methods=["GET"]),
            Route("/models/{model_id:path}", self.get_model, methods=["GET"]),
            WebSocketRoute("/realtime", self.realtime),
            *LibraryRoutes(self.library, self.store.config.subtitles, self.store.config.path).routes(),
            *JobRoutes(self.store, self.queue).routes(),
        ]
        api = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
        return KeyCheck(UploadLimit(api, self.max_upload_bytes), self.api_key)

    # Routes

    async def transcriptions(self, request: Request) -> Response:
        try:
            async with request.form(max_files=1, max_fields=64) as form:
                return await self._transcribe_form(form)
        except ApiError as error:
            return error.response()
        except Exception as error:  # e.g. the disk is full: one sentence, the details to the log file
            sentence = report_unexpected(error, "answering a transcription request", self.store.config.path)
            return ApiError(500, f"The request failed: {sentence}.").response()

    async def translations(self, request: Request) -> Response:
        """OpenAI's translation into English, by a model of the app that translates; the spoken
        language comes in the extra field `language` (docs/api.md)."""
        try:
            async with request.form(max_files=1, max_fields=64) as form:
                return await self._transcribe_form(form, translate_to="en")
        except ApiError as error:
            return error.response()
        except Exception as error:
            sentence = report_unexpected(error, "answering a translation request", self.store.config.path)
            return ApiError(500, f"The request failed: {sentence}.").response()

    async def list_models(self, request: Request) -> Response:
        cards = [self._model_card(spec) for spec in self.store.config.transcribers.values()]
        return JSONResponse({"object": "list", "data": cards})

    async def get_model(self, request: Request) -> Response:
        try:
            spec = find_model(self.store.config, str(request.path_params["model_id"]))
        except ApiError as error:
            return error.response()
        return JSONResponse(self._model_card(spec))

    async def realtime(self, websocket: WebSocket) -> None:
        live = self.live or LiveService(self.store, self.store.config.live)
        await websocket.accept()
        await RealtimeConnection(websocket, live, self.library).run()

    # The transcription

    async def _transcribe_form(self, form: FormData, translate_to: str = "") -> Response:
        checked = check_fields(form, self.store, translate_to)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "Add the recording as the multipart field `file`.", param="file")
        folder = Path(tempfile.mkdtemp(prefix="localstt-api-"))
        path = folder / upload_name(upload.filename)
        streaming = False  # then the stream removes the folder when it ends
        try:
            with path.open("wb") as out:
                await run_in_threadpool(shutil.copyfileobj, upload.file, out, _CHUNK)
            await upload.close()
            if checked.stream:
                reply = await run_in_threadpool(self._stream, checked, path, folder)
                streaming = True
                return reply
            transcript = await run_in_threadpool(self._run, checked, path, None)
            await run_in_threadpool(self._keep, transcript, path)
        finally:
            if not streaming:
                shutil.rmtree(folder, ignore_errors=True)
        return transcript_reply(
            transcript,
            checked.response_format,
            checked.granularities,
            checked.speaker_names,
            self.store.config.subtitles,
        )

    def _keep(self, transcript: Transcript, path: Path) -> None:
        """Into the library (when it is on); a failure there is logged, the reply goes out anyway."""
        if self.library is not None and (note := self.library.keep(transcript, "api", source=path)):
            logger.warning("%s", note)

    def _run(
        self,
        checked: TranscriptionRequest,
        path: Path,
        segments_done: Callable[[list[Segment]], None] | None,
    ) -> Transcript:
        """The transcript, once this request's turn came (the recording is decoded in the turn, so
        that waiting requests hold files, not decoded audio); errors as ApiError."""
        try:
            options = self.options
            if checked.speakers:
                options = options.replace(speakers=True, speaker_names=checked.speaker_names)
            if checked.keywords:
                options = options.replace(vocabulary=merged(options.vocabulary, checked.keywords))
            options = options.replace(language=checked.language, translate_to=checked.translate_to)
            with self.queue.turn(refuse_when_full=True):
                return engine.transcribe(path, checked.model_key, options, self.store, None, segments_done)
        except QueueFull as error:
            raise ApiError(
                503, str(error), code="queue_full", headers={"Retry-After": str(RETRY_AFTER_S)}
            ) from None
        except AudioError as error:
            raise ApiError(400, str(error), param="file", code="invalid_audio") from None
        except ExportError as error:
            raise ApiError(503, str(error), param="model", code="model_not_exported") from None
        except VocabularyError as error:
            raise ApiError(400, str(error), param="keywords", code="invalid_value") from None
        except LanguageError as error:
            raise unsupported(error.about, str(error)) from None
        except ConfigError as error:
            raise ApiError(404, str(error), param="model", code="model_not_found") from None
        except LocalSttError as error:  # EngineError (e.g. out of memory), LoadError
            raise ApiError(500, str(error), code="transcription_failed") from None
        except Exception as error:
            sentence = report_unexpected(
                error, f"transcribing {path.name} with {checked.model_key}", self.store.config.path
            )
            raise ApiError(
                500, f"The recording could not be transcribed: {sentence}.", code="transcription_failed"
            ) from None

    def _stream(self, checked: TranscriptionRequest, path: Path, folder: Path) -> Response:
        """Server-sent events: `transcript.text.delta` per segment as the model finishes it, then
        `transcript.text.done`. An error before the first segment is an ordinary error reply; one
        after it is an `error` event (the SDK raises it). `folder` (the upload's) is removed at the end."""
        events: queue.Queue[tuple[str, Any]] = queue.Queue()

        def work() -> None:
            try:
                transcript = self._run(checked, path, lambda done: events.put(("segments", done)))
            except ApiError as error:
                events.put(("error", error))
            else:
                self._keep(transcript, path)
                events.put(("done", transcript))
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        threading.Thread(target=work, name="api-stream", daemon=True).start()
        first = events.get()
        if first[0] == "error":
            raise first[1]

        def sse() -> Iterator[bytes]:
            item, spoken = first, False
            while True:
                kind, value = item
                if kind == "segments":
                    for segment in value:
                        if text := segment.text.strip():
                            delta = f" {text}" if spoken else text
                            spoken = True
                            yield sse_event({"type": "transcript.text.delta", "delta": delta})
                elif kind == "done":
                    usage = {"type": "duration", "seconds": value.duration}
                    yield sse_event({"type": "transcript.text.done", "text": value.text, "usage": usage})
                    yield b"data: [DONE]\n\n"
                    return
                else:
                    yield sse_event(value.body)
                    return
                item = events.get()

        return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    def _model_card(self, spec: ModelSpec) -> dict[str, Any]:
        return model_card(
            spec,
            read_manifest(self.store.export_dir(spec.key)),
            self.store.loaded(spec.key) is not None,
            has_word_times(spec),
            export_command(spec.key, self.store.config.path),
            family_for(spec.kind).languages(spec),
        )
