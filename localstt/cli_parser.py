"""The command line's arguments (`transcribe --help`), for localstt/cli.py. What --language and
--translate-to accept is said per model of the config.toml the command will use, from what each
model's family declares (localstt/languages.py)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from localstt.config import AppConfig, load_config
from localstt.errors import LocalSttError
from localstt.formats import WRITERS
from localstt.models import family_for
from localstt.subtitles import LIMITS


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; its help for the language options names the models of the config.toml that
    `argv`'s --config (or the default) names, when it can be read."""
    languages, translations = languages_help(_config_of(argv))
    parser = argparse.ArgumentParser(prog="transcribe", description="Transcribe recordings offline.")
    parser.add_argument("inputs", nargs="*", help="audio files or folders")
    parser.add_argument("--manifest", help="a JSON-lines list of recordings (NeMo's audio_filepath)")
    parser.add_argument("--model", help="model key from config.toml (default: its first transcription model)")
    parser.add_argument(
        "--format",
        default="txt,srt",
        help=f"comma-separated: {','.join(WRITERS)} (default: txt,srt)",
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
    parser.add_argument("--local", action="store_true", help="transcribe here even when the app is running")
    parser.add_argument("--server", metavar="URL", help="send the recordings to the app at URL")
    parser.add_argument(
        "--speakers",
        action="store_true",
        help="say who spoke (up to 4 speakers; needs the speaker diarizer of config.toml exported)",
    )
    parser.add_argument(
        "--speaker-names",
        metavar='"ANA,BEN"',
        default="",
        help="names for the speakers in the order they are first heard (implies --speakers)",
    )
    parser.add_argument(
        "--vocabulary", metavar="FILE", help="phrases to recognise, one a line (adds to config.toml's)"
    )
    parser.add_argument(
        "--hotwords", metavar='"A, B"', default="", help="phrases to recognise, comma-separated"
    )
    parser.add_argument("--replace", metavar="FILE", help="replacement rules, one `find => replace` a line")
    parser.add_argument(
        "--language",
        metavar="CODE",
        default="",
        help="the spoken language, e.g. de (default: the model hears it, or its only one); " + languages,
    )
    parser.add_argument(
        "--translate-to",
        metavar="CODE",
        default="",
        help="write the transcript in this language, with a model that translates" + translations,
    )
    parser.add_argument(
        "--live",
        metavar="SOURCE",
        help="transcribe live from SOURCE: - for standard input (raw 16 kHz 16-bit PCM, or WAV/FLAC/Ogg "
        "as a stream), or a file; each line is printed as it settles",
    )
    parser.add_argument("--realtime", action="store_true", help="with --live FILE: play it at real-time pace")
    parser.add_argument(
        "--library",
        action="store_true",
        help="also keep each transcript in the library ([library] in config.toml)",
    )
    for key, _, low, high, whole in LIMITS:
        parser.add_argument(
            f"--{key.replace('_', '-')}",
            type=int if whole else float,
            metavar="N",
            help=f"SRT/VTT: {key.replace('_', ' ')}, {low:g} to {high:g} (default: [subtitles])",
        )
    return parser


def _config_of(argv: Sequence[str] | None) -> AppConfig | None:
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--config")
    known, _ = early.parse_known_args(argv)
    try:
        return load_config(known.config)
    except (LocalSttError, OSError):
        return None  # the command itself then says what is wrong with it


def languages_help(config: AppConfig | None) -> tuple[str, str]:
    """(what each model transcribes, which ones translate), for --help."""
    if config is None:
        return "see GET /v1/models or docs/models.md", ""
    said, translating = [], []
    for key, spec in config.transcribers.items():
        languages = family_for(spec.kind).languages(spec)
        codes = ", ".join(languages.transcribes)
        said.append(
            f"{key}: {languages.describe()}" + (f" ({codes})" if len(languages.transcribes) > 1 else "")
        )
        if languages.translates:
            translating.append(f"{key} into {', '.join(languages.targets)}")
    into = f" ({'; '.join(translating)})" if translating else " (none in this config.toml)"
    return "; ".join(said), into
