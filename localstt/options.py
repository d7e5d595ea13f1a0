"""What the caller can choose about a transcription: `TranscribeOptions`, holding each family's own part.

Every field made with `setting(...)` (localstt/spec.py) can be set in config.toml's [transcription]
table, under the field's name, within its `Limit`. A Transcript records the options it was made with
(`TranscribeOptions.used_by`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from localstt.errors import ConfigError
from localstt.models import families
from localstt.spec import FamilyOptions, Limit, Vocabulary, field_names, setting, settings_of

OptionsT = TypeVar("OptionsT", bound=FamilyOptions)


@dataclass(frozen=True)
class TranscribeOptions:
    """The options of one transcription: those for every family, and each family's own part
    (`of(SomeFamilyOptions)`). A family's part left out is its defaults."""

    max_audio_minutes: float = setting(180.0, Limit(0, False, None, False, "a number of minutes above 0"))
    # Many recordings in one run (localstt/runs/batch.py) are taken in batches of at most this much audio.
    batch_minutes: float = setting(10.0, Limit(0, False, None, False, "a number of minutes above 0"))
    # Say who spoke (config.toml's speaker diarizer runs beside the model), and what to call them:
    # the n-th speaker heard takes the n-th name, the others "Speaker n".
    speakers: bool = False
    speaker_names: tuple[str, ...] = ()
    # The user's words (config.toml's [vocabulary], and a job's own): localstt/vocabulary.py.
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    # The spoken language (a code, e.g. "de"; "" lets the model hear it, or means its only one) and
    # the language to translate into ("" for none): localstt/languages.py. A transcript records both
    # in its own fields (`Transcript.language`, `translated_to`).
    language: str = ""
    translate_to: str = ""
    family_options: tuple[FamilyOptions, ...] = ()

    def __post_init__(self) -> None:
        given = {type(options): options for options in self.family_options}
        complete = tuple(
            given.pop(options_type) if options_type in given else options_type()
            for options_type in family_options_types()
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
        names = common_names()
        common = {name: fields.pop(name) for name in list(fields) if name in names}
        parts = []
        for options in self.family_options:
            mine = {name: fields.pop(name) for name in list(fields) if name in field_names(type(options))}
            parts.append(dataclasses.replace(options, **mine) if mine else options)
        if fields:
            raise TypeError(f"no transcription option named {', '.join(sorted(fields))}")
        return dataclasses.replace(self, **common, family_options=tuple(parts))

    @classmethod
    def build(cls, **fields: Any) -> TranscribeOptions:
        """The defaults with `fields` changed (see `replace`)."""
        return cls().replace(**fields)

    @classmethod
    def from_table(cls, table: dict[str, Any], config_path: str) -> TranscribeOptions:
        """The options that config.toml's [transcription] `table` sets, each checked against its
        Limit: ConfigError (naming `config_path`) for the first that is not within it."""
        values: dict[str, Any] = {}
        for options_type in (cls, *family_options_types()):
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

    def to_wire(self) -> dict[str, Any]:
        """Every option as JSON has it, for another process of the app (`from_wire`)."""
        fields = {name: getattr(self, name) for name in common_names() if name != "vocabulary"}
        for options in self.family_options:
            fields.update(dataclasses.asdict(options))
        fields["speaker_names"] = list(self.speaker_names)
        vocabulary = self.vocabulary
        fields["vocabulary"] = {
            "phrases": list(vocabulary.phrases),
            "strength": vocabulary.strength,
            "replacements": [list(rule) for rule in vocabulary.replacements],
        }
        return fields

    @classmethod
    def from_wire(cls, fields: dict[str, Any], where: str) -> TranscribeOptions:
        """`to_wire`'s options back, each setting checked against its Limit (ConfigError naming
        `where` for the first that is not within it); ValueError for anything else amiss."""
        fields = dict(fields)
        vocabulary = fields.pop("vocabulary", {})
        speakers = bool(fields.pop("speakers", False))
        names = tuple(str(name) for name in fields.pop("speaker_names", ()))
        language, translate_to = str(fields.pop("language", "")), str(fields.pop("translate_to", ""))
        options = cls.from_table(fields, where)
        unknown = set(fields) - set(options.to_wire())
        if unknown:
            raise ValueError(f"unknown options: {', '.join(sorted(unknown))}")
        return options.replace(
            speakers=speakers,
            speaker_names=names,
            language=language,
            translate_to=translate_to,
            vocabulary=Vocabulary(
                phrases=tuple(str(p) for p in vocabulary.get("phrases", ())),
                strength=float(vocabulary.get("strength", 1.0)),
                replacements=tuple((str(a), str(b)) for a, b in vocabulary.get("replacements", ())),
            ),
        )

    def used_by(self, options_type: type[FamilyOptions]) -> dict[str, Any]:
        """What a transcript records: the common options and those of the family that ran."""
        recorded_apart = {"vocabulary", "language", "translate_to"}
        common = {name: getattr(self, name) for name in common_names() if name not in recorded_apart}
        if self.vocabulary:  # recorded only when there is one, so transcripts without keep their keys
            common["vocabulary"] = self.vocabulary.as_record()
        used = {**common, **dataclasses.asdict(self.of(options_type))}
        # as JSON has them: tuples (speaker_names) as lists, so a transcript read back is equal
        return {name: list(value) if isinstance(value, tuple) else value for name, value in used.items()}


def common_names() -> set[str]:
    """The options every family shares (TranscribeOptions' own fields)."""
    return field_names(TranscribeOptions) - {"family_options"}


def family_options_types() -> tuple[type[FamilyOptions], ...]:
    """Each registered family's options type, in the registry's order. The registry keeps two
    families' names apart; here, where both are known, a family's names are kept apart from the
    common ones."""
    types = tuple(family.options_type for family in families())
    for options_type in types:
        if clash := field_names(options_type) & common_names():
            raise ValueError(
                f"{options_type.__name__}: option names already taken: {', '.join(sorted(clash))}"
            )
    return types
