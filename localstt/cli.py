"""`transcribe FILE... --model parakeet --format srt,txt --out DIR`: the engine from the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

AUDIO_SUFFIXES = {
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".m4a",
    ".aac",
    ".mp4",
    ".webm",
    ".mkv",
    ".mov",
    ".wma",
}


def expand_inputs(paths: Sequence[str]) -> list[Path]:
    """Files as given; folders become the audio files inside them, sorted."""
    found: list[Path] = []
    for name in paths:
        path = Path(name).expanduser()
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            )
        else:
            found.append(path)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="transcribe", description="Transcribe recordings offline.")
    parser.add_argument("inputs", nargs="+", help="audio files or folders")
    parser.add_argument("--model", default="parakeet", help="model key from config.toml (default: parakeet)")
    parser.add_argument(
        "--format", default="txt,srt", help="comma-separated: txt,srt,vtt,json (default: txt,srt)"
    )
    parser.add_argument("--out", default="transcripts", help="output folder (default: ./transcripts)")
    parser.add_argument("--config", help="path to config.toml")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    import model_loader
    from localstt.audio import AudioError
    from localstt.config import ConfigError
    from localstt.engine import EngineError, TranscribeOptions, transcribe
    from localstt.manifest import ExportError
    from localstt.subtitles import WRITERS, write_outputs

    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    unknown = [f for f in formats if f not in WRITERS]
    if unknown or not formats:
        print(
            f"error: unknown format {', '.join(unknown) or '(none)'}; use {','.join(WRITERS)}.",
            file=sys.stderr,
        )
        return 2
    try:
        store = model_loader.default_store(args.config)
        store.config.model(args.model)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    files = expand_inputs(args.inputs)
    if not files:
        print("error: no audio files found in the given folders.", file=sys.stderr)
        return 2
    options = TranscribeOptions(max_audio_minutes=store.config.max_audio_minutes)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    with tqdm(total=len(files), unit="file", desc="transcribing") as bar:
        for path in files:
            bar.set_postfix_str(path.name)
            try:
                transcript = transcribe(path, args.model, options, store)
                written = write_outputs(transcript, formats, out_dir, path.stem)
                tqdm.write(f"{path}: {transcript.duration:.1f} s -> {', '.join(str(p) for p in written)}")
            except (ExportError, model_loader.LoadError) as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            except (AudioError, EngineError) as error:
                failures.append(f"{path}: {error}")
            except KeyboardInterrupt:
                print("\ninterrupted; files already written are complete.", file=sys.stderr)
                return 130
            bar.update()
    for line in failures:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
