"""The web wing: the page, the OpenAI-compatible API and the server that serves both.

    launch.py     the command line of `transcribe_ui.py`: arguments, the access policy, then serve
    access.py     who may connect: loopback only unless a password (and an API key) guard it
    server.py     one ASGI app (the page at /, the API at /v1), uvicorn, the share link
    app.py        what the page's events do: jobs through the engine, questions to a language model
    page.py       the Gradio page
    library_tab.py  the Library tab: every kept transcript, searched, edited, downloaded again
    subtitle_controls.py  the subtitle line controls on the page
    status.py     the status panel: each model's pin, size and load
    outputs.py    job folders, their retention sweeper, and the uploads a job leaves behind
    gpu_queue.py  the one queue in front of the models, shared by the page and the API
    openai_api/   the OpenAI-compatible API: fields, replies, guards, routes, the library's routes

Importing any module of this wing runs this file first: the hub libraries are told there is no
network, and Gradio's analytics are switched off, before anything can import gradio.
"""

from __future__ import annotations

import localstt.offline  # noqa: F401,I001  # first: the hub libraries are offline before they are imported
from localstt import environment

environment.no_gradio_analytics()  # before gradio: no calls to api.gradio.app
