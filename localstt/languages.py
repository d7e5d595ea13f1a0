"""Which languages a model transcribes, whether it picks the language itself, and which translations it
makes: `Languages`, the data each model family declares for each of its models
(`ModelFamily.languages`). Every list the user sees is derived from it: the page's choices, the
command line's --help, the API's checks and its model cards.

A language is its ISO 639-1 code ("de"); `normalise` also takes what people and clients send:
"de-DE", "de_DE", "deu", "German", any case.

A leaf: it imports nothing of the package but the errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from localstt.errors import LanguageError

# Code -> English name, for every language a model of the app may declare.
NAMES: dict[str, str] = {
    "bg": "Bulgarian",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "et": "Estonian",
    "fi": "Finnish",
    "fr": "French",
    "hr": "Croatian",
    "hu": "Hungarian",
    "it": "Italian",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "mt": "Maltese",
    "nl": "Dutch",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sv": "Swedish",
    "uk": "Ukrainian",
}
# ISO 639-2 codes clients send for them (OpenAI's own clients send 639-1).
_THREE_LETTER: dict[str, str] = {
    "bul": "bg", "ces": "cs", "cze": "cs", "dan": "da", "deu": "de", "ger": "de", "ell": "el",
    "gre": "el", "eng": "en", "spa": "es", "est": "et", "fin": "fi", "fra": "fr", "fre": "fr",
    "hrv": "hr", "hun": "hu", "ita": "it", "lit": "lt", "lav": "lv", "mlt": "mt", "nld": "nl",
    "dut": "nl", "pol": "pl", "por": "pt", "ron": "ro", "rum": "ro", "rus": "ru", "slk": "sk",
    "slo": "sk", "slv": "sl", "swe": "sv", "ukr": "uk",
}  # fmt: skip
# The 25 European languages of NVIDIA's multilingual speech models.
EUROPEAN_25: tuple[str, ...] = tuple(NAMES)

DETECT = "auto"  # what a transcript records when the model picked the language itself without saying


def normalise(language: str, about: str = "language") -> str:
    """The ISO 639-1 code of `language` as people and clients write it, or "" when it is empty;
    LanguageError for one this app does not know."""
    text = language.strip().lower().replace("_", "-")
    if not text:
        return ""
    base = text.split("-")[0]
    if base in NAMES:
        return base
    if base in _THREE_LETTER:
        return _THREE_LETTER[base]
    for code, name in NAMES.items():
        if text == name.lower():
            return code
    raise LanguageError(
        f"{language!r} is not a language code these models know; use e.g. en, de or fr.", about
    )


def name_of(code: str) -> str:
    return NAMES.get(code, code)


@dataclass(frozen=True)
class Languages:
    """What one model does with languages."""

    transcribes: tuple[str, ...] = ("en",)
    # It hears which of them is spoken by itself (no language need be given); False: it needs one
    # given, or it transcribes its only language.
    detects: bool = False
    # (source, target) pairs it translates.
    translations: tuple[tuple[str, str], ...] = ()

    @property
    def translates(self) -> bool:
        return bool(self.translations)

    @property
    def targets(self) -> tuple[str, ...]:
        """The languages it translates into, in order of first mention."""
        return tuple(dict.fromkeys(target for _, target in self.translations))

    @property
    def needs_language(self) -> bool:
        """Whether a transcription must be told the language (it transcribes many and detects none)."""
        return len(self.transcribes) > 1 and not self.detects

    def describe(self) -> str:
        """One line for --help and the docs, e.g. "English" or "25 languages, detected"."""
        if len(self.transcribes) == 1:
            spoken = name_of(self.transcribes[0])
        else:
            spoken = f"{len(self.transcribes)} languages" + (", detected" if self.detects else "")
        return spoken + (f"; translates {len(self.translations)} pairs" if self.translations else "")

    def check(self, model: str, language: str, translate_to: str = "") -> tuple[str, str]:
        """(the language, the target) as codes ("" where not given), once `model` can do it;
        LanguageError with one sentence that says what it can do instead."""
        source, target = normalise(language), normalise(translate_to, "translate_to")
        if source and source not in self.transcribes:
            raise LanguageError(
                f"{model} transcribes {self._list(self.transcribes)}, not {name_of(source)}; "
                f"{self._instead()}"
            )
        if target and target != source:
            if not self.translations:
                raise LanguageError(f"{model} does not translate; leave the translation out.", "translate_to")
            if not source:
                raise LanguageError(
                    f"{model} translates only from a language it is told: give the spoken language too."
                )
            if (source, target) not in self.translations:
                into = [t for s, t in self.translations if s == source]
                offer = f"into {self._list(into)}" if into else "nothing"
                raise LanguageError(
                    f"{model} does not translate {name_of(source)} into {name_of(target)}; from "
                    f"{name_of(source)} it translates {offer}.",
                    "translate_to",
                )
        elif not source and self.needs_language:
            raise LanguageError(
                f"{model} must be told the spoken language: give one of {', '.join(self.transcribes)}."
            )
        return source, "" if target == source else target

    def recorded(self, language: str) -> str:
        """What a transcript records as its language: the one given, the model's only one, or
        DETECT where the model heard it without saying which (never a guess)."""
        if language:
            return language
        if len(self.transcribes) == 1:
            return self.transcribes[0]
        return DETECT

    def _instead(self) -> str:
        if len(self.transcribes) == 1:
            return f"send {self.transcribes[0]} or leave the language out."
        return "choose another model or language."

    @staticmethod
    def _list(codes: tuple[str, ...] | list[str]) -> str:
        if len(codes) > 4:
            return f"{len(codes)} languages ({', '.join(codes)})"
        return " and ".join(", ".join(name_of(c) for c in codes).rsplit(", ", 1))


ENGLISH_ONLY = Languages()
