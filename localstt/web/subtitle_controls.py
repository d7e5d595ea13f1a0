"""The subtitle line controls on the page (localstt/subtitles.py): four numbers, their defaults from
config.toml's [subtitles], used by the Recordings tab's jobs and the Library tab's downloads."""

from __future__ import annotations

from typing import Any

import gradio as gr

from localstt.subtitles import LIMITS, SubtitleLayout

LABELS = {
    "max_chars": "Characters per line",
    "max_lines": "Lines per subtitle",
    "max_duration": "Seconds per subtitle, at most",
    "min_gap": "Seconds between subtitles, at least",
}


def subtitle_inputs(layout: SubtitleLayout, prefix: str) -> list[Any]:
    """The four numbers (inside the caller's Blocks), set to `layout`; `prefix` makes their element
    ids unique on the page ("files", "library")."""
    numbers = []
    with gr.Row():
        for _, name, low, high, whole in LIMITS:
            numbers.append(
                gr.Number(
                    value=getattr(layout, name),
                    label=LABELS[name],
                    minimum=low,
                    maximum=high,
                    step=1 if whole else 0.1,
                    precision=0 if whole else None,
                    elem_id=f"{prefix}-{name.replace('_', '-')}",
                )
            )
    return numbers


def chosen_layout(default: SubtitleLayout, *values: float | None) -> SubtitleLayout:
    """The four numbers as a layout (a blank one keeps `default`'s); gr.Error with the sentence that
    says which is out of range."""
    names = [name for _, name, *_ in LIMITS]
    try:
        return default.replace(**dict(zip(names, values, strict=True)))
    except ValueError as error:
        raise gr.Error(f"Subtitle lines: {error}") from None
