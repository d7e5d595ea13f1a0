"""The page's "Your words" boxes: phrases to recognise (one a line, config.toml's to start with) and
replacement rules (`find => replace`, one a line), with import and export of the phrases as a text
file. The page's jobs and live sessions read them through `job_vocabulary`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from localstt.errors import VocabularyError
from localstt.spec import Vocabulary
from localstt.vocabulary import merged, parse_phrases, parse_rules, rules_text
from localstt.web.app import TranscriptionApp

EXPORT_NAME = "phrases.txt"


@dataclass(frozen=True)
class VocabularyBoxes:
    phrases: Any  # gr.Textbox
    rules: Any  # gr.Textbox


def vocabulary_boxes(app: TranscriptionApp, key: str) -> VocabularyBoxes:
    """The boxes in an accordion, `key` telling the page's instances apart (elem_ids)."""
    base = app.options.vocabulary
    with gr.Accordion("Your words", open=bool(base), elem_id=f"{key}-vocabulary"):
        phrases = gr.Textbox(
            value="\n".join(base.phrases),
            label="Words to recognise",
            info="One phrase a line, written as the model writes it (capitalised): the decoding is "
            "pulled towards them. Too many, or too strong a boost, and they appear where nobody said "
            "them.",
            lines=4,
            elem_id=f"{key}-phrases",
        )
        rules = gr.Textbox(
            value=rules_text(base.replacements),
            label="Replacement rules",
            info="One `find => replace` a line, e.g. open ai => OpenAI: whole words, any case, in order.",
            lines=3,
            elem_id=f"{key}-rules",
        )
        with gr.Row():
            upload = gr.UploadButton("Import phrases", file_types=[".txt"], size="sm")
            download = gr.DownloadButton("Export phrases", size="sm")
        upload.upload(import_phrases, [upload], [phrases], api_visibility="private", queue=False)
        download.click(
            lambda text: export_phrases(app, text),
            [phrases],
            [download],
            api_visibility="private",
            queue=False,
        )
    return VocabularyBoxes(phrases, rules)


def job_vocabulary(base: Vocabulary, phrases_text: str | None, rules_text_: str | None) -> Vocabulary:
    """What the boxes say, at `base`'s strength (their phrases and rules replace config.toml's, which
    they start with); gr.Error with the sentence for one that cannot be used."""
    try:
        return merged(
            Vocabulary(strength=base.strength),
            parse_phrases(phrases_text or ""),
            parse_rules(rules_text_ or ""),
        )
    except VocabularyError as error:
        raise gr.Error(str(error)) from None


def import_phrases(file: str | None) -> str:
    if not file:
        return ""
    try:
        return "\n".join(parse_phrases(Path(file).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        raise gr.Error(
            "That file is not a text file of phrases; choose a .txt with one phrase a line."
        ) from None


def export_phrases(app: TranscriptionApp, text: str) -> str:
    folder = app.outputs.start_job()
    try:
        path = folder / EXPORT_NAME
        path.write_text("\n".join(parse_phrases(text or "")) + "\n", encoding="utf-8")
        return str(path)
    finally:
        app.outputs.end_job(folder)
