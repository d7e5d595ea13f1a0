"""config.toml's [library]: where the library file is, what it keeps, and for how long."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localstt.errors import ConfigError

DEFAULT_FILE = "library.sqlite3"


@dataclass(frozen=True)
class LibrarySettings:
    """[library]: on for the page, the API and live sessions unless `enabled` is false; the command
    line keeps its transcripts with `--library` or `cli = true`."""

    path: Path
    enabled: bool = True
    cli: bool = False
    keep_audio: bool = False
    keep_days: float = 0.0  # 0: forever

    @property
    def audio_dir(self) -> Path:
        """The recordings kept beside the file (keep_audio): library.sqlite3 -> library-audio/."""
        return self.path.with_name(f"{self.path.stem}-audio")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], config_path: Path) -> LibrarySettings:
        """[library] of `config_path` (a relative path is taken from that file's folder).

        Raises:
            ConfigError: a key that is not one, or a value of the wrong kind, in one sentence.
        """
        where = f"[library] in {config_path}"
        known = ("enabled", "path", "cli", "keep_audio", "keep_days")
        for key in table:
            if key not in known:
                raise ConfigError(f"{where} has no setting {key!r}; use {', '.join(known)}.")
        switches = {}
        for key in ("enabled", "cli", "keep_audio"):
            value = table.get(key, getattr(cls, key))
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: {key} = {value!r}; use true or false.")
            switches[key] = value
        keep_days = table.get("keep_days", 0)
        if isinstance(keep_days, bool) or not isinstance(keep_days, int | float) or keep_days < 0:
            raise ConfigError(
                f"{where}: keep_days = {keep_days!r}; use a number of days, or 0 to keep transcripts forever."
            )
        raw = table.get("path", DEFAULT_FILE)
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(f'{where}: path = {raw!r}; use a file name, e.g. path = "{DEFAULT_FILE}".')
        path = Path(raw.strip()).expanduser()
        path = path if path.is_absolute() else config_path.parent / path
        return cls(path=path.resolve(), keep_days=float(keep_days), **switches)
