"""What a realtime session is set to (its model, turn detection and vocabulary), and `session.update`
read into it: each field checked, one sentence for a wrong one (as an `ApiError`, which the
connection sends as an `error` event and goes on)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localstt.config import AppConfig
from localstt.errors import LanguageError, VocabularyError
from localstt.models import family_for
from localstt.spec import Vocabulary
from localstt.vocabulary import merged
from localstt.web.openai_api.fields import find_model
from localstt.web.openai_api.guards import ApiError

INPUT_RATE = 24000  # the SDK's only PCM rate


@dataclass(frozen=True)
class RealtimeSettings:
    model_key: str
    server_vad: bool  # OpenAI's default turn detection for transcription sessions
    vocabulary: Vocabulary  # config.toml's, with the session's `transcription.keywords` added

    @classmethod
    def default(cls, config: AppConfig, streaming: list[str]) -> RealtimeSettings:
        return cls(streaming[0] if streaming else "", True, config.transcription.vocabulary)


def read_session_update(
    session: Any, current: RealtimeSettings, config: AppConfig, streaming: list[str], item_open: bool
) -> RealtimeSettings:
    """The settings after `session.update`'s `session` (ApiError for a wrong field; nothing changes
    then). `item_open`: audio has been appended and not committed or cleared yet."""
    model_key, server_vad, vocabulary = current.model_key, current.server_vad, current.vocabulary
    if not isinstance(session, dict):
        raise ApiError(400, "session.update needs a `session` object.", param="session", code="invalid_value")
    if session.get("type", "transcription") != "transcription":
        raise ApiError(
            400,
            'This server transcribes: set session.type to "transcription" '
            "(and connect with intent=transcription).",
            param="session.type",
            code="invalid_value",
        )
    audio_in = (session.get("audio") or {}).get("input") or {}
    fmt = audio_in.get("format") or {}
    if fmt and (fmt.get("type") not in (None, "audio/pcm") or fmt.get("rate", INPUT_RATE) != INPUT_RATE):
        raise ApiError(
            400,
            "The input audio must be audio/pcm at 24000 Hz (16-bit, mono, little-endian).",
            param="session.audio.input.format",
            code="invalid_value",
        )
    transcription = audio_in.get("transcription") or {}
    model = transcription.get("model")
    if model:
        spec = find_model(config, str(model))
        if spec.key not in streaming:
            live = ", ".join(streaming) or "none"
            raise ApiError(
                400,
                f"{spec.key} cannot transcribe live; the models that can: {live}.",
                param="session.audio.input.transcription.model",
                code="model_not_live",
            )
        if item_open and spec.key != current.model_key:
            raise ApiError(
                400,
                "Commit or clear the audio sent so far before changing the model.",
                param="session.audio.input.transcription.model",
                code="invalid_value",
            )
        model_key = spec.key
    if "keywords" in transcription:
        keywords = transcription["keywords"] or []
        if not isinstance(keywords, list) or not all(isinstance(word, str) for word in keywords):
            raise ApiError(
                400,
                "transcription.keywords is a list of phrases to recognise.",
                param="session.audio.input.transcription.keywords",
                code="invalid_value",
            )
        try:
            vocabulary = merged(config.transcription.vocabulary, keywords)
        except VocabularyError as error:
            raise ApiError(
                400, str(error), param="session.audio.input.transcription.keywords", code="invalid_value"
            ) from None
    language = transcription.get("language")
    if language:
        spec = config.model(model_key)
        try:
            family_for(spec.kind).languages(spec).check(spec.key, str(language))
        except LanguageError as error:
            raise ApiError(
                400, str(error), param="session.audio.input.transcription.language", code="unsupported_value"
            ) from None
    if "turn_detection" in audio_in:
        detection = audio_in["turn_detection"]
        server_vad = isinstance(detection, dict) and detection.get("type") == "server_vad"
        if isinstance(detection, dict) and detection.get("type") not in ("server_vad",):
            raise ApiError(
                400,
                'turn_detection takes null (commit yourself) or {"type": "server_vad"}.',
                param="session.audio.input.turn_detection",
                code="unsupported_value",
            )
    return RealtimeSettings(model_key, server_vad, vocabulary)
