"""`transcribe FILE|DIR... [--manifest LIST.jsonl] --model parakeet --format srt,txt --out DIR`.

A job the user can stop and resume: the recordings are transcribed in batches (localstt/batch.py:
decoded on threads while the model runs, longest first), and each one's files and its line in
OUT/job.jsonl (localstt/joblog.py) are written as soon as it is done. Run the same command again and
the recordings already done with the same content, model and pinned commit are skipped; Ctrl-C or a
kill loses at most the batch in flight. `--manifest` reads NeMo-style JSON lines (`audio_filepath`).

One file that fails (whatever the error) costs only itself: the others are still done, and the end
of the run lists one `failed: FILE: sentence` line per failed file (exit status 1). An error that is
not one of the app's own is logged with its traceback to the log file (localstt/logfile.py), which
the sentence names. Errors that concern the whole run (the model is not exported or does not load)
stop it: `error: ...`, exit status 2.

The model loads in a background thread once the arguments are checked, while the first files are
hashed and decoded; the first batch waits for that load (and gets its error, if it fails).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from localstt.joblog import JOB_FILE

if TYPE_CHECKING:
    from localstt.options import TranscribeOptions
    from localstt.store import ModelStore
    from localstt.transcript import Transcript

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


def _load_quietly(store: ModelStore, keys: Sequence[str]) -> None:
    """Load `keys` ahead of the first transcription; a failure is the store's to report then."""
    for key in keys:
        with contextlib.suppress(Exception):
            store.load(key)


@dataclass(frozen=True)
class RaySettings:
    address: str | None  # None: a local instance on this machine
    actors: int | None  # None: one per GPU


def read_manifest_lines(manifest: Path) -> list[Path]:
    """The recordings of a NeMo-style manifest: one JSON object per line with `audio_filepath`
    (relative to the manifest's folder unless absolute; `duration` and other keys are ignored).

    Raises:
        ValueError: with the one sentence to show, for a line that is not such an object.
    """
    files: list[Path] = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            audio = entry["audio_filepath"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(
                f'{manifest} line {number} is not a JSON object with "audio_filepath"; '
                'write one per line, e.g. {"audio_filepath": "a.wav", "duration": 3.2}.'
            ) from None
        path = Path(str(audio)).expanduser()
        files.append(path if path.is_absolute() else manifest.parent / path)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="transcribe", description="Transcribe recordings offline.")
    parser.add_argument("inputs", nargs="*", help="audio files or folders")
    parser.add_argument("--manifest", help="a JSON-lines list of recordings (NeMo's audio_filepath)")
    parser.add_argument("--model", default="parakeet", help="model key from config.toml (default: parakeet)")
    parser.add_argument(
        "--format", default="txt,srt", help="comma-separated: txt,srt,vtt,json (default: txt,srt)"
    )
    parser.add_argument("--out", default="transcripts", help="output folder (default: ./transcripts)")
    parser.add_argument("--config", help="path to config.toml")
    parser.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on Ray: a local instance, or join ADDRESS (auto, ray://host:port); needs the cluster extra",
    )
    parser.add_argument("--actors", type=int, help="with --ray: model replicas (default: one per GPU)")
    parser.add_argument(
        "--speakers",
        action="store_true",
        help="say who spoke (up to 4 speakers; needs the sortformer model of config.toml exported)",
    )
    parser.add_argument(
        "--speaker-names",
        metavar='"ANA,BEN"',
        default="",
        help="names for the speakers in the order they are first heard (implies --speakers)",
    )
    args = parser.parse_args(argv)

    import localstt.offline  # noqa: F401  # before the modules that load models: no hub, ever
    from localstt.errors import ConfigError, LocalSttError
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
    from localstt.engine import diarizer_key
    from localstt.speakers import parse_names

    speakers = args.speakers or bool(args.speaker_names.strip())
    try:
        store = default_store(args.config)
        spec = store.config.model(args.model)
        if args.model not in store.config.transcribers:
            models = ", ".join(store.config.transcribers) or "none"
            raise ConfigError(
                f"{args.model} ({spec.display_name}) says who spoke but transcribes nothing; pick a "
                f"transcription model with --model ({models}) and add --speakers."
            )
        diarizer = diarizer_key(store) if speakers else None
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.inputs and not args.manifest:
        print("error: name the recordings: files, folders or --manifest LIST.jsonl.", file=sys.stderr)
        return 2
    files = expand_inputs(args.inputs)
    if args.manifest:
        try:
            files += read_manifest_lines(Path(args.manifest))
        except OSError as error:
            print(f"error: cannot read {args.manifest} ({error.strerror or error}).", file=sys.stderr)
            return 2
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    if not files:
        print("error: no audio files found in the given folders.", file=sys.stderr)
        return 2
    options = store.config.transcription.replace(
        speakers=speakers, speaker_names=tuple(parse_names(args.speaker_names))
    )
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"error: cannot make the output folder {out_dir} ({error.strerror or error}).", file=sys.stderr)
        return 2
    # The store records the outcome: the first transcription waits for this load or gets its error.
    keys = [args.model] + ([diarizer] if diarizer else [])
    loader = threading.Thread(target=_load_quietly, args=(store, keys), name="load", daemon=True)
    if args.ray is not None and importlib.util.find_spec("ray") is None:
        print("error: --ray needs Ray: install it with `uv sync --extra cluster`.", file=sys.stderr)
        return 2
    ray = (
        RaySettings(None if args.ray == "local" else args.ray, args.actors) if args.ray is not None else None
    )
    if ray is None:  # on Ray each actor loads its own replica; this process needs none
        loader.start()
    try:
        status = run_job(files, args.model, formats, out_dir, options, store, ray)
    except LocalSttError as error:  # the model or the configuration: no other file would work
        print(f"error: {error}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; every recording finished so far is in {out_dir / JOB_FILE}: run the same "
            "command again to do the rest.",
            file=sys.stderr,
        )
        return 130
    if loader.is_alive():
        loader.join()  # every file may have failed before using the model: let the load end first
    return status


def run_job(
    files: Sequence[Path],
    model_key: str,
    formats: Sequence[str],
    out_dir: Path,
    options: TranscribeOptions,
    store: ModelStore,
    ray: RaySettings | None = None,
) -> int:
    """Transcribe `files` into `out_dir`, skipping those its job.jsonl has done with this model and
    commit; each file's outputs and line are written as soon as it is done (here, or on Ray with
    `ray`: localstt/ray_job.py). Exit status: 0, or 1 when some failed (one `failed: FILE: sentence`
    line each, at the end).

    Raises:
        LocalSttError: one about the whole run (the model is not exported or does not load).
    """
    from tqdm import tqdm

    from localstt.audio import probe_seconds
    from localstt.batch import transcribe_many
    from localstt.hashing import sha256_file
    from localstt.joblog import JobLog, finish_recording, speakers_setting

    job = JobLog(out_dir)
    revision = store.config.model(model_key).revision
    speakers = speakers_setting(options)
    hashes: dict[Path, str] = {}
    todo: list[Path] = []
    for path in files:
        try:
            hashes[path] = sha256_file(path)
        except OSError:
            hashes[path] = ""  # unreadable: transcribing it says why
        if hashes[path] and job.done(hashes[path], model_key, revision, speakers) is not None:
            continue
        todo.append(path)
    if len(todo) < len(files):
        print(f"{len(files) - len(todo)} of {len(files)} already done in {job.path}; doing the rest.")
    seconds = [probe_seconds(path) for path in todo]
    hours = sum(length or 0.0 for length in seconds) / 3600
    failures: list[str] = []
    bar_format = (
        "{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total:.2f} h of audio [{elapsed}<{remaining}]{postfix}"
    )
    with tqdm(total=round(hours, 4), desc="transcribing", bar_format=bar_format) as bar:
        finished = 0

        def report(path: Path, transcript: Transcript | None, failure: str, written: Sequence[Path]) -> None:
            """One recording is done: its files and its job.jsonl line are written."""
            nonlocal finished
            finished += 1
            if failure:
                failures.append(f"{path}: {failure}")
            elif transcript is not None:
                tqdm.write(f"{path}: {transcript.duration:.1f} s -> {', '.join(map(str, written))}")
                bar.update(min(float(bar.total or 0) - bar.n, transcript.duration / 3600))
            bar.set_postfix_str(f"{finished}/{len(todo)} files")

        if ray is not None:
            from localstt.ray_job import RayResult, run_on_ray

            def done_on_ray(result: RayResult) -> None:
                report(result.path, result.transcript, result.failure, result.outputs)

            run_on_ray(
                todo,
                model_key,
                formats,
                out_dir,
                store.config.path,
                address=ray.address,
                actors=ray.actors,
                options=options,
                hashes=hashes,
                progress=done_on_ray,
            )
        else:
            for result in transcribe_many(todo, model_key, options, store, seconds=seconds):
                written, failure = finish_recording(
                    job,
                    result.path,
                    hashes[result.path],
                    model_key,
                    revision,
                    result.transcript,
                    result.failure,
                    formats,
                    store.config.path,
                    speakers,
                )
                report(result.path, result.transcript, failure, written)
    for line in failures:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
