"""`transcribe FILE|DIR... [--manifest LIST.jsonl] --model KEY --format srt,txt --out DIR`, and
`transcribe --live -|FILE [--realtime]` (localstt/live/command.py).

A job the user can stop and resume: the recordings are transcribed in batches (localstt/runs/batch.py:
decoded on threads while the model runs, longest first), and each one's files and its line in
OUT/job.jsonl (localstt/runs/resume.py) are written as soon as it is done. Run the same command again and
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

import contextlib
import importlib.util
import json
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

import localstt.offline  # noqa: F401,I001  # first: nothing this command imports can reach a hub
from localstt import environment
from localstt.audio import probe_seconds
from localstt.cli_parser import build_parser
from localstt.engine import diarizer_key
from localstt.errors import ConfigError, LanguageError, LocalSttError, VocabularyError
from localstt.formats import WRITERS
from localstt.language_choice import checked_languages
from localstt.library.keeper import Keeper
from localstt.live.command import run_live
from localstt.logfile import log_to_console
from localstt.options import TranscribeOptions
from localstt.runs.batch import run_job_here
from localstt.runs.on_app import AppLink, find_app, run_job_on_app
from localstt.runs.ray import run_job_on_ray
from localstt.runs.result import RecordingResult
from localstt.runs.resume import JOB_FILE, Job
from localstt.speakers import parse_names
from localstt.spec import Vocabulary
from localstt.store import ModelStore, default_store
from localstt.subtitles import LIMITS
from localstt.vocabulary import merged, parse_phrases, parse_rules

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
    args = build_parser(argv).parse_args(argv)
    log_to_console(info_to_stderr=args.live is not None)  # --live: stdout is the transcript

    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    unknown = [f for f in formats if f not in WRITERS]
    if unknown or not formats:
        print(
            f"error: unknown format {', '.join(unknown) or '(none)'}; use {','.join(WRITERS)}.",
            file=sys.stderr,
        )
        return 2
    speakers = args.speakers or bool(args.speaker_names.strip())
    try:
        store = default_store(args.config)
        model_key = args.model or next(iter(store.config.transcribers), "")
        spec = store.config.model(model_key)
        if model_key not in store.config.transcribers:
            models = ", ".join(store.config.transcribers) or "none"
            raise ConfigError(
                f"{model_key} ({spec.display_name}) says who spoke but transcribes nothing; pick a "
                f"transcription model with --model ({models}) and add --speakers."
            )
        diarizer = diarizer_key(store) if speakers else None
        spoken = checked_languages(
            spec, TranscribeOptions(language=args.language, translate_to=args.translate_to)
        )
    except (ConfigError, LanguageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        base = store.config.transcription.vocabulary
        vocabulary = job_vocabulary(base, args.vocabulary, args.hotwords, args.replace)
    except VocabularyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    library = store.config.library
    keeping = args.library or (library is not None and library.cli)
    keeper = Keeper(library, store.config.path, on=keeping)
    if keeping and not keeper.available:
        print(f"warning: {keeper.problem} Transcribing without it.", file=sys.stderr)
    if args.live is not None:
        live_options = store.config.transcription.replace(vocabulary=vocabulary)
        return _live(
            args.live,
            model_key,
            formats,
            Path(args.out),
            store,
            args.realtime,
            args.inputs,
            live_options,
            keeper,
        )
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
        speakers=speakers,
        speaker_names=tuple(parse_names(args.speaker_names)),
        vocabulary=vocabulary,
        language=args.language,
        translate_to=args.translate_to,
    )
    try:
        layout = store.config.subtitles.replace(**{name: getattr(args, key) for key, name, *_ in LIMITS})
    except ValueError as error:
        print(f"error: --{str(error).replace('_', '-')}", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"error: cannot make the output folder {out_dir} ({error.strerror or error}).", file=sys.stderr)
        return 2
    if args.ray is not None and importlib.util.find_spec("ray") is None:
        print("error: --ray needs Ray: install it with `uv sync --extra cluster`.", file=sys.stderr)
        return 2
    ray = (
        RaySettings(None if args.ray == "local" else args.ray, args.actors) if args.ray is not None else None
    )
    app = None
    if ray is None and not args.local:  # the running app, if it can take the job; one line says which
        try:
            app, why = find_app(store.config, model_key, server=args.server, api_key=environment.api_key())
        except LocalSttError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(
            f"transcribing with the app at {app.url}" if app else f"transcribing here: {why}", file=sys.stderr
        )
    # The store records the outcome: the first transcription waits for this load or gets its error.
    keys = [model_key] + ([diarizer] if diarizer else [])
    loader = threading.Thread(target=_load_quietly, args=(store, keys), name="load", daemon=True)
    if ray is None and app is None:  # on Ray or the app, the model is loaded there; here none is
        loader.start()
    try:
        job = Job(
            files,
            model_key,
            spec.revision,
            formats,
            out_dir,
            options,
            store.config.path,
            layout=layout,
            spoken=spoken,
        )
        if job.skipped:
            print(f"{job.skipped} of {len(files)} already done in {job.log.path}; doing the rest.")
        status = run_job(job, store, ray, keeper, app)
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


def job_vocabulary(
    base: Vocabulary, phrases_file: str | None, hotwords: str, rules_file: str | None
) -> Vocabulary:
    """config.toml's vocabulary with the command line's phrases and rules added; VocabularyError (one
    sentence) for a file that cannot be read or a phrase or rule that cannot be used."""

    def read(name: str) -> str:
        try:
            return Path(name).expanduser().read_text(encoding="utf-8")
        except OSError as error:
            raise VocabularyError(f"Cannot read {name} ({error.strerror or error}).") from None

    phrases = [*(parse_phrases(read(phrases_file)) if phrases_file else []), *parse_phrases(hotwords)]
    rules = parse_rules(read(rules_file)) if rules_file else ()
    return merged(base, phrases, rules)


def _live(
    source: str,
    model_key: str,
    formats: list[str],
    out_dir: Path,
    store: ModelStore,
    realtime: bool,
    others: Sequence[str],
    options: TranscribeOptions,
    keeper: Keeper,
) -> int:
    if others:
        print("error: --live takes one source; name no other recordings.", file=sys.stderr)
        return 2
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return run_live(source, model_key, formats, out_dir, store, realtime, options.vocabulary, keeper)
    except LocalSttError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run_job(
    job: Job,
    store: ModelStore,
    ray: RaySettings | None = None,
    keeper: Keeper | None = None,
    app: AppLink | None = None,
) -> int:
    """Transcribe what `job` has left to do, here, on Ray or on the app (localstt/runs/), with a progress bar;
    each recording's outputs and line are written as soon as it is done, and it is kept in the
    library by `keeper`. Exit status: 0, or 1 when some failed (one `failed: FILE: sentence` line
    each, at the end).

    Raises:
        LocalSttError: one about the whole run (the model is not exported or does not load).
    """
    seconds = [probe_seconds(path) for path in job.todo]
    hours = sum(length or 0.0 for length in seconds) / 3600
    failures: list[str] = []
    bar_format = (
        "{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total:.2f} h of audio [{elapsed}<{remaining}]{postfix}"
    )
    with tqdm(total=round(hours, 4), desc="transcribing", bar_format=bar_format) as bar:
        finished = 0

        def report(result: RecordingResult) -> None:
            """One recording is done: its files and its job.jsonl line are written."""
            nonlocal finished
            finished += 1
            if result.failure:
                failures.append(f"{result.path}: {result.failure}")
            elif result.transcript is not None:
                outputs = ", ".join(map(str, result.outputs))
                tqdm.write(f"{result.path}: {result.transcript.duration:.1f} s -> {outputs}")
                sha256 = job.hashes.get(result.path)
                if keeper is not None and (
                    note := keeper.keep(result.transcript, "cli", source=result.path, sha256=sha256)
                ):
                    tqdm.write(f"warning: {note}")
                bar.update(min(float(bar.total or 0) - bar.n, result.transcript.duration / 3600))
            bar.set_postfix_str(f"{finished}/{len(job.todo)} files")

        if ray is not None:
            run_job_on_ray(job, address=ray.address, actors=ray.actors, progress=report)
        elif app is not None:
            run_job_on_app(job, app, seconds, report)
        else:
            for result in run_job_here(job, store, seconds):
                report(result)
    for line in failures:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
