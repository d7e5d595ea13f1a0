"""The page's Library tab: every kept transcript, newest first; search over all of them (hits marked,
with the time in the recording); one opened as an editable table of segments (text and speaker, saved
as soon as a cell is left), a speaker renamed everywhere, find and replace, undo, the original back,
play from a segment when the recording was kept, downloads made from the edited version with the
subtitle line controls; delete one or all; the whole library exported as one file and imported back.

Each method is one event of the tab; a library that cannot be used shows its one sentence instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
import soundfile as sf

from localstt.errors import LibraryError
from localstt.formats import WRITERS, layout_cues, write_outputs
from localstt.library import editing
from localstt.library.database import Library
from localstt.library.portable import export_library, import_library
from localstt.library.records import Kept
from localstt.logfile import report_unexpected
from localstt.web.app import TranscriptionApp, clock
from localstt.web.outputs import remove_uploads
from localstt.web.subtitle_controls import chosen_layout, subtitle_inputs

T = TypeVar("T")
CLIP_S = 300  # a segment plays from its start for at most this long
LIST_HEADERS = ["#", "made", "recording", "length", "model", "from", "edited", "begins"]
HIT_HEADERS = ["#", "recording", "segment", "at", "text"]
SEGMENT_HEADERS = ["segment", "start", "end", "speaker", "text"]
CONFIRM = "Tick “Yes, delete” first: a delete cannot be undone."
View = tuple[str, dict[str, Any], Any, str, Any]  # title, segments, speakers, history, audio


def local_time(stamp: str | None) -> str:
    return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M") if stamp else ""


class LibraryTab:
    """The tab's events, over the app's library (`app.keeper`)."""

    def __init__(self, app: TranscriptionApp) -> None:
        self.app = app

    @property
    def library(self) -> Library:
        if self.app.keeper.library is None:
            raise gr.Error(self.app.keeper.problem)
        return self.app.keeper.library

    def _run(self, doing: str, work: Callable[[], T]) -> T:
        """`work()`; a LibraryError as its sentence, anything else as a sentence naming the log file."""
        try:
            return work()
        except LibraryError as error:
            raise gr.Error(str(error)) from None
        except gr.Error:
            raise
        except Exception as error:
            sentence = report_unexpected(error, doing, self.app.store.config.path)
            raise gr.Error(f"The library could not finish {doing}: {sentence}.") from None

    # The list and the search

    def listing(self) -> dict[str, Any]:
        entries = self._run("listing the library", lambda: self.library.entries())
        rows = [
            [
                e.id,
                local_time(e.created_at),
                e.source_name,
                clock(e.duration),
                e.model_key,
                e.origin,
                local_time(e.edited_at),
                e.preview,
            ]
            for e in entries
        ]
        return {"headers": LIST_HEADERS, "data": rows}

    def search(self, query: str) -> dict[str, Any]:
        if not (query or "").strip():
            raise gr.Error("Type a word to search for.")
        hits = self._run("searching", lambda: self.library.search(query))
        if not hits:
            gr.Info(f"No transcript has {query.strip()!r}.")
        rows = [[h.transcript_id, h.source_name, h.position + 1, clock(h.at), h.highlighted] for h in hits]
        return {"headers": HIT_HEADERS, "data": rows}

    # One transcript

    def open(self, transcript_id: float | None) -> View:
        if transcript_id is None:
            return self._empty()
        return self._view(self._run("opening a transcript", lambda: self.library.get(int(transcript_id))))

    def _empty(self) -> View:
        table = {"headers": SEGMENT_HEADERS, "data": []}
        nothing = gr.Audio(value=None, visible=False)
        return "Open a transcript from the list or the search.", table, gr.Dropdown(choices=[]), "", nothing

    def _view(self, kept: Kept) -> View:
        transcript = kept.transcript
        rows = [
            [number + 1, clock(s.start), clock(s.end), transcript.speaker_name(s.speaker), s.text]
            for number, s in enumerate(transcript.segments)
        ]
        names = list(dict.fromkeys(transcript.speaker_names))
        title = (
            f"**#{kept.id} {transcript.source_name}**, {clock(transcript.duration)}, "
            f"{transcript.model_key} @ {transcript.revision[:12]}, made {local_time(kept.created_at)} "
            f"({kept.origin})"
        )
        if kept.audio is None:
            title += ". Its recording was not kept (keep_audio under [library] in config.toml)."
        else:
            title += ". Select a segment to play from it."
        history = "".join(f"- {local_time(when)}: {what}\n" for when, what in kept.edits[-10:])
        history = f"Edits (undo takes back the last one first):\n\n{history}" if history else "No edits yet."
        speakers = gr.Dropdown(choices=names, value=names[0] if names else None)
        audio = gr.Audio(value=None, visible=kept.audio is not None)  # plays from a selected segment
        return title, {"headers": SEGMENT_HEADERS, "data": rows}, speakers, history, audio

    def _change(self, transcript_id: float | None, doing: str, work: Callable[[int], object]) -> View:
        if transcript_id is None:
            raise gr.Error("Open a transcript first.")
        number = int(transcript_id)
        self._run(doing, lambda: work(number))
        return self.open(number)

    def edit(self, transcript_id: float | None, table: Any) -> View:
        """The table as the user left it: each changed text or speaker cell saved, one edit each."""
        rows = table.get("data", []) if isinstance(table, dict) else list(table or [])
        cells = [(int(row[0]) - 1, str(row[4] or ""), str(row[3] or "")) for row in rows if len(row) >= 5]
        return self._change(
            transcript_id, "saving an edit", lambda i: editing.edit_cells(self.library, i, cells)
        )

    def rename(self, transcript_id: float | None, old: str | None, new: str) -> View:
        if not old:
            raise gr.Error("This transcript has no speakers to rename.")

        def work(number: int) -> None:
            editing.rename_speaker(self.library, number, old, new)

        return self._change(transcript_id, "renaming a speaker", work)

    def replace(self, transcript_id: float | None, find: str, replacement: str) -> View:
        def work(number: int) -> None:
            count = editing.replace_all(self.library, number, find or "", replacement or "")
            gr.Info(f"Replaced {count} time{'s' if count != 1 else ''}.")

        return self._change(transcript_id, "replacing text", work)

    def undo(self, transcript_id: float | None) -> View:
        def work(number: int) -> None:
            what = editing.undo(self.library, number)
            gr.Info(f"Undone: {what}." if what else "Nothing left to undo.")

        return self._change(transcript_id, "undoing an edit", work)

    def original(self, transcript_id: float | None) -> View:
        def work(number: int) -> None:
            if not editing.restore_original(self.library, number):
                gr.Info("It is already as it was made.")

        return self._change(transcript_id, "restoring the original", work)

    def play_from(self, transcript_id: float | None, position: int) -> str:
        """A WAV of the kept recording from segment `position`'s start (at most CLIP_S seconds)."""
        if transcript_id is None:
            raise gr.Error("Open a transcript first.")
        kept = self._run("opening a transcript", lambda: self.library.get(int(transcript_id)))
        if kept.audio is None or not kept.audio.is_file():
            raise gr.Error(
                "Its recording was not kept: set keep_audio = true under [library] in config.toml."
            )
        segments = kept.transcript.segments
        start = segments[min(max(position, 0), len(segments) - 1)].start if segments else 0.0
        audio = kept.audio

        def clip() -> str:
            info = sf.info(str(audio))
            samples, rate = sf.read(
                str(audio), start=int(start * info.samplerate), frames=CLIP_S * info.samplerate
            )
            job_dir = self.app.outputs.start_job()
            try:
                path = (
                    job_dir / f"{Path(kept.transcript.source_name).stem or 'recording'}-from-{start:.0f}s.wav"
                )
                sf.write(str(path), samples, rate, subtype="PCM_16")
            finally:
                self.app.outputs.end_job(job_dir)
            return str(path)

        return self._run("playing a segment", clip)

    def play_selected(self, transcript_id: float | None, event: gr.SelectData) -> str | None:
        """The recording from the selected segment, when it was kept (else nothing plays)."""
        kept = self.app.keeper.library is not None and transcript_id is not None
        if not kept or self.library.get(int(transcript_id or 0)).audio is None:
            return None
        return self.play_from(transcript_id, int(event.index[0]))

    def download(
        self, transcript_id: float | None, formats: list[str] | None, *numbers: float | None
    ) -> list[str]:
        """The files of the transcript as it is now, its subtitles cut under the line controls."""
        if transcript_id is None:
            raise gr.Error("Open a transcript first.")
        layout = chosen_layout(self.app.store.config.subtitles, *numbers)
        kept = self._run("opening a transcript", lambda: self.library.get(int(transcript_id)))
        chosen = [f for f in formats or [] if f in WRITERS] or ["txt"]
        if {"srt", "vtt"} & set(chosen) and (note := layout_cues(kept.transcript, layout, lead=False).note):
            gr.Info(note)

        def write() -> list[str]:
            job_dir = self.app.outputs.start_job()
            try:
                stem = Path(kept.transcript.source_name).stem or f"transcript-{kept.id}"
                return [str(p) for p in write_outputs(kept.transcript, chosen, job_dir, stem, layout)]
            finally:
                self.app.outputs.end_job(job_dir)

        return self._run("making the files", write)

    # Deleting, export and import

    def delete(self, transcript_id: float | None, confirmed: bool) -> tuple[dict[str, Any], None, bool]:
        if transcript_id is None:
            raise gr.Error("Open a transcript first.")
        if not confirmed:
            raise gr.Error(CONFIRM)
        self._run("deleting a transcript", lambda: self.library.delete(int(transcript_id)))
        gr.Info(f"Transcript {int(transcript_id)} is deleted, with its recording and its search entries.")
        return self.listing(), None, False

    def delete_all(self, confirmed: bool) -> tuple[dict[str, Any], None, bool]:
        if not confirmed:
            raise gr.Error(CONFIRM)
        count = self._run("emptying the library", lambda: self.library.delete_all())
        gr.Info(f"{count} transcript{'s' if count != 1 else ''} deleted; the library is empty.")
        return self.listing(), None, False

    def export(self) -> str:
        def work() -> str:
            job_dir = self.app.outputs.start_job()
            try:
                target = job_dir / f"library-{datetime.now().strftime('%Y%m%d-%H%M')}.zip"
                export_library(self.library, target)
            finally:
                self.app.outputs.end_job(job_dir)
            return str(target)

        return self._run("exporting the library", work)

    def import_(self, upload: str | None) -> dict[str, Any]:
        if not upload:
            raise gr.Error("Choose a library export (.zip) to import first.")
        try:
            added, present = self._run(
                "importing a library", lambda: import_library(self.library, Path(upload))
            )
        finally:
            remove_uploads([upload], self.app.upload_root, self.app.output_root)
        gr.Info(f"{added} transcript{'s' if added != 1 else ''} added ({present} already here).")
        return self.listing()


def first_cell(event: gr.SelectData) -> Any:
    """The number in the first column of the row the user selected (a transcript's)."""
    return event.row_value[0]


def build_library_tab(app: TranscriptionApp) -> None:
    """The Library tab, inside the page's Blocks."""
    tab = LibraryTab(app)
    with gr.Tab("Library", elem_id="library-tab") as library_tab:
        if app.keeper.library is None:
            gr.Markdown(app.keeper.problem, elem_id="library-problem")
            return
        gr.Markdown(app.keeper.status_line())
        with gr.Row():
            query = gr.Textbox(
                label="Search every transcript", placeholder="a word or two", elem_id="library-query", scale=4
            )
            search = gr.Button("Search", scale=1)
        hits = gr.Dataframe(
            headers=HIT_HEADERS,
            datatype=["number", "str", "number", "str", "html"],
            label="Found",
            interactive=False,
            elem_id="library-hits",
        )
        listing = gr.Dataframe(
            headers=LIST_HEADERS, label="Transcripts, newest first", interactive=False, elem_id="library-list"
        )
        opened = gr.Number(label="Open transcript #", precision=0, elem_id="library-open")
        title = gr.Markdown(elem_id="library-title")
        audio = gr.Audio(
            visible=False,
            label="From the selected segment",
            type="filepath",
            interactive=False,
            autoplay=True,
            elem_id="library-audio",
        )
        segments = gr.Dataframe(
            headers=SEGMENT_HEADERS,
            type="array",
            interactive=True,
            static_columns=[0, 1, 2],
            wrap=True,
            label="Segments (edit a text or a speaker; it is saved when you leave the cell)",
            elem_id="library-segments",
        )
        with gr.Row():
            speaker = gr.Dropdown(choices=[], label="Speaker", elem_id="library-speaker")
            new_name = gr.Textbox(label="New name", elem_id="library-new-name")
            rename = gr.Button("Rename speaker everywhere")
        with gr.Row():
            find = gr.Textbox(label="Find", elem_id="library-find")
            replacement = gr.Textbox(label="Replace with", elem_id="library-replace")
            replace = gr.Button("Replace all")
        with gr.Row():
            undo = gr.Button("Undo the last edit")
            original = gr.Button("Back to the original")
        history = gr.Markdown(elem_id="library-history")
        with gr.Accordion("Download", open=True):
            formats = gr.CheckboxGroup(
                list(WRITERS),
                value=["txt", "srt", "vtt", "json"],
                label="Files to make",
                elem_id="library-formats",
            )
            numbers = subtitle_inputs(app.store.config.subtitles, "library")
            download = gr.Button("Make the files", elem_id="library-download")
            files = gr.File(label="Files", file_count="multiple", interactive=False, elem_id="library-files")
        with gr.Accordion("Delete, export, import", open=False):
            confirmed = gr.Checkbox(False, label="Yes, delete", elem_id="library-confirm")
            with gr.Row():
                delete = gr.Button("Delete this transcript", variant="stop")
                delete_all = gr.Button("Delete every transcript", variant="stop")
            export = gr.Button("Export the library as one file")
            exported = gr.File(label="Library export", interactive=False)
            upload = gr.File(label="Import a library export", file_types=[".zip"], type="filepath")
            import_ = gr.Button("Import")
    view = [title, segments, speaker, history, audio]
    library_tab.select(tab.listing, None, listing, api_name="library_list")
    search.click(tab.search, query, hits, api_name="library_search")
    query.submit(tab.search, query, hits, api_visibility="private")
    listing.select(first_cell, None, opened, api_visibility="private")
    hits.select(first_cell, None, opened, api_visibility="private")
    opened.change(tab.open, opened, view, api_name="library_open")
    segments.input(tab.edit, [opened, segments], view, api_name="library_edit")
    segments.select(tab.play_selected, opened, audio, api_visibility="private")
    rename.click(tab.rename, [opened, speaker, new_name], view, api_name="library_rename")
    replace.click(tab.replace, [opened, find, replacement], view, api_name="library_replace")
    undo.click(tab.undo, opened, view, api_name="library_undo")
    original.click(tab.original, opened, view, api_name="library_original")
    download.click(tab.download, [opened, formats, *numbers], files, api_name="library_download")
    delete.click(tab.delete, [opened, confirmed], [listing, opened, confirmed], api_name="library_delete")
    delete_all.click(tab.delete_all, confirmed, [listing, opened, confirmed], api_name="library_delete_all")
    export.click(tab.export, None, exported, api_name="library_export")
    import_.click(tab.import_, upload, listing, api_name="library_import")
