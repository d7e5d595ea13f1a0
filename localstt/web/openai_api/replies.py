"""What the API answers: a transcript in each of OpenAI's response formats, a model card, and the
server-sent events of a streamed transcription.

The formats are OpenAI's own shapes (json, verbose_json, diarized_json, text) and every subtitle
format of the writers' registry (localstt/formats.py) by its extension, so a new writer is a new
`response_format` too.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from starlette.responses import JSONResponse, PlainTextResponse, Response

from localstt.formats import WRITERS, writer_for
from localstt.languages import ENGLISH_ONLY, Languages, name_of
from localstt.manifest import Manifest
from localstt.spec import ModelSpec
from localstt.subtitles import DEFAULT_LAYOUT, SubtitleLayout
from localstt.transcript import Segment, Transcript

OWN_SHAPES = ("json", "text", "verbose_json", "diarized_json")
# "txt" is OpenAI's "text", and "json" is OpenAI's own shape, not the writer's whole transcript.
RESPONSE_FORMATS = (*OWN_SHAPES, *(name for name in WRITERS if name not in ("txt", "json")))


def transcript_reply(
    transcript: Transcript,
    response_format: str,
    granularities: frozenset[str],
    speaker_names: tuple[str, ...],
    layout: SubtitleLayout = DEFAULT_LAYOUT,
) -> Response:
    """The reply in `response_format`; SRT and WebVTT cut under `layout` (config.toml's [subtitles])."""
    usage = {"type": "duration", "seconds": transcript.duration}
    if response_format == "json":
        return JSONResponse({"text": transcript.text, "usage": usage})
    if response_format == "verbose_json":
        body: dict[str, Any] = {
            # As OpenAI: a translation's language is the text's; "auto" where the model heard it
            # without saying which
            "task": "translate" if transcript.translated_to else "transcribe",
            "language": name_of(transcript.translated_to or transcript.language or "en").lower(),
            "duration": transcript.duration,
            "text": transcript.text,
        }
        # As OpenAI: segments unless only words were asked for; words only when asked for.
        if granularities != {"word"}:
            body["segments"] = [
                verbose_segment(number, segment, transcript)
                for number, segment in enumerate(transcript.segments)
            ]
        if "word" in granularities:
            body["words"] = [{"word": w.text, "start": w.start, "end": w.end} for w in transcript.words]
        body["usage"] = usage
        return JSONResponse(body)
    if response_format == "diarized_json":
        return JSONResponse(diarized(transcript, speaker_names) | {"usage": usage})
    if response_format == "text":
        if transcript.has_speakers:
            return PlainTextResponse(WRITERS["txt"].render(transcript))
        return PlainTextResponse(transcript.text + "\n")
    return PlainTextResponse(writer_for(response_format, layout).render(transcript))


def diarized(transcript: Transcript, speaker_names: tuple[str, ...]) -> dict[str, Any]:
    """OpenAI's diarized_json: speakers labelled by the known names in order, else "A", "B", ..."""
    labels = [
        (speaker_names[index] if index < len(speaker_names) else "") or chr(ord("A") + index)
        for index in range(len(transcript.speaker_names))
    ]
    return {
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
    }


def verbose_segment(number: int, segment: Segment, transcript: Transcript) -> dict[str, Any]:
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


def model_card(
    spec: ModelSpec,
    manifest: Manifest | None,
    loaded: bool,
    word_times: bool,
    export_command: str,
    languages: Languages = ENGLISH_ONLY,
) -> dict[str, Any]:
    """One model of config.toml as OpenAI's model object, with its pin and export state."""
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
        "loaded": loaded,
        "word_timestamps": word_times,
        # what `language` may be; whether it may be left out for the model to hear; `translate_to`
        "languages": list(languages.transcribes),
        "detects_language": languages.detects,
        "translations": [{"from": source, "to": target} for source, target in languages.translations],
    }
    if not exported:
        card["export_command"] = export_command
    return card


def sse_event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
