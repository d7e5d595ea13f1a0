"""What stands in front of every route: errors in OpenAI's shape, the API key, the upload limit.

Every error is `{"error": {"message", "type", "param", "code"}}`, its message the same sentence the
command line prints. The key check covers HTTP requests and WebSocket handshakes alike.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket


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


async def http_error(request: Request, error: Exception) -> Response:
    """Starlette's own 404 and 405, in OpenAI's shape."""
    assert isinstance(error, HTTPException)
    messages = {
        404: f"There is no {request.url.path} here.",
        405: f"{request.method} is not allowed on {request.url.path}.",
    }
    message = messages.get(error.status_code, str(error.detail))
    return ApiError(error.status_code, message).response()


class KeyCheck:
    """With a key set: every request and every WebSocket handshake needs `Authorization: Bearer KEY`
    (401 otherwise; a WebSocket is refused before it is accepted)."""

    def __init__(self, app: ASGIApp, key: str | None) -> None:
        self.app = app
        self.key = key

    def refusal(self, scope: Scope) -> ApiError | None:
        """Why this request may not pass, or None when it may."""
        if self.key is None:
            return None
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = given.partition(" ")
        if not given:
            return ApiError(
                401,
                "Send the API key as the header Authorization: Bearer KEY (the key the server was "
                "started with: --api-key or LOCALSTT_API_KEY).",
                code="invalid_api_key",
            )
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.key.encode()):
            return ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and (error := self.refusal(scope)) is not None:
            if scope["type"] == "http":
                await error.response()(scope, receive, send)
            else:  # an HTTP 401 answer to the handshake, where the server can send one; else close
                await WebSocket(scope, receive, send).send_denial_response(error.response())
            return
        await self.app(scope, receive, send)


class UploadLimit:
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
