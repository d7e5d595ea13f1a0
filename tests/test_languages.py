"""Languages as data the families declare (localstt/languages.py): what is accepted, what is said
when it is not, and what a transcript and a job line record."""

from __future__ import annotations

from pathlib import Path

import pytest

from localstt.errors import LanguageError
from localstt.languages import DETECT, EUROPEAN_25, Languages, normalise
from localstt.models import family_for
from localstt.options import TranscribeOptions
from localstt.runs.resume import JobEntry, JobLog
from localstt.spec import ModelSpec
from localstt.transcript import Transcript

V2 = ModelSpec("parakeet", "nvidia/parakeet-tdt-0.6b-v2", "", "nemo-asr")
V3 = ModelSpec("parakeet-v3", "nvidia/parakeet-tdt-0.6b-v3", "", "nemo-asr")
CANARY_QWEN = ModelSpec("canary-qwen", "nvidia/canary-qwen-2.5b", "", "salm")
# A model that needs its language and translates (the shape of NVIDIA's Canary-1B-v2).
TRANSLATOR = Languages(
    transcribes=("en", "de", "fr"),
    detects=False,
    translations=(("de", "en"), ("fr", "en"), ("en", "de"), ("en", "fr")),
)


@pytest.mark.parametrize(
    ("written", "code"),
    [("de", "de"), ("de-DE", "de"), ("DE_at", "de"), ("deu", "de"), ("German", "de"), ("", "")],
)
def test_what_people_and_clients_write_is_read_as_a_code(written: str, code: str) -> None:
    assert normalise(written) == code


def test_an_unknown_language_is_one_sentence() -> None:
    with pytest.raises(LanguageError) as error:
        normalise("klingon")
    assert str(error.value) == "'klingon' is not a language code these models know; use e.g. en, de or fr."


def test_each_family_declares_its_models_languages() -> None:
    v2 = family_for(V2.kind).languages(V2)
    v3 = family_for(V3.kind).languages(V3)
    assert (v2.transcribes, v2.detects, v2.translates) == (("en",), False, False)
    assert (v3.transcribes, v3.detects, v3.translates) == (EUROPEAN_25, True, False)
    assert len(v3.transcribes) == 25 and "de" in v3.transcribes and "uk" in v3.transcribes
    assert family_for(CANARY_QWEN.kind).languages(CANARY_QWEN).transcribes == ("en",)
    # An unknown repo of the family is taken as English only, never as more than it says.
    other = ModelSpec("mine", "someone/my-parakeet", "", "nemo-asr")
    assert family_for(other.kind).languages(other).transcribes == ("en",)


def test_an_english_only_model_refuses_another_language() -> None:
    v2 = family_for(V2.kind).languages(V2)
    assert v2.check("parakeet", "en-US") == ("en", "")
    with pytest.raises(LanguageError) as error:
        v2.check("parakeet", "de")
    assert str(error.value) == "parakeet transcribes English, not German; send en or leave the language out."
    assert error.value.about == "language"


def test_a_model_that_does_not_translate_says_so() -> None:
    v3 = family_for(V3.kind).languages(V3)
    assert v3.check("parakeet-v3", "de", "de") == ("de", "")  # into its own language: no translation
    with pytest.raises(LanguageError) as error:
        v3.check("parakeet-v3", "de", "en")
    assert str(error.value) == "parakeet-v3 does not translate; leave the translation out."
    assert error.value.about == "translate_to"


def test_a_translator_checks_its_pairs_and_needs_the_spoken_language() -> None:
    assert TRANSLATOR.check("canary", "de", "en") == ("de", "en")
    assert TRANSLATOR.targets == ("en", "de", "fr")
    with pytest.raises(LanguageError) as error:
        TRANSLATOR.check("canary", "de", "fr")
    assert str(error.value) == (
        "canary does not translate German into French; from German it translates into English."
    )
    with pytest.raises(LanguageError) as missing:
        TRANSLATOR.check("canary", "", "en")
    assert "give the spoken language too" in str(missing.value)
    with pytest.raises(LanguageError) as needed:
        TRANSLATOR.check("canary", "")
    assert str(needed.value) == "canary must be told the spoken language: give one of en, de, fr."


def test_what_a_transcript_records_never_invents_a_language() -> None:
    v2 = family_for(V2.kind).languages(V2)
    v3 = family_for(V3.kind).languages(V3)
    assert v2.recorded("") == "en"  # its only language
    assert v3.recorded("") == DETECT == "auto"  # heard by the model, which says not which
    assert v3.recorded("de") == "de"


def test_a_transcript_keeps_its_language_through_json() -> None:
    transcript = Transcript("Hallo.", [], 1.0, "parakeet-v3", "a" * 40, language="de")
    data = transcript.to_dict()
    assert data["language"] == "de" and "translated_to" not in data
    assert Transcript.from_dict(data) == transcript
    translated = Transcript("Hello.", [], 1.0, "canary", "a" * 40, language="de", translated_to="en")
    assert Transcript.from_dict(translated.to_dict()).translated_to == "en"


def test_options_carry_the_language_over_the_wire() -> None:
    options = TranscribeOptions.build(language="de", translate_to="en")
    back = TranscribeOptions.from_wire(options.to_wire(), "the job")
    assert (back.language, back.translate_to) == ("de", "en")
    # A transcript records them in its own fields, not among its options.
    assert "language" not in options.used_by(type(options.family_options[0]))


def test_a_job_line_records_the_language_and_a_rerun_in_another_redoes_it(tmp_path: Path) -> None:
    log = JobLog(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    log.append(JobEntry("a.wav", "h", "parakeet-v3", "r" * 40, "done", outputs=("a.txt",), language="auto"))
    line = (tmp_path / "job.jsonl").read_text()
    assert '"language": "auto"' in line and "translated_to" not in line
    reread = JobLog(tmp_path)
    assert reread.done("h", "parakeet-v3", "r" * 40, spoken=("auto", "")) is not None
    assert reread.done("h", "parakeet-v3", "r" * 40, spoken=("de", ""), language_chosen=True) is None


def test_a_line_from_before_languages_stands_for_the_models_own(tmp_path: Path) -> None:
    log = JobLog(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    log.append(JobEntry("a.wav", "h", "parakeet", "r" * 40, "done", outputs=("a.txt",)))
    assert log.done("h", "parakeet", "r" * 40, spoken=("en", "")) is not None
    assert log.done("h", "parakeet", "r" * 40, spoken=("en", ""), language_chosen=True) is None
