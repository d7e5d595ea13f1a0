"""The fields of a transcription request, checked: OpenAI's names and values, these models' limits.

Where OpenAI's API and these models differ (docs/api.md lists it all): `keywords` are phrases to
recognise (added to config.toml's vocabulary); `prompt` and `temperature` are accepted and change
nothing (a prompt is free text, not a list of words to boost: boosting its words would pull the
transcript towards whatever the prompt happens to say); `language` must be one the model transcribes
(its card lists them), and `translate_to` asks a model that translates for its text in that language;
`word` timestamps need
`verbose_json` (as at OpenAI) and a model that has them; `chunking_strategy`,
`known_speaker_references[]` and `include[]=logprobs` are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import FormData

from localstt.config import AppConfig
from localstt.engine import diarizer_key
from localstt.errors import ConfigError, LanguageError, VocabularyError
from localstt.languages import name_of
from localstt.models import Transcriber, family_for
from localstt.portability import safe_file_stem
from localstt.spec import ModelSpec
from localstt.store import ModelStore
from localstt.vocabulary import check_phrases
from localstt.web.openai_api.guards import ApiError, unsupported
from localstt.web.openai_api.replies import RESPONSE_FORMATS

GRANULARITIES = ("word", "segment")


@dataclass(frozen=True)
class TranscriptionRequest:
    """A request's fields, checked: what the engine needs and how to answer."""

    model_key: str
    response_format: str
    granularities: frozenset[str]
    stream: bool
    speakers: bool = False
    speaker_names: tuple[str, ...] = ()  # known_speaker_names[], in order of first appearance
    keywords: tuple[str, ...] = ()  # keywords[]: phrases to recognise, after config.toml's
    language: str = ""  # the spoken language's code; "" lets the model hear it (or is its only one)
    translate_to: str = ""  # the text's language, for a model that translates; "" for none


def has_word_times(spec: ModelSpec) -> bool:
    family = family_for(spec.kind)
    return isinstance(family, Transcriber) and family.has_word_times


def find_model(config: AppConfig, model_id: str) -> ModelSpec:
    """The transcription model `model_id` names, by key or by repo (any case); 404 for none."""
    models = config.transcribers
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


def find_translator(config: AppConfig, model_id: str, target: str) -> ModelSpec:
    """The model of a translation into `target`: the one `model_id` names; the first that translates
    when it names none of the app's (OpenAI's clients send their own, e.g. whisper-1); 400 when none
    translates, or when the one named does not."""
    translators = [
        spec
        for spec in config.transcribers.values()
        if target in family_for(spec.kind).languages(spec).targets
    ]
    if not translators:
        raise unsupported(
            "model", f"No model of this app translates into {name_of(target)}; use /v1/audio/transcriptions."
        )
    models = config.transcribers.values()
    named = [spec for spec in models if model_id == spec.key or model_id.lower() == spec.repo.lower()]
    if named and named[0] not in translators:
        instead = ", ".join(spec.key for spec in translators)
        raise unsupported("model", f"{named[0].key} does not translate; use {instead}.")
    return (named or translators)[0]


def check_fields(form: FormData, store: ModelStore, translate_to: str = "") -> TranscriptionRequest:
    """The request's fields, checked; `translate_to`: the endpoint's own target (translations)."""
    model = text(form, "model")
    if not model:
        example = next(iter(store.config.transcribers), "the key of a model in config.toml")
        raise ApiError(400, f"Name a model in the field `model`, e.g. {example}.", param="model")
    if translate_to:
        spec = find_translator(store.config, model, translate_to)
    else:
        spec = find_model(store.config, model)
    response_format = text(form, "response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise unsupported(
            "response_format",
            f"response_format {response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}.",
        )
    granularities = frozenset(values(form, "timestamp_granularities"))
    if unknown := sorted(granularities - set(GRANULARITIES)):
        raise unsupported(
            "timestamp_granularities", f"timestamp_granularities takes word and segment, not {unknown[0]!r}."
        )
    if "word" in granularities and response_format != "verbose_json":
        raise ApiError(
            400,
            "Word timestamps come only with response_format=verbose_json.",
            param="timestamp_granularities",
            code="invalid_value",
        )
    if "word" in granularities and not has_word_times(spec):
        with_words = [key for key, other in store.config.transcribers.items() if has_word_times(other)]
        instead = f", or a model with words ({', '.join(with_words)})" if with_words else ""
        raise unsupported(
            "timestamp_granularities",
            f"{spec.key} gives no word timestamps (it transcribes in windows); use segment{instead}.",
        )
    language, translate_to = check_languages(form, spec, translate_to)
    temperature = text(form, "temperature")
    if temperature:
        try:
            value = float(temperature)
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise ApiError(
                400, "temperature is a number from 0 to 1.", param="temperature", code="invalid_value"
            )
    if text(form, "chunking_strategy"):
        raise unsupported(
            "chunking_strategy",
            "chunking_strategy is not supported: the server chooses how to read long audio.",
        )
    if values(form, "known_speaker_references"):
        raise unsupported(
            "known_speaker_references",
            "known_speaker_references is not supported: speakers are named in the order they are first "
            "heard; send known_speaker_names[] alone.",
        )
    names = tuple(name.strip() for name in values(form, "known_speaker_names"))
    speakers = response_format == "diarized_json" or any(names)
    if speakers:
        try:
            diarizer_key(store)
        except ConfigError as error:
            param = "response_format" if response_format == "diarized_json" else "known_speaker_names"
            raise unsupported(param, str(error)) from None
    if included := values(form, "include"):
        raise unsupported("include", f"include {included[0]!r} is not available from these models.")
    stream = (text(form, "stream") or "false").lower() in {"true", "1", "yes"}
    if stream and response_format not in ("json", "text"):
        raise unsupported(
            "stream",
            f"stream=true sends text events; use response_format json or text, not {response_format}.",
        )
    keywords = tuple(values(form, "keywords"))
    try:
        check_phrases([*store.config.transcription.vocabulary.phrases, *keywords])
    except VocabularyError as error:
        raise ApiError(400, str(error), param="keywords", code="invalid_value") from None
    return TranscriptionRequest(
        spec.key, response_format, granularities, stream, speakers, names, keywords, language, translate_to
    )


def check_languages(form: FormData, spec: ModelSpec, translate_to: str = "") -> tuple[str, str]:
    """(the spoken language, the text's language) the request asks of `spec`, as codes ("" where it
    asks none); ApiError 400 with one sentence when the model cannot do it. `language` (or the list
    field `languages`, one value) names the spoken one; `translate_to`, or the endpoint's own target."""
    given = [*dict.fromkeys([text(form, "language"), *values(form, "languages")])]
    given = [value for value in given if value]
    if len(given) > 1:
        raise unsupported("language", f"Send one language, not {len(given)} ({', '.join(given)}).")
    target = translate_to or text(form, "translate_to")
    languages = family_for(spec.kind).languages(spec)
    if target and not given and languages.translates:
        raise unsupported(
            "language",
            f"{spec.key} must be told the spoken language to translate it: send its code in the field "
            '`language` (with OpenAI\'s SDK, extra_body={"language": "de"}).',
        )
    try:
        return languages.check(spec.key, given[0] if given else "", target)
    except LanguageError as error:
        raise unsupported(error.about, str(error)) from None


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def values(form: FormData, name: str) -> list[str]:
    """A list field, as the SDK sends it (`name[]`, repeated) or by its plain name."""
    found = [*form.getlist(f"{name}[]"), *form.getlist(name)]
    return [v.strip() for v in found if isinstance(v, str) and v.strip()]


def upload_name(filename: str | None) -> str:
    name = Path((filename or "recording").replace("\\", "/")).name
    suffix = Path(name).suffix if len(Path(name).suffix) <= 8 else ""
    return safe_file_stem(Path(name).stem, "recording") + suffix
