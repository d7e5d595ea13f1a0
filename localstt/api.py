"""OpenAI's transcription API, served by the web app's own process under /v1.

    POST /v1/audio/transcriptions   multipart, the fields of OpenAI's `audio.transcriptions.create`
    POST /v1/audio/translations     400: these models do not translate
    GET  /v1/models                 the models of config.toml, with their pin and export state
    GET  /v1/models/{id}            one of them, by key ("parakeet") or repo ("nvidia/parakeet-tdt-0.6b-v2")

Requests run through the same ModelStore and the same GpuQueue as the web app's jobs, so a request
waits its turn like a job, and one that finds the queue full gets 503 with Retry-After at once.
Every error is OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, its message the
same sentence the CLI prints. An upload lives in a private temporary folder for the length of its
request only.

Where OpenAI's API and these models differ (README.md, "OpenAI-compatible API", lists it all):
`prompt`, `temperature` and `keywords` are accepted and change nothing; `language` must be English;
`word` timestamps need `verbose_json` (as at OpenAI) and a model that has them (Parakeet);
segments carry no Whisper scores (avg_logprob, compression_ratio, no_speech_prob);
`chunking_strategy`, `known_speaker_references[]` and `include[]=logprobs` are refused.

Speakers (config.toml's speaker diarizer runs beside the model): `response_format=diarized_json`
answers in OpenAI's shape, speakers labelled "A", "B", ... in order of first appearance, or by
`known_speaker_names[]` in that order (there are no voice references to match: the n-th name goes
to the n-th voice heard). `known_speaker_names[]` with another format labels its segments too.
"""

from __future__ import annotations

import hmac
import json
import logging
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from localstt import engine
from localstt.errors import AudioError, ConfigError, ExportError, LocalSttError, QueueFull
from localstt.gpu_queue import GpuQueue
from localstt.logfile import report_unexpected
from localstt.manifest import export_command, read_manifest
from localstt.models import Transcriber, family_for
from localstt.options import TranscribeOptions
from localstt.portability import safe_file_stem
from localstt.spec import ModelSpec
from localstt.store import ModelStore
from localstt.subtitles import WRITERS
from localstt.transcript import Segment, Transcript

logger = logging.getLogger(__name__)

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
GRANULARITIES = ("word", "segment")
ENGLISH = {"en", "eng", "english"}
RETRY_AFTER_S = 10
_CHUNK = 1 << 20


class ApiError(Exception):
    """One reply in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    @property
    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def unsupported(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param, code="unsupported_value")


@dataclass(frozen=True)
class TranscriptionRequest:
    """A request's fields, checked: what the engine needs and how to answer."""

    model_key: str
    response_format: str
    granularities: frozenset[str]
    stream: bool
    speakers: bool = False
    speaker_names: tuple[str, ...] = ()  # known_speaker_names[], in order of first appearance


@dataclass
class ApiServer:
    """What the API needs from the app: its store, options, queue and limits."""

    store: ModelStore
    options: TranscribeOptions
    queue: GpuQueue
    api_key: str | None = None
    max_upload_bytes: int = 2048 << 20

    def app(self) -> ASGIApp:
        """The ASGI app to mount at /v1."""
        routes = [
            Route("/audio/transcriptions", self.transcriptions, methods=["POST"]),
            Route("/audio/translations", self.translations, methods=["POST"]),
            Route("/models", self.list_models, methods=["GET"]),
            Route("/models/{model_id:path}", self.get_model, methods=["GET"]),
        ]
        api = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
        return _KeyCheck(_UploadLimit(api, self.max_upload_bytes), self.api_key)

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
        return unsupported(
            "model",
            "These models transcribe English and do not translate; use /v1/audio/transcriptions.",
        ).response()

    async def list_models(self, request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [self._model_card(spec) for spec in self.store.config.transcribers.values()],
            }
        )

    async def get_model(self, request: Request) -> Response:
        try:
            spec = self._find_model(str(request.path_params["model_id"]))
        except ApiError as error:
            return error.response()
        return JSONResponse(self._model_card(spec))

    # The transcription

    async def _transcribe_form(self, form: FormData) -> Response:
        from starlette.concurrency import run_in_threadpool

        checked = self._check_fields(form)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "Add the recording as the multipart field `file`.", param="file")
        folder = Path(tempfile.mkdtemp(prefix="localstt-api-"))
        path = folder / _upload_name(upload.filename)
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
        finally:
            if not streaming:
                shutil.rmtree(folder, ignore_errors=True)
        return _reply(transcript, checked)

    def _check_fields(self, form: FormData) -> TranscriptionRequest:
        model = _text(form, "model")
        if not model:
            raise ApiError(400, "Name a model in the field `model`, e.g. parakeet.", param="model")
        spec = self._find_model(model)
        response_format = _text(form, "response_format") or "json"
        if response_format not in RESPONSE_FORMATS:
            raise unsupported(
                "response_format",
                f"response_format {response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}.",
            )
        granularities = frozenset(_list(form, "timestamp_granularities"))
        if unknown := sorted(granularities - set(GRANULARITIES)):
            raise unsupported(
                "timestamp_granularities",
                f"timestamp_granularities takes word and segment, not {unknown[0]!r}.",
            )
        if "word" in granularities and response_format != "verbose_json":
            raise ApiError(
                400,
                "Word timestamps come only with response_format=verbose_json.",
                param="timestamp_granularities",
                code="invalid_value",
            )
        if "word" in granularities and not has_word_times(spec):
            raise unsupported(
                "timestamp_granularities",
                f"{spec.key} gives no word timestamps (it transcribes in windows); use segment, "
                "or a Parakeet model for words.",
            )
        for field_name in ("language", "languages"):
            for language in [_text(form, field_name), *_list(form, field_name)]:
                if language and language.lower().split("-")[0].split("_")[0] not in ENGLISH:
                    raise unsupported(
                        field_name,
                        f"These models transcribe English only, not {language!r}; send en or leave it out.",
                    )
        temperature = _text(form, "temperature")
        if temperature:
            try:
                value = float(temperature)
            except ValueError:
                value = -1.0
            if not 0.0 <= value <= 1.0:
                raise ApiError(
                    400, "temperature is a number from 0 to 1.", param="temperature", code="invalid_value"
                )
        if _text(form, "chunking_strategy"):
            raise unsupported(
                "chunking_strategy",
                "chunking_strategy is not supported: the server chooses how to read long audio.",
            )
        if _list(form, "known_speaker_references"):
            raise unsupported(
                "known_speaker_references",
                "known_speaker_references is not supported: speakers are named in the order they are first "
                "heard; send known_speaker_names[] alone.",
            )
        names = tuple(name.strip() for name in _list(form, "known_speaker_names"))
        speakers = response_format == "diarized_json" or any(names)
        if speakers:
            try:
                engine.diarizer_key(self.store)
            except ConfigError as error:
                param = "response_format" if response_format == "diarized_json" else "known_speaker_names"
                raise unsupported(param, str(error)) from None
        if included := _list(form, "include"):
            raise unsupported("include", f"include {included[0]!r} is not available from these models.")
        stream = (_text(form, "stream") or "false").lower() in {"true", "1", "yes"}
        if stream and response_format not in ("json", "text"):
            raise unsupported(
                "stream",
                f"stream=true sends text events; use response_format json or text, not {response_format}.",
            )
        return TranscriptionRequest(spec.key, response_format, granularities, stream, speakers, names)

    def _find_model(self, model_id: str) -> ModelSpec:
        models = self.store.config.transcribers
        if model_id in models:
            return models[model_id]
        for spec in models.values():
            if spec.repo.lower() == model_id.lower():
                return spec
        known = ", ".join(models)
        raise ApiError(
            404,
            f"The model {model_id!r} does not exist here; the models are: {known}.",
            param="model",
            code="model_not_found",
        )

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
                            yield _event({"type": "transcript.text.delta", "delta": delta})
                elif kind == "done":
                    usage = {"type": "duration", "seconds": value.duration}
                    yield _event({"type": "transcript.text.done", "text": value.text, "usage": usage})
                    yield b"data: [DONE]\n\n"
                    return
                else:
                    yield _event(value.body)
                    return
                item = events.get()

        return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    def _model_card(self, spec: ModelSpec) -> dict[str, Any]:
        manifest = read_manifest(self.store.export_dir(spec.key))
        exported = manifest is not None and manifest.matches(spec)
        created = 0
        if manifest is not None and manifest.exported_at:
            try:
                created = int(datetime.fromisoformat(manifest.exported_at).timestamp())
            except ValueError:
                created = 0
        card: dict[str, Any] = {
            "id": spec.key,
            "object": "model",
            "created": created,
            "owned_by": spec.repo.split("/")[0],
            "repo": spec.repo,
            "revision": spec.revision,
            "exported": exported,
            "loaded": self.store.loaded(spec.key) is not None,
            "word_timestamps": has_word_times(spec),
        }
        if not exported:
            card["export_command"] = export_command(spec.key, self.store.config.path)
        return card


def has_word_times(spec: ModelSpec) -> bool:
    family = family_for(spec.kind)
    return isinstance(family, Transcriber) and family.has_word_times


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    messages = {
        404: f"There is no {request.url.path} here.",
        405: f"{request.method} is not allowed on {request.url.path}.",
    }
    message = messages.get(error.status_code, str(error.detail))
    return ApiError(error.status_code, message).response()


def _reply(transcript: Transcript, checked: TranscriptionRequest) -> Response:
    usage = {"type": "duration", "seconds": transcript.duration}
    if checked.response_format == "json":
        return JSONResponse({"text": transcript.text, "usage": usage})
    if checked.response_format == "verbose_json":
        body: dict[str, Any] = {
            "task": "transcribe",
            "language": "english",
            "duration": transcript.duration,
            "text": transcript.text,
        }
        # As OpenAI: segments unless only words were asked for; words only when asked for.
        if checked.granularities != {"word"}:
            body["segments"] = [
                _segment(number, segment, transcript) for number, segment in enumerate(transcript.segments)
            ]
        if "word" in checked.granularities:
            body["words"] = [{"word": w.text, "start": w.start, "end": w.end} for w in transcript.words]
        body["usage"] = usage
        return JSONResponse(body)
    if checked.response_format == "diarized_json":
        # OpenAI's labels: the known names in order, else "A", "B", ... (Sortformer tells at most 4)
        given = checked.speaker_names
        labels = [
            (given[index] if index < len(given) else "") or chr(ord("A") + index)
            for index in range(len(transcript.speaker_names))
        ]
        return JSONResponse(
            {
                "task": "transcribe",
                "duration": transcript.duration,
                "text": transcript.text,
                "segments": [
                    {
                        "type": "transcript.text.segment",
                        "id": f"seg_{number}",
                        "start": segment.start,
                        "end": segment.end,
                        "text": segment.text,
                        "speaker": labels[segment.speaker] if segment.speaker is not None else "",
                    }
                    for number, segment in enumerate(transcript.segments)
                ],
                "usage": usage,
            }
        )
    if checked.response_format == "text":
        if transcript.has_speakers:
            return PlainTextResponse(WRITERS["txt"].render(transcript))
        return PlainTextResponse(transcript.text + "\n")
    return PlainTextResponse(WRITERS[checked.response_format].render(transcript))


def _segment(number: int, segment: Segment, transcript: Transcript) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": number,
        "seek": int(segment.start * 100),  # as Whisper's: the 10 ms frame it starts at
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "tokens": [],
        "temperature": 0.0,  # greedy decoding
    }
    if segment.speaker is not None:
        out["speaker"] = transcript.speaker_name(segment.speaker)
    return out


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _list(form: FormData, name: str) -> list[str]:
    """A list field, as the SDK sends it (`name[]`, repeated) or by its plain name."""
    values = [*form.getlist(f"{name}[]"), *form.getlist(name)]
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def _upload_name(filename: str | None) -> str:
    name = Path((filename or "recording").replace("\\", "/")).name
    suffix = Path(name).suffix if len(Path(name).suffix) <= 8 else ""
    return safe_file_stem(Path(name).stem, "recording") + suffix


class _KeyCheck:
    """With a key set: every request needs `Authorization: Bearer KEY` (401 otherwise)."""

    def __init__(self, app: ASGIApp, key: str | None) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.key is not None:
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, token = given.partition(" ")
            if not given:
                error = ApiError(
                    401,
                    "Send the API key as the header Authorization: Bearer KEY (the key the server was "
                    "started with: --api-key or LOCALSTT_API_KEY).",
                    code="invalid_api_key",
                )
                await error.response()(scope, receive, send)
                return
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), self.key.encode()
            ):
                error = ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _UploadLimit:
    """Refuses a request body over `limit` bytes with 413: at once by its Content-Length, else as
    soon as that many bytes have come (reading it stops there; the part read is thrown away)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def refusal(self) -> ApiError:
        return ApiError(
            413,
            f"The upload is larger than this server's limit of {self.limit / (1 << 20):g} MB "
            "(max_upload_mb in config.toml).",
            param="file",
            code="file_too_large",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.limit:
            await self.refusal().response()(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise self.refusal()  # while the form is read: the route answers it
            return message

        await self.app(scope, counted, send)
