"""Plain data that every layer shares: what config.toml says of a model (`ModelSpec`), which
config.toml is meant (`find_config_path`), and how a transcription option is declared (`setting`,
`Limit`, `FamilyOptions`).

A leaf: it imports only the other leaves (`environment`, `errors`), so the model families, the
manifest and the config reader can all use it without importing one another.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localstt import environment

CONFIG_NAME = "config.toml"
# The config.toml of the checkout this package sits in, if it does (a fallback, see find_config_path).
CHECKOUT_CONFIG_PATH = Path(__file__).resolve().parent.parent / CONFIG_NAME
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class ModelSpec:
    key: str
    repo: str
    revision: str
    kind: str  # names its family (localstt/models/)
    llm_repo: str = ""
    llm_revision: str = ""

    @property
    def short_revision(self) -> str:
        return self.revision[:12]

    @property
    def display_name(self) -> str:
        return self.repo.rsplit("/", 1)[-1]

    @property
    def pinned_repos(self) -> tuple[tuple[str, str], ...]:
        """(repo, revision) of each repo the export takes files from: the model's, and its language
        model's when it names one."""
        llm = ((self.llm_repo, self.llm_revision),) if self.llm_repo else ()
        return ((self.repo, self.revision), *llm)

    @property
    def is_pinned(self) -> bool:
        return all(COMMIT_RE.match(revision) for _, revision in self.pinned_repos)


def find_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config wins, then $LOCALSTT_CONFIG, then config.toml in the working folder, then the
    checkout's (where the package sits in one); else config.toml in the working folder, which
    load_config then reports missing."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if (from_env := environment.config_path()) is not None:
        return from_env
    here = Path.cwd() / CONFIG_NAME
    if not here.is_file() and CHECKOUT_CONFIG_PATH.is_file():
        return CHECKOUT_CONFIG_PATH
    return here.resolve()


@dataclass(frozen=True)
class Limit:
    """The values a setting in config.toml's [transcription] may take, and how to say so."""

    low: float
    low_allowed: bool  # may it be `low` itself?
    high: float | None  # the highest allowed (itself included); None: no upper limit
    whole: bool  # whole numbers only
    instead: str  # what to write instead, e.g. "a whole number, 1 or more"
    words: tuple[str, ...] = ()  # words it may also be, e.g. ("auto",)

    def allows(self, value: object) -> bool:
        if isinstance(value, str):
            return value in self.words
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            return False
        above = value >= self.low if self.low_allowed else value > self.low
        fits = above and (self.high is None or value <= self.high)
        return fits and (not self.whole or float(value) == int(value))


def setting(default: float | str, limit: Limit) -> Any:
    """A dataclass field that config.toml's [transcription] can set, within `limit`."""
    return field(default=default, metadata={"limit": limit})


def settings_of(options_type: type[Any]) -> dict[str, Limit]:
    """The fields of an options dataclass that config.toml can set, and their limits."""
    return {f.name: f.metadata["limit"] for f in dataclasses.fields(options_type) if "limit" in f.metadata}


def field_names(options_type: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(options_type)}


@dataclass(frozen=True)
class FamilyOptions:
    """A family's own transcription options. Its field names are also the keys of config.toml's
    [transcription] table, so they are unique across families: prefix them with the family's name."""


@dataclass(frozen=True)
class LiveSettings:
    """How a live stream is cut into model steps. Each step reads `left_seconds` of what came before,
    `chunk_seconds` of new audio and `right_seconds` after it, so a word is final about chunk + right
    seconds after it was spoken (plus the step's own compute time)."""

    chunk_seconds: float
    left_seconds: float
    right_seconds: float
    endpoint_ms: int = 800  # text is final once this long passes without a new word
    max_streams: int = 16  # streams one model call may hold


@dataclass(frozen=True)
class Vocabulary:
    """The user's words: phrases the decoding is pulled towards (where the model's family can boost
    them), how hard (`strength`: NeMo's boosting_tree_alpha), and replacement rules applied in order to
    every transcript's final text (`(find, replace)`, whole words, any case)."""

    phrases: tuple[str, ...] = ()
    strength: float = 1.0
    replacements: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.phrases or self.replacements)

    @property
    def fingerprint(self) -> str:
        """Tells two vocabularies apart (a job's record keeps it); "" for none."""
        if not self:
            return ""
        data = {"phrases": list(self.phrases), "strength": self.strength, "replacements": self.replacements}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def phrases_key(self) -> str:
        """Tells two phrase lists (at one strength) apart: one boosted decoding is built per key."""
        data = {"phrases": list(self.phrases), "strength": self.strength}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def as_record(self) -> dict[str, Any]:
        """What a transcript's options record of it."""
        return {
            "phrases": list(self.phrases),
            "strength": self.strength,
            "replacements": [list(rule) for rule in self.replacements],
        }
