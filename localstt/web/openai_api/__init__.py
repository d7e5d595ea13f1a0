"""OpenAI's transcription API, served by the web app's own process under /v1.

    POST /v1/audio/transcriptions   multipart, the fields of OpenAI's `audio.transcriptions.create`
    POST /v1/audio/translations     the same, translated into English by a model that translates
    GET  /v1/models                 the models of config.toml, with their pin and export state
    GET  /v1/models/{id}            one of them, by key or by repo
    GET  /v1/realtime               WebSocket: OpenAI's Realtime API for live transcription
    /v1/localstt/...                the command line's own endpoint (jobs.py), not OpenAI's

    guards.py   errors in OpenAI's shape, the API key (HTTP and WebSocket), the upload limit
    fields.py   a request's fields, checked
    replies.py  the answers: each response format, model cards, server-sent events
    routes.py   the routes, through the app's store and queue
    realtime.py the realtime WebSocket: a live session per item
    jobs.py     the command line's batches: whole transcripts back, one JSON line each

A new endpoint is one route in routes.py and its reply in replies.py. Speakers (config.toml's speaker
diarizer runs beside the model): `response_format=diarized_json` answers in OpenAI's shape, speakers
labelled "A", "B", ... in order of first appearance, or by `known_speaker_names[]` in that order (there
are no voice references to match: the n-th name goes to the n-th voice heard).
"""

from __future__ import annotations

from localstt.web.openai_api.routes import ApiServer

__all__ = ["ApiServer"]
