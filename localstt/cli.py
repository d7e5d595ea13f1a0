"""`transcribe FILE... --model parakeet --format srt,txt --out DIR`: the engine from the command line.

One file that fails (whatever the error) costs only itself: the others are still done, and the end
of the run lists one `failed: FILE: sentence` line per failed file (exit status 1). An error that is
not one of the app's own is logged with its traceback to the log file (localstt/logfile.py), which
the sentence names. Errors that concern the whole run (the model is not exported or does not load)
stop it: `error: ...`, exit status 2.
"""

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

    import localstt.offline  # noqa: F401  # before the modules that load models: no hub, ever
    from localstt.engine import TranscribeOptions
    from localstt.errors import ConfigError, LocalSttError
    from localstt.jobs import transcribe_file
    from localstt.logfile import log_to_console
    from localstt.store import default_store
    from localstt.subtitles import WRITERS

    log_to_console()

    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    unknown = [f for f in formats if f not in WRITERS]
    if unknown or not formats:
        print(
            f"error: unknown format {', '.join(unknown) or '(none)'}; use {','.join(WRITERS)}.",
            file=sys.stderr,
        )
        return 2
    try:
        store = default_store(args.config)
        store.config.model(args.model)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    files = expand_inputs(args.inputs)
    if not files:
        print("error: no audio files found in the given folders.", file=sys.stderr)
        return 2
    options = TranscribeOptions.from_config(store.config)
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"error: cannot make the output folder {out_dir} ({error.strerror or error}).", file=sys.stderr)
        return 2
    failures: list[str] = []
    fatal: str | None = None  # an error about the whole run, printed once the progress bar is closed
    with tqdm(total=len(files), unit="file", desc="transcribing") as bar:
        for path in files:
            bar.set_postfix_str(path.name)
            try:
                result = transcribe_file(path, args.model, options, store, formats, out_dir, name=str(path))
            except LocalSttError as error:  # the model or the configuration: no other file would work
                fatal = f"error: {error}"
                break
            except KeyboardInterrupt:
                print("\ninterrupted; files already written are complete.", file=sys.stderr)
                return 130
            if result.transcript is None:
                failures.append(f"{path}: {result.failure}")
            else:
                made = ", ".join(str(p) for p in result.written)
                tqdm.write(f"{path}: {result.transcript.duration:.1f} s -> {made}")
            bar.update()
    if fatal is not None:
        print(fatal, file=sys.stderr)
        return 2
    for line in failures:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
