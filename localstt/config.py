"""config.toml: what the user asked for. Read into typed objects; pins written back with comments kept.

Which config.toml: localstt/spec.py, `find_config_path`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomlkit

from localstt.errors import ConfigError, VocabularyError
from localstt.library.settings import LibrarySettings
from localstt.models import DEFAULT_KIND, Diarizer, Transcriber, families, family_for
from localstt.options import TranscribeOptions
from localstt.portability import atomic_write_text
from localstt.spec import COMMIT_RE, LiveSettings, ModelSpec, Vocabulary, find_config_path
from localstt.subtitles import SubtitleLayout
from localstt.vocabulary import check_phrases, parse_phrases

DEVICES = ("auto", "cuda", "cpu")
DTYPES = ("auto", "bfloat16", "float16", "float32")

__all__ = ["AppConfig", "ConfigError", "ModelSpec", "find_config_path", "load_config", "write_pin"]


@dataclass(frozen=True)
class RuntimeOptions:
    device: str = "auto"
    dtype: str = "auto"
    keep_all_loaded: bool = False
    verify_on_load: Literal["quick", "full"] = "quick"
    cpu_threads: int | None = None  # None: "auto", the physical cores (localstt/cpu_threads.py)


@dataclass(frozen=True)
class AppOptions:
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: int = 2048
    # Models the web app loads in the background as soon as it serves (load_config's default: the
    # first model of config.toml).
    preload: tuple[str, ...] = ()


# Live steps where "auto": NVIDIA's streaming config for its TDT models on a GPU (about 2.4 s from a
# word to its final text), and its buffered_rnnt config on the CPU, which cannot keep up with smaller
# chunks of a full-size model (docs/benchmarks.md, "Live").
AUTO_LIVE_GPU = (0.8, 9.6, 1.6)
AUTO_LIVE_CPU = (4.8, 1.6, 1.6)


@dataclass(frozen=True)
class LiveOptions:
    """config.toml's [live]: the steps' audio ("auto" where None), endpointing and limits."""

    chunk_seconds: float | None = None
    left_seconds: float | None = None
    right_seconds: float | None = None
    endpoint_ms: int = 800
    max_live_sessions: int = 4
    max_session_minutes: float = 120.0

    def settings(self, device: str) -> LiveSettings:
        """The steps' settings on `device`, "auto" resolved."""
        chunk, left, right = AUTO_LIVE_GPU if device == "cuda" else AUTO_LIVE_CPU
        return LiveSettings(
            chunk_seconds=self.chunk_seconds if self.chunk_seconds is not None else chunk,
            left_seconds=self.left_seconds if self.left_seconds is not None else left,
            right_seconds=self.right_seconds if self.right_seconds is not None else right,
            endpoint_ms=self.endpoint_ms,
            max_streams=self.max_live_sessions,
        )


@dataclass(frozen=True)
class AppConfig:
    path: Path
    models_dir: Path
    models: dict[str, ModelSpec]
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    app: AppOptions = field(default_factory=AppOptions)
    transcription: TranscribeOptions = field(default_factory=TranscribeOptions)
    live: LiveOptions = field(default_factory=LiveOptions)
    subtitles: SubtitleLayout = field(default_factory=SubtitleLayout)
    library: LibrarySettings | None = None  # [library]; None (a config made in code): no library

    @property
    def max_audio_minutes(self) -> float:
        return self.transcription.max_audio_minutes

    @property
    def transcribers(self) -> dict[str, ModelSpec]:
        """The transcription models (every model but a diarizer), in config.toml's order."""
        return {key: spec for key, spec in self.models.items() if transcribes(spec)}

    @property
    def diarizer(self) -> str | None:
        """The key of the first speaker diarizer in config.toml, if there is one."""
        return next(
            (key for key, spec in self.models.items() if isinstance(family_for(spec.kind), Diarizer)), None
        )

    def model(self, key: str) -> ModelSpec:
        try:
            return self.models[key]
        except KeyError:
            known = ", ".join(sorted(self.models)) or "none"
            raise ConfigError(f"Unknown model '{key}'. Models in {self.path}: {known}.") from None


def transcribes(spec: ModelSpec) -> bool:
    """Whether `spec` is a transcription model (its family is a Transcriber)."""
    return isinstance(family_for(spec.kind), Transcriber)


def _read_document(path: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist; pass --config PATH.") from None
    except tomlkit.exceptions.ParseError as error:
        raise ConfigError(f"Config file {path} is not valid TOML ({error}); fix that line.") from None


def _choice(table: dict[str, Any], key: str, allowed: tuple[str, ...], default: str, where: str) -> str:
    value = str(table.get(key, default))
    if value not in allowed:
        raise ConfigError(f"{where}.{key} is '{value}'; use one of: {', '.join(allowed)}.")
    return value


def _model_spec(key: str, table: dict[str, Any], path: Path) -> ModelSpec:
    where = f"[models.{key}] in {path}"
    repo = str(table.get("repo", "")).strip()
    if repo.count("/") != 1:
        raise ConfigError(f'{where} needs repo = "org/name".')
    kinds = tuple(family.kind for family in families())
    kind = _choice(table, "kind", kinds, DEFAULT_KIND, f"[models.{key}]")
    spec = ModelSpec(
        key=key,
        repo=repo,
        revision=str(table.get("revision", "")).strip(),
        kind=kind,
        llm_repo=str(table.get("llm_repo", "")).strip(),
        llm_revision=str(table.get("llm_revision", "")).strip(),
    )
    for name, value in (("revision", spec.revision), ("llm_revision", spec.llm_revision)):
        if value and not COMMIT_RE.match(value):
            raise ConfigError(
                f"{where}: {name} '{value}' is not a full 40-character commit id; "
                "leave it empty to pin the current main on the next export."
            )
    if spec.llm_repo and spec.llm_repo.count("/") != 1:
        raise ConfigError(f'{where} has llm_repo = "{spec.llm_repo}"; use llm_repo = "org/name".')
    if (problem := family_for(spec.kind).check_spec(spec)) is not None:
        raise ConfigError(f"{where} {problem}")
    return spec


def _preload(
    app: dict[str, Any], models: dict[str, ModelSpec], keep_all_loaded: bool, path: Path
) -> tuple[str, ...]:
    """[app] preload: the models to load at start; absent means the first transcription model, [] none."""
    if "preload" not in app:
        return tuple(key for key, spec in models.items() if transcribes(spec))[:1]
    value = app["preload"]
    if not isinstance(value, list) or not all(isinstance(key, str) for key in value):
        example = next(iter(models), "key")
        raise ConfigError(
            f'[app] preload in {path} must be a list of model keys, e.g. ["{example}"], or [] for none.'
        )
    keys = tuple(dict.fromkeys(value))
    for key in keys:
        if key not in models:
            known = ", ".join(models) or "none"
            raise ConfigError(
                f"[app] preload in {path} names '{key}', which is not a model there; use one of: {known}."
            )
    transcribers = [key for key in keys if transcribes(models[key])]
    if len(transcribers) > 1 and not keep_all_loaded:
        raise ConfigError(
            f"[app] preload in {path} lists {len(transcribers)} transcription models but keep_all_loaded = "
            "false keeps only one loaded; list one, or set keep_all_loaded = true."
        )
    return keys


def _live(table: dict[str, Any], path: Path) -> LiveOptions:
    """[live], each value checked: ConfigError naming the key and what to write instead."""

    def number(key: str, low: float, allow_low: bool, auto: bool, whole: bool = False) -> Any:
        default = getattr(LiveOptions(), key)
        value = table.get(key, "auto" if auto else default)
        if auto and value == "auto":
            return None
        fits = isinstance(value, int | float) and not isinstance(value, bool)
        fits = fits and (value >= low if allow_low else value > low) and (not whole or value == int(value))
        if not fits:
            kind = "a whole number" if whole else "a number"
            bound = f"{low:g} or more" if allow_low else f"above {low:g}"
            also = ', or "auto"' if auto else ""
            raise ConfigError(f"[live] {key} = {value!r} in {path}; use {kind} {bound}{also}.")
        return int(value) if whole else float(value)

    return LiveOptions(
        chunk_seconds=number("chunk_seconds", 0, False, auto=True),
        left_seconds=number("left_seconds", 0, True, auto=True),
        right_seconds=number("right_seconds", 0, True, auto=True),
        endpoint_ms=number("endpoint_ms", -1, True, auto=False, whole=True),
        max_live_sessions=number("max_live_sessions", 1, True, auto=False, whole=True),
        max_session_minutes=number("max_session_minutes", 0, False, auto=False),
    )


def _vocabulary(table: dict[str, Any], path: Path) -> Vocabulary:
    """[vocabulary]: phrases (a list, and a file of one a line), strength, replacement rules in order."""
    where = f"[vocabulary] in {path}"
    phrases = table.get("phrases", [])
    if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
        raise ConfigError(f'{where}: phrases is a list of strings, e.g. phrases = ["Ana Lopez", "NeMo"].')
    phrases = list(phrases)
    if file := str(table.get("phrases_file", "")).strip():
        phrases_path = Path(file).expanduser()
        phrases_path = phrases_path if phrases_path.is_absolute() else path.parent / phrases_path
        try:
            phrases += parse_phrases(phrases_path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(
                f"{where}: phrases_file {phrases_path} cannot be read ({error.strerror})."
            ) from None
    strength = table.get("strength", Vocabulary().strength)
    if isinstance(strength, bool) or not isinstance(strength, int | float) or not 0 < strength <= 10:
        raise ConfigError(
            f"{where}: strength = {strength!r}; use a number above 0 and at most 10 (1.0 to start)."
        )
    rules = table.get("replacements", {})
    if not isinstance(rules, dict) or not all(isinstance(v, str) and v.strip() for v in rules.values()):
        raise ConfigError(
            f'{where}: replacements is a table of "find" = "replace", e.g. "open ai" = "OpenAI".'
        )
    try:
        checked = check_phrases(phrases)
    except VocabularyError as error:
        raise ConfigError(f"{where}: {error}") from None
    return Vocabulary(
        phrases=checked,
        strength=float(strength),
        replacements=tuple((" ".join(str(k).split()), " ".join(v.split())) for k, v in rules.items()),
    )


def _cpu_threads(runtime: dict[str, Any], path: Path) -> int | None:
    value = runtime.get("cpu_threads", "auto")
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f'[runtime].cpu_threads in {path} is {value!r}; use "auto" (the physical cores) or a whole '
            "number, 1 or more."
        )
    return value


def load_config(path: str | os.PathLike[str] | None = None) -> AppConfig:
    config_path = find_config_path(path)
    document = _read_document(config_path).unwrap()
    runtime = document.get("runtime", {})
    app = document.get("app", {})
    transcription = document.get("transcription", {})
    models_dir = Path(str(document.get("models_dir", "local_models"))).expanduser()
    if not models_dir.is_absolute():
        models_dir = config_path.parent / models_dir
    models = {key: _model_spec(key, table, config_path) for key, table in document.get("models", {}).items()}
    verify = _choice(runtime, "verify_on_load", ("quick", "full"), "quick", "[runtime]")
    keep_all_loaded = bool(runtime.get("keep_all_loaded", False))
    return AppConfig(
        path=config_path,
        models_dir=models_dir.resolve(),
        models=models,
        runtime=RuntimeOptions(
            device=_choice(runtime, "device", DEVICES, "auto", "[runtime]"),
            dtype=_choice(runtime, "dtype", DTYPES, "auto", "[runtime]"),
            keep_all_loaded=keep_all_loaded,
            verify_on_load=verify,  # type: ignore[arg-type]
            cpu_threads=_cpu_threads(runtime, config_path),
        ),
        app=AppOptions(
            host=str(app.get("host", "127.0.0.1")),
            port=int(app.get("port", 7860)),
            max_upload_mb=int(app.get("max_upload_mb", 2048)),
            preload=_preload(app, models, keep_all_loaded, config_path),
        ),
        transcription=TranscribeOptions.from_table(transcription, str(config_path)).replace(
            vocabulary=_vocabulary(document.get("vocabulary", {}), config_path)
        ),
        live=_live(document.get("live", {}), config_path),
        subtitles=SubtitleLayout.from_table(document.get("subtitles", {}), str(config_path)),
        library=LibrarySettings.from_table(document.get("library", {}), config_path),
    )


def write_pin(config_path: Path, key: str, revision: str, llm_revision: str | None = None) -> None:
    """Move one model's pin in config.toml, keeping every comment and all other text as it was."""
    if not COMMIT_RE.match(revision) or (llm_revision is not None and not COMMIT_RE.match(llm_revision)):
        raise ValueError("a pin must be a full 40-character commit id")
    document = _read_document(config_path)
    table = document["models"][key]  # type: ignore[index]
    table["revision"] = revision  # type: ignore[index]
    if llm_revision is not None:
        table["llm_revision"] = llm_revision  # type: ignore[index]
    atomic_write_text(config_path, tomlkit.dumps(document))
