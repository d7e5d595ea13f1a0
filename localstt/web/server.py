"""One ASGI app: the page at / and OpenAI's API under /v1, served by uvicorn, with Gradio's share link
when asked for.

The page's password (`Access.auth`) guards the page; the API key (`Access.api_key`) guards the API,
its WebSockets included (localstt/web/openai_api/guards.py).
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr
import uvicorn
from fastapi import FastAPI
from gradio import networking

from localstt.web.access import Access
from localstt.web.app import TranscriptionApp
from localstt.web.openai_api import ApiServer
from localstt.web.page import build_page


def server_app(app: TranscriptionApp, access: Access | None = None) -> Any:
    """The page and the API, mounted on FastAPI as Gradio documents."""
    access = access or Access(None, None)
    max_upload_bytes = app.store.config.app.max_upload_mb << 20
    api = ApiServer(
        app.store,
        app.options,
        app.gpu_queue,
        api_key=access.api_key,
        max_upload_bytes=max_upload_bytes,
        live=app.live,
        library=app.keeper,
    )
    demo = build_page(app)

    @contextlib.asynccontextmanager
    async def running(_: FastAPI) -> AsyncIterator[None]:
        app.serving.set()  # the warm-up waits for it
        yield

    server = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=running)
    server.mount("/v1", api.app())  # before the page: "/" takes every path left
    mounted = gr.mount_gradio_app(server, demo, path="/", auth=access.auth, max_file_size=max_upload_bytes)
    # Gradio checks that a request's files were uploaded (not any path on this machine) only once
    # `has_launched` is set, which launch() does and mount_gradio_app (Gradio 6.31) does not.
    demo.has_launched = True
    return mounted


def serve(app: TranscriptionApp, host: str, port: int, access: Access, *, share: bool = False) -> None:
    """Serve the page and the API on host:port until Ctrl-C (or SIGTERM)."""
    server = uvicorn.Server(
        uvicorn.Config(server_app(app, access), host=host, port=port, log_level="warning")
    )
    shown = f"[{host}]" if ":" in host else host
    print(f"* Running on http://{shown}:{port} (the page) and http://{shown}:{port}/v1 (the API)")
    if share:
        threading.Thread(
            target=_share_link, args=(server, host, port), name="share-link", daemon=True
        ).start()
    server.run()


def _share_link(server: uvicorn.Server, host: str, port: int) -> None:
    """Gradio's public link, made as `launch(share=True)` makes it, once the server is up."""
    while not server.started:
        time.sleep(0.2)
    try:
        url = networking.setup_tunnel(host, port, secrets.token_urlsafe(32), None, None)
    except Exception as error:
        print(f"WARNING: no share link could be made ({error}); the app serves locally.", file=sys.stderr)
        return
    print(f"* Running on public URL: {url.replace('http://', 'https://', 1)}")
