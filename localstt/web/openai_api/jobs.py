"""The app's own endpoint for the command line (`transcribe` sends its recordings to a running app
instead of loading the model itself: localstt/runs/on_app.py). Not OpenAI's: a job needs whole
transcripts back (segments, words, speakers, notes, options, the pinned commit), which OpenAI's
replies cannot carry.

    GET  /v1/localstt/app       which config.toml the app serves, its pins, and where its models run
    POST /v1/localstt/batches   multipart: `job` (JSON: model, options) and the recordings as `file`,
                                in order; the reply streams one JSON line per recording as it is done
                                ({"index", "transcript" (the JSON writer's), "failure"}), then
                                {"done": true}

Each batch takes the app's queue like any other request, and runs as the command line would run it
(localstt/runs/batch.py): the same text, timestamps and files. A client that goes away (Ctrl-C) stops
the job after the batch of recordings under way.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from localstt.errors import LocalSttError
from localstt.formats import WRITERS
from localstt.logfile import report_unexpected
from localstt.options import TranscribeOptions
from localstt.runs.batch import runs_on_gpu, transcribe_many
from localstt.store import ModelStore
from localstt.web.gpu_queue import GpuQueue
from localstt.web.openai_api.fields import upload_name
from localstt.web.openai_api.guards import ApiError

MAX_FILES = 10_000


class JobRoutes:
    """The command line's endpoint, over the app's store and queue."""

    def __init__(self, store: ModelStore, queue: GpuQueue) -> None:
        self.store = store
        self.queue = queue

    def routes(self) -> list[Route]:
        return [
            Route("/localstt/app", self.describe, methods=["GET"]),
            Route("/localstt/batches", self.batch, methods=["POST"]),
        ]

    async def describe(self, request: Request) -> Response:
        config = self.store.config
        model = request.query_params.get("model", "")
        on_gpu = await run_in_threadpool(runs_on_gpu, self.store, model) if model in config.models else False
        return JSONResponse(
            {
                "config": str(config.path),
                "pins": {key: spec.revision for key, spec in config.models.items()},
                "transcribers": list(config.transcribers),
                "on_gpu": on_gpu,
            }
        )

    async def batch(self, request: Request) -> Response:
        folder = Path(tempfile.mkdtemp(prefix="localstt-batch-"))
        try:
            async with request.form(max_files=MAX_FILES, max_fields=MAX_FILES + 8) as form:
                model_key, options = self._job(form.get("job"))
                paths = []
                for number, upload in enumerate(form.getlist("file")):
                    if not isinstance(upload, UploadFile):
                        raise ApiError(
                            400, "Send each recording as a file in the field `file`.", param="file"
                        )
                    path = await run_in_threadpool(_save, upload, folder / str(number))
                    paths.append(path)
        except ApiError as error:
            shutil.rmtree(folder, ignore_errors=True)
            return error.response()
        except Exception as error:
            shutil.rmtree(folder, ignore_errors=True)
            sentence = report_unexpected(error, "receiving a batch", self.store.config.path)
            return ApiError(500, f"The batch could not be received: {sentence}.").response()
        lines = iterate_in_threadpool(self._results(paths, model_key, options, folder))
        return StreamingResponse(lines, media_type="application/x-ndjson")

    def _job(self, field: Any) -> tuple[str, TranscribeOptions]:
        """(the model's key, the options) from the `job` field."""
        try:
            job = json.loads(str(field))
            model_key = str(job["model"])
            options = TranscribeOptions.from_wire(job["options"], "the job's options")
        except LocalSttError as error:  # ConfigError: a setting out of its range
            raise ApiError(400, str(error), param="job") from None
        except (ValueError, KeyError, TypeError):
            raise ApiError(400, 'Send the field `job` as JSON: {"model", "options"}.', param="job") from None
        if model_key not in self.store.config.transcribers:
            known = ", ".join(self.store.config.transcribers) or "none"
            raise ApiError(404, f"This app has no transcription model '{model_key}' (it has: {known}).")
        return model_key, options

    def _results(
        self, paths: list[Path], model_key: str, options: TranscribeOptions, folder: Path
    ) -> Iterator[bytes]:
        """One line per recording as it is done, in the app's turn; the uploads removed at the end,
        also when the client went away."""
        try:
            with self.queue.turn():
                for result in transcribe_many(paths, model_key, options, self.store):
                    transcript = WRITERS["json"].render(result.transcript) if result.transcript else None
                    line = {"index": result.index, "transcript": transcript, "failure": result.failure}
                    yield (json.dumps(line) + "\n").encode()
            yield b'{"done": true}\n'
        except LocalSttError as error:  # the model or the configuration: the client says it in one line
            yield (json.dumps({"error": str(error), "type": type(error).__name__}) + "\n").encode()
        except Exception as error:
            sentence = report_unexpected(
                error, f"transcribing a batch with {model_key}", self.store.config.path
            )
            yield (json.dumps({"error": sentence, "type": "LoadError"}) + "\n").encode()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _save(upload: UploadFile, folder: Path) -> Path:
    """The upload in `folder` (one of its own) under the recording's own name, which its transcript
    keeps; a name this system cannot take is made safe."""
    folder.mkdir()
    name = Path((upload.filename or "").replace("\\", "/")).name
    for candidate in (name, upload_name(upload.filename)):
        if not candidate or candidate in (".", ".."):
            continue
        path = folder / candidate
        try:
            with path.open("wb") as out:
                shutil.copyfileobj(upload.file, out, 1 << 20)
        except OSError:
            if candidate == name:
                continue
            raise
        return path
    raise ApiError(400, "Send each recording with a file name.", param="file")
