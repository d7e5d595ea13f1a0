"""config.toml: what the user asked for. Read into typed objects; pins written back with comments kept."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomlkit

from localstt.portability import atomic_write_text

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.toml"
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
MODEL_KINDS = ("nemo-asr", "salm")
DEVICES = ("auto", "cuda", "cpu")
DTYPES = ("auto", "bfloat16", "float16", "float32")

ModelKind = Literal["nemo-asr", "salm"]


class ConfigError(ValueError):
    """config.toml is missing, malformed or asks for something impossible."""


@dataclass(frozen=True)
class ModelSpec:
    key: str
    repo: str
    revision: str
    kind: ModelKind
    llm_repo: str = ""
    llm_revision: str = ""

    @property
    def short_revision(self) -> str:
        return self.revision[:12]

    @property
    def display_name(self) -> str:
        return self.repo.rsplit("/", 1)[-1]

    @property
    def is_pinned(self) -> bool:
        pinned = bool(COMMIT_RE.match(self.revision))
        if self.kind == "salm":
            pinned = pinned and bool(COMMIT_RE.match(self.llm_revision))
        return pinned


@dataclass(frozen=True)
class RuntimeOptions:
    device: str = "auto"
    dtype: str = "auto"
    keep_all_loaded: bool = False
    verify_on_load: Literal["quick", "full"] = "quick"


@dataclass(frozen=True)
class AppOptions:
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: int = 2048


@dataclass(frozen=True)
class TranscriptionSettings:
    """[transcription] in config.toml; engine.TranscribeOptions extends it (from_config)."""

    max_audio_minutes: float = 180.0
    # Parakeet: full attention up to this length (never over NVIDIA's 24 minutes) and only while one
    # encoder layer's estimated attention memory fits in this fraction of the free memory.
    full_attention_max_minutes: float = 24.0
    attention_memory_fraction: float = 0.8
    parakeet_batch_size: int = 1
    # Canary-Qwen reads at most about 40 s per prompt; this many windows at once (halved on OOM).
    canary_window_seconds: float = 40.0
    canary_batch_size: int = 8


# key: (lowest, lowest allowed itself, highest or None, whole numbers only, what to write instead)
TRANSCRIPTION_LIMITS: dict[str, tuple[float, bool, float | None, bool, str]] = {
    "max_audio_minutes": (0, False, None, False, "a number of minutes above 0"),
    "full_attention_max_minutes": (
        0,
        True,
        24,
        False,
        "a number of minutes from 0 to 24 (NVIDIA's limit for full attention)",
    ),
    "attention_memory_fraction": (
        0,
        False,
        1,
        False,
        "a number above 0 and at most 1 (the share of free memory full attention may use)",
    ),
    "parakeet_batch_size": (1, True, None, True, "a whole number, 1 or more"),
    "canary_window_seconds": (
        0,
        False,
        40,
        False,
        "a number of seconds above 0 and at most 40 (Canary-Qwen reads at most 40 s)",
    ),
    "canary_batch_size": (1, True, None, True, "a whole number, 1 or more"),
}


@dataclass(frozen=True)
class AppConfig:
    path: Path
    models_dir: Path
    models: dict[str, ModelSpec]
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    app: AppOptions = field(default_factory=AppOptions)
    transcription: TranscriptionSettings = field(default_factory=TranscriptionSettings)

    @property
    def max_audio_minutes(self) -> float:
        return self.transcription.max_audio_minutes

    def model(self, key: str) -> ModelSpec:
        try:
            return self.models[key]
        except KeyError:
            known = ", ".join(sorted(self.models)) or "none"
            raise ConfigError(f"Unknown model '{key}'. Models in {self.path}: {known}.") from None


def config_path_from_env(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config wins, then LOCALSTT_CONFIG, then config.toml beside the code."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get("LOCALSTT_CONFIG")
    return Path(env).expanduser().resolve() if env else DEFAULT_CONFIG_PATH


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


def _transcription(table: dict[str, Any], path: Path) -> TranscriptionSettings:
    values: dict[str, Any] = {}
    for key, (low, low_allowed, high, whole, instead) in TRANSCRIPTION_LIMITS.items():
        value = table.get(key, getattr(TranscriptionSettings, key))
        fits = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        fits = fits and (value >= low if low_allowed else value > low) and (high is None or value <= high)
        if not fits or (whole and float(value) != int(value)):
            raise ConfigError(f"[transcription] {key} = {value!r} in {path}; use {instead}.")
        values[key] = int(value) if whole else float(value)
    return TranscriptionSettings(**values)


def _model_spec(key: str, table: dict[str, Any], path: Path) -> ModelSpec:
    where = f"[models.{key}] in {path}"
    repo = str(table.get("repo", "")).strip()
    if repo.count("/") != 1:
        raise ConfigError(f'{where} needs repo = "org/name".')
    kind = _choice(table, "kind", MODEL_KINDS, "nemo-asr", f"[models.{key}]")
    spec = ModelSpec(
        key=key,
        repo=repo,
        revision=str(table.get("revision", "")).strip(),
        kind=kind,  # type: ignore[arg-type]
        llm_repo=str(table.get("llm_repo", "")).strip(),
        llm_revision=str(table.get("llm_revision", "")).strip(),
    )
    for name, value in (("revision", spec.revision), ("llm_revision", spec.llm_revision)):
        if value and not COMMIT_RE.match(value):
            raise ConfigError(
                f"{where}: {name} '{value}' is not a full 40-character commit id; "
                "leave it empty to pin the current main on the next export."
            )
    if spec.kind == "salm" and spec.llm_repo.count("/") != 1:
        raise ConfigError(f'{where} is a salm model and needs llm_repo = "org/name".')
    return spec


def load_config(path: str | os.PathLike[str] | None = None) -> AppConfig:
    config_path = config_path_from_env(path)
    document = _read_document(config_path).unwrap()
    runtime = document.get("runtime", {})
    app = document.get("app", {})
    transcription = document.get("transcription", {})
    models_dir = Path(str(document.get("models_dir", "local_models"))).expanduser()
    if not models_dir.is_absolute():
        models_dir = config_path.parent / models_dir
    models = {key: _model_spec(key, table, config_path) for key, table in document.get("models", {}).items()}
    verify = _choice(runtime, "verify_on_load", ("quick", "full"), "quick", "[runtime]")
    return AppConfig(
        path=config_path,
        models_dir=models_dir.resolve(),
        models=models,
        runtime=RuntimeOptions(
            device=_choice(runtime, "device", DEVICES, "auto", "[runtime]"),
            dtype=_choice(runtime, "dtype", DTYPES, "auto", "[runtime]"),
            keep_all_loaded=bool(runtime.get("keep_all_loaded", False)),
            verify_on_load=verify,  # type: ignore[arg-type]
        ),
        app=AppOptions(
            host=str(app.get("host", "127.0.0.1")),
            port=int(app.get("port", 7860)),
            max_upload_mb=int(app.get("max_upload_mb", 2048)),
        ),
        transcription=_transcription(transcription, config_path),
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
