"""What a job's language options mean for one model: checked against what its family declares
(`checked_languages`, before anything runs) and told to a model that must be told them (`told`, while
it runs). localstt/languages.py holds the data; the engine, the command line and the page call these."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from localstt.models import LoadedModel, SpokenLanguage, family_for
from localstt.options import TranscribeOptions
from localstt.spec import ModelSpec


def checked_languages(spec: ModelSpec, options: TranscribeOptions) -> tuple[str, str]:
    """(the language a transcript by `spec` with `options` records, the one it is translated into or
    ""); LanguageError (the whole run) when the model cannot do what `options` ask."""
    languages = family_for(spec.kind).languages(spec)
    source, target = languages.check(spec.key, options.language, options.translate_to)
    return languages.recorded(source), target


def told(loaded: LoadedModel, options: TranscribeOptions) -> AbstractContextManager[None]:
    """The model told the spoken language and the text's, where its family must be told them
    (checked before: `checked_languages`); for any other, nothing."""
    family = loaded.family
    if not isinstance(family, SpokenLanguage):
        return nullcontext()
    language, written = family.languages(loaded.spec).check(
        loaded.spec.key, options.language, options.translate_to
    )
    return family.spoken(loaded, language, written)
