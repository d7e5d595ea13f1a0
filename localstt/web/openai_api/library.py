"""The library's routes under /v1/library (not part of OpenAI's API, so under a path of their own;
behind the same API key as every route under /v1):

    GET /v1/library                      the transcripts, newest first          ?limit=N
    GET /v1/library/search?q=WORDS       the segments that have every word      ?limit=N
    GET /v1/library/{id}                 one transcript as it is now (with its edits), as JSON
    GET /v1/library/{id}/original        the same transcript as it was made
    GET /v1/library/{id}/download?format=srt   a file of it as it is now: txt, srt, vtt or json;
        SRT and WebVTT take the line controls ?max_chars_per_line=&max_lines_per_cue=
        &max_cue_seconds=&min_gap_seconds= (default: config.toml's [subtitles])

Errors are in OpenAI's shape: 404 for a transcript that is not there, 400 for a bad value, 503 when
the library cannot be used (turned off, or its file damaged: the message says which).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from localstt.errors import LibraryError
from localstt.formats import WRITERS, writer_for
from localstt.library.database import Library
from localstt.library.keeper import Keeper
from localstt.library.records import Entry, Hit, Kept, NotInLibrary
from localstt.logfile import report_unexpected
from localstt.subtitles import LIMITS, SubtitleLayout
from localstt.web.openai_api.guards import ApiError

T = TypeVar("T")
MEDIA_TYPES = {
    "txt": "text/plain",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "json": "application/json",
}


def entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "object": "library.entry",
        "source_name": entry.source_name,
        "created_at": entry.created_at,
        "edited_at": entry.edited_at,
        "duration": entry.duration,
        "model": entry.model_key,
        "origin": entry.origin,
        "has_audio": entry.has_audio,
        "preview": entry.preview,
    }


def hit_json(hit: Hit) -> dict[str, Any]:
    return {
        "id": hit.transcript_id,
        "object": "library.hit",
        "source_name": hit.source_name,
        "created_at": hit.created_at,
        "segment": hit.position,
        "at": hit.at,
        "text": hit.text,
        "highlighted": hit.highlighted,
    }


def kept_json(kept: Kept) -> dict[str, Any]:
    return {
        "id": kept.id,
        "object": "library.transcript",
        "uid": kept.uid,
        "origin": kept.origin,
        "created_at": kept.created_at,
        "edited_at": kept.edited_at,
        "sha256": kept.sha256,
        "has_audio": kept.audio is not None,
        "edits": [{"at": when, "what": what} for when, what in kept.edits],
        "transcript": kept.transcript.to_dict(),
    }


class LibraryRoutes:
    """The routes, over the app's library (`keeper`); `layout`: config.toml's [subtitles]."""

    def __init__(self, keeper: Keeper | None, layout: SubtitleLayout, config_path: Path) -> None:
        self.keeper = keeper
        self.layout = layout
        self.config_path = config_path

    def routes(self) -> list[Route]:
        return [
            Route("/library", self.list_entries, methods=["GET"]),
            Route("/library/search", self.search, methods=["GET"]),
            Route("/library/{transcript_id:int}", self.get, methods=["GET"]),
            Route("/library/{transcript_id:int}/original", self.original, methods=["GET"]),
            Route("/library/{transcript_id:int}/download", self.download, methods=["GET"]),
        ]

    async def _answer(self, doing: str, work: Callable[[Library], T]) -> T:
        """`work(library)` on a worker thread; its trouble as an ApiError."""
        if self.keeper is None or self.keeper.library is None:
            problem = self.keeper.problem if self.keeper is not None else "The library is off."
            raise ApiError(503, problem, code="library_unavailable")
        library = self.keeper.library
        try:
            return await run_in_threadpool(work, library)
        except NotInLibrary as error:
            raise ApiError(404, str(error), code="not_found") from None
        except LibraryError as error:  # e.g. busy for too long
            raise ApiError(503, str(error), code="library_unavailable") from None
        except ApiError:
            raise
        except Exception as error:
            sentence = report_unexpected(error, doing, self.config_path)
            raise ApiError(500, f"The library could not answer: {sentence}.", code="library_failed") from None

    async def list_entries(self, request: Request) -> Response:
        try:
            limit = _limit(request)
            entries = await self._answer("listing the library", lambda library: library.entries(limit))
        except ApiError as error:
            return error.response()
        return JSONResponse({"object": "list", "data": [entry_json(e) for e in entries]})

    async def search(self, request: Request) -> Response:
        query = request.query_params.get("q", "")
        try:
            if not query.strip():
                raise ApiError(
                    400, "Give the words to search for as ?q=WORDS.", param="q", code="missing_value"
                )
            limit = _limit(request)
            hits = await self._answer("searching the library", lambda library: library.search(query, limit))
        except ApiError as error:
            return error.response()
        return JSONResponse({"object": "list", "query": query, "data": [hit_json(h) for h in hits]})

    async def get(self, request: Request) -> Response:
        number = int(request.path_params["transcript_id"])
        try:
            kept = await self._answer("opening a transcript", lambda library: library.get(number))
        except ApiError as error:
            return error.response()
        return JSONResponse(kept_json(kept))

    async def original(self, request: Request) -> Response:
        number = int(request.path_params["transcript_id"])
        try:
            made = await self._answer("opening a transcript", lambda library: library.original(number))
        except ApiError as error:
            return error.response()
        return JSONResponse({"id": number, "object": "library.original", "transcript": made.to_dict()})

    async def download(self, request: Request) -> Response:
        number = int(request.path_params["transcript_id"])
        key = request.query_params.get("format", "txt").strip().lower().lstrip(".")
        try:
            if key not in WRITERS:
                raise ApiError(
                    400,
                    f"format={key!r} is not one of {', '.join(WRITERS)}.",
                    param="format",
                    code="invalid_value",
                )
            layout = self._layout(request)
            kept = await self._answer("opening a transcript", lambda library: library.get(number))
        except ApiError as error:
            return error.response()
        stem = Path(kept.transcript.source_name).stem or f"transcript-{number}"
        disposition = f"attachment; filename*=UTF-8''{quote(f'{stem}.{key}')}"
        return PlainTextResponse(
            writer_for(key, layout).render(kept.transcript),
            media_type=MEDIA_TYPES.get(key, "text/plain"),
            headers={"Content-Disposition": disposition},
        )

    def _layout(self, request: Request) -> SubtitleLayout:
        changes: dict[str, float] = {}
        for query_key, name, *_ in LIMITS:
            raw = request.query_params.get(query_key)
            if raw is None:
                continue
            try:
                changes[name] = float(raw)
            except ValueError:
                raise ApiError(
                    400, f"{query_key}={raw!r} is not a number.", param=query_key, code="invalid_value"
                ) from None
        try:
            return self.layout.replace(**changes)
        except ValueError as error:
            raise ApiError(400, str(error), code="invalid_value") from None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "200")
    if not raw.isdigit() or not 1 <= int(raw) <= 10000:
        raise ApiError(
            400, f"limit={raw!r}; use a whole number from 1 to 10000.", param="limit", code="invalid_value"
        )
    return int(raw)
