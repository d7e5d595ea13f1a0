"""The page's "Language" and "Translate to" choices. Each is shown only while the chosen model has it:
the language for a model of more than one language ("Detect" first where the model hears it itself),
the translation for a model that translates. The choices are what the model's family declares
(localstt/languages.py); the page's jobs read them through `chosen_languages`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from localstt.config import AppConfig
from localstt.languages import Languages, name_of
from localstt.models import family_for

DETECT = "auto"  # the language choice that lets the model hear it
NO_TRANSLATION = "none"


@dataclass(frozen=True)
class LanguageChoices:
    language: Any  # gr.Dropdown
    translate_to: Any  # gr.Dropdown


def languages_of(config: AppConfig, model_key: str | None) -> Languages:
    if not model_key or model_key not in config.transcribers:
        return Languages()
    spec = config.transcribers[model_key]
    return family_for(spec.kind).languages(spec)


def language_update(languages: Languages) -> dict[str, Any]:
    """The language dropdown for a model: its languages, shown only when it has more than one."""
    options = [(name_of(code), code) for code in languages.transcribes]
    if languages.detects:
        options = [("Detect", DETECT), *options]
    codes = [code for _, code in options]
    value = DETECT if languages.detects else "en" if "en" in codes else codes[0] if codes else DETECT
    info = "The spoken language" + ("; Detect lets the model hear it." if languages.detects else ".")
    return gr.update(choices=options, value=value, visible=len(languages.transcribes) > 1, info=info)


def translation_update(languages: Languages) -> dict[str, Any]:
    """The translation dropdown for a model: the languages it translates into, shown only then."""
    options = [("Don't translate", NO_TRANSLATION), *((name_of(code), code) for code in languages.targets)]
    return gr.update(choices=options, value=NO_TRANSLATION, visible=languages.translates)


def language_choices(config: AppConfig, first_key: str | None, key: str) -> LanguageChoices:
    """The two dropdowns for the model `first_key` (`key` tells the page's instances apart)."""
    languages = languages_of(config, first_key)
    shown = language_update(languages)
    language = gr.Dropdown(
        choices=shown["choices"],
        value=shown["value"],
        visible=shown["visible"],
        label="Language",
        # Gradio checks a value against the choices the page started with, which are the first
        # model's; an API client naming another model's language is checked by the job instead.
        allow_custom_value=True,
        info="The spoken language; Detect lets the model hear it.",
        elem_id=f"{key}-language",
    )
    offered = translation_update(languages)
    translate_to = gr.Dropdown(
        choices=offered["choices"],
        value=offered["value"],
        visible=offered["visible"],
        label="Translate to",
        allow_custom_value=True,
        info="The transcript's text in another language.",
        elem_id=f"{key}-translate-to",
    )
    return LanguageChoices(language, translate_to)


def follow_model(config: AppConfig, model: Any, choices: LanguageChoices) -> None:
    """Show the choices the model picked in `model` has, whenever it changes."""

    def update(model_key: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        languages = languages_of(config, model_key)
        return language_update(languages), translation_update(languages)

    model.change(
        update,
        [model],
        [choices.language, choices.translate_to],
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )


def chosen_languages(language: str | None, translate_to: str | None) -> tuple[str, str]:
    """(language, translate_to) as TranscribeOptions takes them ("" for detect, or for none)."""
    spoken = "" if language in (None, "", DETECT) else str(language)
    target = "" if translate_to in (None, "", NO_TRANSLATION) else str(translate_to)
    return spoken, target
