"""The web app: upload or record, pick a model, get a transcript, segments and subtitle files.

    uv run python transcribe_ui.py [--host 127.0.0.1] [--port 7860] [--auth user:password] [--share]

All transcription happens in localstt.engine; this file only wires it to Gradio.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import model_loader  # first: it switches the hub libraries to offline before they are imported
from localstt.config import AppConfig, ConfigError, load_config
from localstt.manifest import human_size

FORMATS = ["txt", "srt", "vtt", "json"]
SEGMENT_HEADERS = ["file", "start", "end", "text"]


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:06.3f}" if hours else f"{minutes}:{secs:06.3f}"


def status_markdown(store: model_loader.ModelStore) -> str:
    lines = ["| model | repo @ pinned commit | on disk | state |", "|---|---|---|---|"]
    for row in store.status():
        commit = row.revision[:12] or "not pinned yet"
        state = f"loaded on {row.device}" if row.loaded else ("ready" if row.exported else row.message)
        size = human_size(row.size_on_disk) if row.exported else "-"
        lines.append(f"| {row.key} | {row.repo} @ {commit} | {size} | {state} |")
    return "\n".join(lines)


def _remove_uploads(paths: Sequence[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            Path(path).unlink(missing_ok=True)


class TranscriptionApp:
    """Holds the store and the options; each method is one UI event."""

    def __init__(self, config: AppConfig, output_root: Path | None = None) -> None:
        from localstt.engine import TranscribeOptions

        self.store = model_loader.ModelStore(config)
        self.options = TranscribeOptions(max_audio_minutes=config.max_audio_minutes)
        self.output_root = output_root or Path(tempfile.mkdtemp(prefix="localstt-out-"))

    def transcribe(
        self,
        files: list[str] | None,
        recording: str | None,
        model_key: str,
        formats: list[str] | None,
        progress: Any = None,
    ) -> tuple[str, list[list[Any]], list[str], str]:
        import gradio as gr

        from localstt.audio import AudioError
        from localstt.engine import EngineError, transcribe
        from localstt.manifest import ExportError
        from localstt.subtitles import write_outputs

        inputs = [*(files or []), *([recording] if recording else [])]
        if not inputs:
            raise gr.Error("Add a recording first: upload a file or record with the microphone.")
        job_dir = Path(tempfile.mkdtemp(prefix="job-", dir=self.output_root))
        texts: list[str] = []
        rows: list[list[Any]] = []
        written: list[str] = []
        failures: list[str] = []
        try:
            for index, path in enumerate(inputs):
                name = Path(path).name

                def report(fraction: float, message: str, index: int = index, name: str = name) -> None:
                    if progress is not None:
                        progress((index + fraction) / len(inputs), desc=f"{name}: {message}")

                try:
                    transcript = transcribe(Path(path), model_key, self.options, self.store, report)
                except (AudioError, EngineError) as error:
                    failures.append(f"{name}: {error}")
                    continue
                except (ExportError, model_loader.LoadError, ConfigError) as error:
                    raise gr.Error(str(error)) from None
                stem = Path(name).stem
                written += [str(p) for p in write_outputs(transcript, formats or ["srt"], job_dir, stem)]
                header = f"[{name}]\n" if len(inputs) > 1 else ""
                texts.append(header + transcript.text)
                rows += [[name, _clock(s.start), _clock(s.end), s.text] for s in transcript.segments]
        finally:
            _remove_uploads(inputs)
        if failures and not texts:
            raise gr.Error(" ".join(failures))
        for failure in failures:
            gr.Warning(failure)
        return "\n\n".join(texts), rows, written, status_markdown(self.store)

    def ask(self, model_key: str, transcript_text: str, question: str) -> tuple[str, str]:
        import gradio as gr

        from localstt.engine import EngineError, ask_llm
        from localstt.manifest import ExportError

        if not transcript_text.strip():
            raise gr.Error("Transcribe something first; the question is asked about the transcript.")
        try:
            answer = ask_llm(self.store, model_key, transcript_text, question)
        except (EngineError, ExportError, model_loader.LoadError) as error:
            raise gr.Error(str(error)) from None
        return answer.answer, answer.thinking

    def build(self) -> Any:
        import gradio as gr

        keys = list(self.store.config.models)
        llm_keys = [k for k, spec in self.store.config.models.items() if spec.kind == "salm"]
        with gr.Blocks(title="Local transcription", delete_cache=(3600, 3600)) as demo:
            gr.Markdown(
                "# Local transcription\nEverything runs on this machine; nothing is uploaded anywhere."
            )
            with gr.Row():
                with gr.Column(scale=1):
                    files = gr.File(label="Recordings", file_count="multiple", type="filepath")
                    recording = gr.Audio(label="Or record", sources=["microphone"], type="filepath")
                    model_key = gr.Dropdown(keys, value=keys[0] if keys else None, label="Model")
                    formats = gr.CheckboxGroup(FORMATS, value=["txt", "srt", "vtt"], label="Files to make")
                    run = gr.Button("Transcribe", variant="primary")
                with gr.Column(scale=2):
                    transcript = gr.Textbox(
                        label="Transcript", lines=12, buttons=["copy"], elem_id="transcript"
                    )
                    segments = gr.Dataframe(
                        headers=SEGMENT_HEADERS, label="Segments", wrap=True, elem_id="segments"
                    )
                    downloads = gr.File(label="Downloads", file_count="multiple", interactive=False)
            with gr.Accordion("Ask the language model about the transcript (Canary-Qwen)", open=False):
                llm_key = gr.Dropdown(llm_keys, value=llm_keys[0] if llm_keys else None, label="Model")
                question = gr.Textbox(label="Question", value="Summarise this transcript in a few sentences.")
                ask = gr.Button("Ask")
                answer = gr.Textbox(label="Answer", lines=6)
                thinking = gr.Textbox(label="The model's reasoning (<think>)", lines=4)
            status = gr.Markdown(status_markdown(self.store))

            def on_transcribe(
                files_value: list[str] | None,
                recording_value: str | None,
                key: str,
                formats_value: list[str],
                progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented idiom
            ) -> tuple[str, list[list[Any]], list[str], str]:
                return self.transcribe(files_value, recording_value, key, formats_value, progress)

            run.click(
                on_transcribe,
                [files, recording, model_key, formats],
                [transcript, segments, downloads, status],
                api_name="transcribe",
                concurrency_limit=1,
                concurrency_id="gpu",
            )
            ask.click(
                self.ask,
                [llm_key, transcript, question],
                [answer, thinking],
                api_name="ask",
                concurrency_limit=1,
                concurrency_id="gpu",
            )
        demo.queue(default_concurrency_limit=1)
        return demo


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local transcription web app.")
    parser.add_argument("--config", help="path to config.toml")
    parser.add_argument("--host", help="address to bind (default from config.toml: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default from config.toml: 7860)")
    parser.add_argument("--share", action="store_true", help="also make a public gradio.live link")
    parser.add_argument("--auth", help="user:password required to open the app (or LOCALSTT_AUTH)")
    parser.add_argument(
        "--allow-no-auth", action="store_true", help="serve on a non-loopback address without --auth"
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    host = args.host or config.app.host
    port = args.port or config.app.port
    auth_text = args.auth or os.environ.get("LOCALSTT_AUTH")
    auth = None
    if auth_text:
        user, sep, password = auth_text.partition(":")
        if not sep or not user or not password:
            print("error: --auth takes user:password.", file=sys.stderr)
            return 2
        auth = (user, password)
    if not _is_loopback(host) or args.share:
        print(f"WARNING: the app will be reachable from other machines ({host}, share={args.share}).")
        if auth is None and not args.allow_no_auth:
            print(
                "error: add --auth user:password (or --allow-no-auth if you really mean it).", file=sys.stderr
            )
            return 2
    app = TranscriptionApp(config)
    demo = app.build()
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            share=args.share,
            auth=auth,
            max_file_size=f"{config.app.max_upload_mb}mb",
        )
    finally:
        shutil.rmtree(app.output_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
