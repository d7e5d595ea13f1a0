"""What the caller can choose about a transcription: `TranscribeOptions`, and each family's own part.

Every field made with `setting(...)` can be set in config.toml's [transcription] table, under the
field's name, within its `Limit`. A Transcript records the options it was made with
(`TranscribeOptions.used_by`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from localstt.errors import ConfigError

if TYPE_CHECKING:
    from localstt.config import AppConfig
    from localstt.models.family import ModelFamily

OptionsT = TypeVar("OptionsT", bound="FamilyOptions")


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


@dataclass(frozen=True)
class FamilyOptions:
    """A family's own transcription options. Its field names are also the keys of config.toml's
    [transcription] table, so they are unique across families: prefix them with the family's name."""


def _registered() -> tuple[ModelFamily, ...]:
    from localstt.models import families

    return families()


@dataclass(frozen=True)
class TranscribeOptions:
    """The options of one transcription: those for every family, and each family's own part
    (`of(ParakeetOptions)`). A family's part left out is its defaults."""

    max_audio_minutes: float = setting(180.0, Limit(0, False, None, False, "a number of minutes above 0"))
    # Many recordings in one run (localstt/batch.py) are taken in batches of at most this much audio.
    batch_minutes: float = setting(10.0, Limit(0, False, None, False, "a number of minutes above 0"))
    # Say who spoke (config.toml's speaker diarizer, [models.sortformer], runs beside the model), and
    # what to call them: the n-th speaker heard takes the n-th name, the others "Speaker n".
    speakers: bool = False
    speaker_names: tuple[str, ...] = ()
    family_options: tuple[FamilyOptions, ...] = ()

    def __post_init__(self) -> None:
        given = {type(options): options for options in self.family_options}
        complete = tuple(
            given.pop(f.options_type) if f.options_type in given else f.options_type() for f in _registered()
        )
        object.__setattr__(self, "family_options", complete + tuple(given.values()))

    def of(self, options_type: type[OptionsT]) -> OptionsT:
        """This transcription's options of one family (its defaults where none were given)."""
        for options in self.family_options:
            if isinstance(options, options_type):
                return options
        return options_type()

    def replace(self, **fields: Any) -> TranscribeOptions:
        """A copy with `fields` changed, each given by its name wherever it lives, e.g.
        `options.replace(max_audio_minutes=60, canary_batch_size=2)`."""
        names = _field_names(TranscribeOptions) - {"family_options"}
        common = {name: fields.pop(name) for name in list(fields) if name in names}
        parts = []
        for options in self.family_options:
            mine = {name: fields.pop(name) for name in list(fields) if name in _field_names(type(options))}
            parts.append(dataclasses.replace(options, **mine) if mine else options)
        if fields:
            raise TypeError(f"no transcription option named {', '.join(sorted(fields))}")
        return dataclasses.replace(self, **common, family_options=tuple(parts))

    @classmethod
    def build(cls, **fields: Any) -> TranscribeOptions:
        """The defaults with `fields` changed (see `replace`)."""
        return cls().replace(**fields)

    @classmethod
    def from_config(cls, config: AppConfig, **overrides: Any) -> TranscribeOptions:
        """What config.toml's [transcription] asks for, with `overrides` changed."""
        return config.transcription.replace(**overrides)

    @classmethod
    def from_table(cls, table: dict[str, Any], config_path: str) -> TranscribeOptions:
        """The options that config.toml's [transcription] `table` sets, each checked against its
        Limit: ConfigError (naming `config_path`) for the first that is not within it."""
        values: dict[str, Any] = {}
        for options_type in (cls, *(f.options_type for f in _registered())):
            for name, limit in settings_of(options_type).items():
                if name not in table:
                    continue
                value = table[name]
                if not limit.allows(value):
                    raise ConfigError(
                        f"[transcription] {name} = {value!r} in {config_path}; use {limit.instead}."
                    )
                if isinstance(value, str):
                    values[name] = value
                else:
                    values[name] = int(value) if limit.whole else float(value)
        return cls.build(**values)

    def used_by(self, options_type: type[FamilyOptions]) -> dict[str, Any]:
        """What a transcript records: the common options and those of the family that ran."""
        common = {
            name: getattr(self, name) for name in _field_names(TranscribeOptions) if name != "family_options"
        }
        used = {**common, **dataclasses.asdict(self.of(options_type))}
        # as JSON has them: tuples (speaker_names) as lists, so a transcript read back is equal
        return {name: list(value) if isinstance(value, tuple) else value for name, value in used.items()}


def _field_names(options_type: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(options_type)}
