"""The Gradio page: upload or record, pick a model, get a transcript, segments and subtitle files; ask a
language model about it; see each model's state. Its events are TranscriptionApp's methods
(localstt/web/app.py); every label that names a model or a format comes from the families and the
writers, never from this file.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.data_classes import FileData, ListFiles
from gradio.utils import NamedString

from localstt.formats import WRITERS
from localstt.models import Answerer, Diarizer, families, family_for
from localstt.web.app import TranscriptionApp
from localstt.web.language_choices import chosen_languages, follow_model, language_choices
from localstt.web.library_tab import build_library_tab
from localstt.web.live_tab import build_live_tab
from localstt.web.subtitle_controls import chosen_layout, subtitle_inputs
from localstt.web.vocabulary_box import job_vocabulary, vocabulary_boxes

STATUS_REFRESH_S = 1.0  # how often an open page re-reads the status while a model loads
SEGMENT_HEADERS = ["file", "start", "end", "text"]
SPEAKER_SEGMENT_HEADERS = ["file", "start", "end", "speaker", "text"]  # with "Identify speakers"
DEFAULT_FORMATS = ["txt", "srt", "vtt"]


def recordings_component(**kwargs: Any) -> Any:
    """gr.File for the uploads, handing the stored paths over as they are.

    gr.File's own preprocess (Gradio 6.31, type="filepath") also opens a NamedTemporaryFile in the
    upload folder for every file and leaves it there, empty and untracked: one stray file per upload
    for the life of the server. The instance gets a preprocess without that (a subclass would make
    Gradio write a .pyi stub beside this file at import).
    """
    component = gr.File(**kwargs)

    def preprocess(payload: ListFiles | FileData | None) -> list[str] | None:
        if payload is None:
            return None
        files = payload.root if isinstance(payload, ListFiles) else [payload]
        return [NamedString(file.path) for file in files]  # type: ignore[no-untyped-call]

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


def _speakers_info(app: TranscriptionApp) -> str:
    """The "Identify speakers" hint: which model of config.toml does it, or which family could."""
    config = app.store.config
    if config.diarizer is not None:
        needs = f"the {config.diarizer} model exported"
    else:
        names = [family.name for family in families() if isinstance(family, Diarizer)]
        needs = f"a {' or '.join(names) or 'speaker'} model in config.toml"
    return f"Up to 4 voices, labelled in every file (needs {needs})."


def build_page(app: TranscriptionApp) -> gr.Blocks:
    """The page for `app`, its queue set up: one model run at a time, `app.max_queue` waiting."""
    config = app.store.config
    keys = list(config.transcribers)
    llm_keys = [k for k, spec in config.models.items() if isinstance(family_for(spec.kind), Answerer)]
    llm_names = sorted({family_for(config.models[k].kind).name for k in llm_keys})
    formats_available = list(WRITERS)
    # Gradio deletes what it tracks (uploads that never became a job, e.g. refused by the queue)
    # after 15 minutes; the app deletes a job's uploads when it ends and its outputs earlier.
    cache_age = max(900, int(app.outputs.keep_s))
    with gr.Blocks(title="Local transcription", delete_cache=(300, cache_age)) as demo:
        gr.Markdown("# Local transcription\nEverything runs on this machine; nothing is uploaded anywhere.")
        with gr.Tabs():
            with gr.Tab("Recordings", elem_id="files-tab"), gr.Row():
                with gr.Column(scale=1):
                    files = recordings_component(label="Recordings", file_count="multiple", type="filepath")
                    recording = gr.Audio(label="Or record", sources=["microphone"], type="filepath")
                    model_key = gr.Dropdown(keys, value=keys[0] if keys else None, label="Model")
                    languages = language_choices(config, keys[0] if keys else None, "files")
                    follow_model(config, model_key, languages)
                    formats = gr.CheckboxGroup(
                        formats_available,
                        value=[f for f in DEFAULT_FORMATS if f in formats_available],
                        label="Files to make",
                    )
                    speakers = gr.Checkbox(
                        value=False,
                        label="Identify speakers",
                        info=_speakers_info(app),
                        elem_id="speakers",
                    )
                    speaker_names = gr.Textbox(
                        value="",  # a value: API clients may leave the field out
                        label="Speaker names",
                        placeholder="Ana, Ben: in the order they first speak (optional)",
                        elem_id="speaker-names",
                    )
                    words = vocabulary_boxes(app, "files")
                    with gr.Accordion("Subtitle lines", open=False, elem_id="files-subtitle-lines"):
                        lines = subtitle_inputs(config.subtitles, "files")
                    run = gr.Button("Transcribe", variant="primary")
                with gr.Column(scale=2):
                    transcript = gr.Textbox(
                        label="Transcript", lines=12, buttons=["copy"], elem_id="transcript"
                    )
                    segments = gr.Dataframe(
                        headers=SEGMENT_HEADERS, label="Segments", wrap=True, elem_id="segments"
                    )
                    downloads = gr.File(label="Downloads", file_count="multiple", interactive=False)
            live_events = build_live_tab(app)
            build_library_tab(app)
        asking = f" ({', '.join(llm_names)})" if llm_names else ""
        with gr.Accordion(f"Ask the language model about the transcript{asking}", open=False):
            llm_key = gr.Dropdown(llm_keys, value=llm_keys[0] if llm_keys else None, label="Model")
            question = gr.Textbox(label="Question", value="Summarise this transcript in a few sentences.")
            ask = gr.Button("Ask")
            answer = gr.Textbox(label="Answer", lines=6)
            thinking = gr.Textbox(label="The model's reasoning (<think>)", lines=4)
        status = gr.Markdown(app.status(), elem_id="status")
        refresh = gr.Timer(STATUS_REFRESH_S, active=False)

        def on_transcribe(
            files_value: list[str] | None,
            recording_value: str | None,
            key: str,
            formats_value: list[str],
            speakers_value: bool,
            names_value: str,
            phrases_value: str,
            rules_value: str,
            max_chars: float | None = None,
            max_lines: float | None = None,
            max_cue_seconds: float | None = None,
            min_gap_seconds: float | None = None,
            language_value: str | None = None,
            translate_value: str | None = None,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented idiom
        ) -> tuple[str, dict[str, Any], list[str], str]:
            vocabulary = job_vocabulary(app.options.vocabulary, phrases_value, rules_value)
            text, rows, written, status = app.transcribe(
                files_value,
                recording_value,
                key,
                formats_value,
                progress,
                speakers_value,
                names_value,
                vocabulary,
                chosen_layout(config.subtitles, max_chars, max_lines, max_cue_seconds, min_gap_seconds),
                chosen_languages(language_value, translate_value),
            )
            headers = SPEAKER_SEGMENT_HEADERS if speakers_value else SEGMENT_HEADERS
            return text, {"headers": headers, "data": rows}, written, status

        run.click(
            on_transcribe,
            [
                files,
                recording,
                model_key,
                formats,
                speakers,
                speaker_names,
                words.phrases,
                words.rules,
                *lines,  # new inputs go last: API clients send them in order
                languages.language,
                languages.translate_to,
            ],
            [transcript, segments, downloads, status],
            api_name="transcribe",
            concurrency_limit=1,
            concurrency_id="gpu",
        )
        ask.click(
            app.ask,
            [llm_key, transcript, question],
            [answer, thinking],
            api_name="ask",
            concurrency_limit=1,
            concurrency_id="gpu",
        )
        # Not queued: the status shows while a job holds the queue, and ticks never fill it.
        outputs = [status, refresh]
        quiet: dict[str, Any] = {"queue": False, "show_progress": "hidden"}
        demo.load(app.status_update, None, outputs, api_name="status", api_visibility="undocumented", **quiet)
        refresh.tick(app.status_update, None, outputs, api_visibility="private", **quiet)
        for event in live_events:  # the live sessions in the status panel
            event.then(app.status_update, None, outputs, api_visibility="private", **quiet)
        # A job can start a load (the other model): the page polls until it is done.
        run.click(lambda: gr.Timer(active=True), None, refresh, api_visibility="private", **quiet)
    blocks: gr.Blocks = demo.queue(default_concurrency_limit=1, max_size=app.max_queue)  # beyond: refused
    return blocks
