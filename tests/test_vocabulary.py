"""Your words: phrases boosted in the tiny Parakeet's decoding (NeMo's GPU phrase boosting, on the CPU),
one boosted decoding per phrase list, each bad phrase one sentence, a note where a family cannot
boost, replacement rules in every file, live sessions boosting their own stream, and a rerun with
other words redoing the files.

The case: espeak-ng says "The dog jumps over the fox." (the tiny model knows those words, never in
that order), and the tiny model hears "The dog jumps over fox."; boosted at the default strength
(1.0), that sentence comes out whole, while the phrase it was trained on stays as it was."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from localstt import engine
from localstt.config import ConfigError, load_config
from localstt.errors import VocabularyError
from localstt.formats import write_outputs
from localstt.live.service import LiveService
from localstt.models.parakeet_boost import _build
from localstt.spec import Vocabulary
from localstt.store import ModelStore
from localstt.transcript import Segment, Transcript, Word
from localstt.vocabulary import apply_rules, check_phrases, parse_phrases, parse_rules
from testkit.store_env import Project
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
SENTENCE = "The dog jumps over the fox."


@pytest.fixture(scope="module")
def dog_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """espeak-ng's "The dog jumps over the fox." (en-us, 150 wpm), 16 kHz mono 16-bit, as the tiny
    model's training audio was made (scripts/make_tiny_parakeet.py)."""
    folder = tmp_path_factory.mktemp("dog")
    raw, wav = folder / "raw.wav", folder / "dog.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), SENTENCE], check=True)
    subprocess.run(["sox", "-D", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav)], check=True)
    return wav


@pytest.fixture(scope="module")
def store(exported_project: Project) -> ModelStore:
    """A store of its own: boosting swaps the model's decoding (and puts it back)."""
    return ModelStore(load_config(exported_project.config))


NONE = Vocabulary()


def text(path: Path, store: ModelStore, vocabulary: Vocabulary = NONE, model: str = "parakeet") -> str:
    options = store.config.transcription.replace(vocabulary=vocabulary)
    return engine.transcribe(path, model, options, store).text


def test_boosting_turns_the_near_miss_into_the_phrase_and_leaves_the_rest(store: ModelStore, dog_wav: Path):
    unboosted = text(dog_wav, store)
    assert unboosted != SENTENCE and unboosted.split()[:4] == SENTENCE.split()[:4]  # a near miss
    boosted = Vocabulary((SENTENCE,))
    assert text(dog_wav, store, boosted) == SENTENCE
    assert text(dog_wav, store) == unboosted  # the model's own decoding is back after a boosted job
    assert text(PHRASE_WAV, store, boosted) == PHRASE  # what was said, and is no phrase, stays
    assert text(dog_wav, store, Vocabulary(("Hello world.",))) == unboosted  # a phrase never said


def test_one_boosted_decoding_per_phrase_list(
    store: ModelStore, dog_wav: Path, monkeypatch: pytest.MonkeyPatch
):
    builds: list[tuple[str, ...]] = []

    def counted(model: object, vocabulary: Vocabulary, use_triton: bool) -> tuple[object, ...]:
        builds.append(vocabulary.phrases)
        return _build(model, vocabulary, use_triton)

    monkeypatch.setattr("localstt.models.parakeet_boost._build", counted)
    lists = [Vocabulary((SENTENCE, "The brown fox.")), Vocabulary(("The lazy dog.",))]
    for number in range(5):  # five files, the two lists taking turns
        text(dog_wav if number % 2 else PHRASE_WAV, store, lists[number % 2])
    assert builds == [lists[0].phrases, lists[1].phrases]  # each built once, then kept


@pytest.mark.parametrize(
    ("phrases", "sentence"),
    [
        (["Fox.", "   "], "Phrase 2 of the vocabulary is empty; remove the empty line."),
        (
            ["Lazy dog.", "lazy  DOG."],
            "The phrase 'lazy DOG.' is in the vocabulary twice (also as 'Lazy dog.'); keep one.",
        ),
        (
            ["x" * 101],
            f"The phrase {'x' * 40!r}... is 101 characters long, over 100; boost the words that "
            "matter, a few at a time.",
        ),
    ],
    ids=["empty", "twice", "too-long"],
)
def test_each_bad_phrase_is_one_sentence(phrases: list[str], sentence: str):
    with pytest.raises(VocabularyError) as caught:
        check_phrases(phrases)
    assert str(caught.value) == sentence


def test_a_phrase_the_model_cannot_spell_is_one_sentence(store: ModelStore):
    with pytest.raises(VocabularyError) as caught:
        text(PHRASE_WAV, store, Vocabulary(("Zoë Ångström",)))
    assert str(caught.value) == (
        "The model cannot spell the phrase 'Zoë Ångström' (its tokenizer has no pieces for some of its "
        "characters); write it as the model writes words, or leave it out."
    )


def test_a_family_that_cannot_boost_says_so_and_still_applies_the_rules(store: ModelStore):
    vocabulary = Vocabulary(("Lazy dog.",), replacements=(("fox", "cat"),))
    options = store.config.transcription.replace(vocabulary=vocabulary, canary_max_new_tokens=20)
    transcript = engine.transcribe(PHRASE_WAV, "canary-qwen", options, store)
    assert transcript.notes[-1] == (
        "the vocabulary's phrases were not applied: Canary-Qwen models cannot be boosted (NeMo's phrase "
        "boosting does not reach their decoding); its replacement rules were"
    )
    assert transcript.options["vocabulary"] == vocabulary.as_record()


def timed(*words: tuple[str, float, float]) -> Transcript:
    parts = tuple(Word(w, s, e) for w, s, e in words)
    segment = Segment(parts[0].start, parts[-1].end, " ".join(w.text for w in parts), parts)
    return Transcript(segment.text, [segment], parts[-1].end, "m", "r")


def test_rules_run_in_order_on_whole_words_and_keep_the_times():
    transcript = timed(
        ("We", 0.0, 0.2),
        ("use", 0.2, 0.4),
        ("open", 0.5, 0.8),
        ("AI,", 0.8, 1.1),
        ("gonna", 1.2, 1.6),
        ("foxes", 1.7, 2.0),
        ("fox.", 2.1, 2.4),
    )
    rules = (("open ai", "OpenAI"), ("gonna", "going to"), ("openai", "OpenAI Inc"), ("fox", "cat"))
    replaced, fired = apply_rules(transcript, rules)
    assert replaced.text == "We use OpenAI Inc, going to foxes cat."  # in order; never inside a word
    words = {w.text: (w.start, w.end) for w in replaced.words}
    assert words["OpenAI"][0] == 0.5 and words["Inc,"][1] == 1.1  # the span of "open AI,"
    assert words["going"][0] == 1.2 and words["to"][1] == 1.6 and words["going"][1] == words["to"][0]
    assert words["cat."] == (2.1, 2.4)
    assert [(f["find"], f["count"]) for f in fired] == [
        ("open ai", 1),
        ("gonna", 1),
        ("openai", 1),
        ("fox", 1),
    ]


def test_rules_show_in_every_file(store: ModelStore, tmp_path: Path):
    vocabulary = Vocabulary(replacements=(("quick brown fox", "Quick-Brown Fox"), ("lazy", "sleepy")))
    transcript = engine.transcribe(
        PHRASE_WAV, "parakeet", store.config.transcription.replace(vocabulary=vocabulary), store
    )
    want = "The Quick-Brown Fox jumps over the sleepy dog."
    assert transcript.text == want
    paths = write_outputs(transcript, ["txt", "srt", "vtt", "json"], tmp_path, "phrase")
    contents = {p.suffix: p.read_text(encoding="utf-8") for p in paths}
    assert contents[".txt"] == want + "\n"
    for suffix in (".srt", ".vtt"):
        assert (
            " ".join(
                " ".join(
                    line
                    for line in contents[suffix].splitlines()
                    if line and "-->" not in line and not line.isdigit() and line != "WEBVTT"
                ).split()
            )
            == want
        )
    record = json.loads(contents[".json"])
    assert record["options"]["replacements_fired"] == [
        {"find": "quick brown fox", "replace": "Quick-Brown Fox", "count": 1},
        {"find": "lazy", "replace": "sleepy", "count": 1},
    ]
    words = [w for s in record["segments"] for w in s["words"]]
    assert [w["text"] for w in words] == want.split()
    assert all(w["start"] < w["end"] for w in words) and words == sorted(words, key=lambda w: w["start"])


def test_a_live_session_boosts_its_own_stream_only(store: ModelStore):
    """Per-stream boosting: a session with an overwhelming boost (strength 5) hears its phrase in the
    phrase it was not, while a session beside it, without one, hears what was said."""
    audio = np.asarray(sf.read(str(PHRASE_WAV), dtype="float32")[0])
    live = LiveService(
        store, dataclasses.replace(store.config.live, chunk_seconds=2.0, left_seconds=10.0, right_seconds=2.0)
    )
    try:
        boosted = live.open("parakeet", lambda e: None, Vocabulary((SENTENCE,), strength=5.0))
        plain = live.open("parakeet", lambda e: None)
        for start in range(0, len(audio), 1600):
            live.feed(boosted, audio[start : start + 1600])
            live.feed(plain, audio[start : start + 1600])
        assert live.close(boosted).text == SENTENCE
        assert live.close(plain).text == PHRASE
        # a boosted session whose client goes away mid-stream takes its phrases with it
        gone = live.open("parakeet", lambda e: None, Vocabulary((SENTENCE,), strength=5.0))
        steps = live.steps
        live.feed(gone, audio)
        deadline = time.monotonic() + 120
        while live.steps == steps and time.monotonic() < deadline:
            time.sleep(0.01)
        assert live.steps > steps, "no live step within 120 s"
        (decoder,) = [
            value
            for key, value in store.load("parakeet").cache.items()
            if key.startswith("live decoder") and value.chunk_samples == 32000
        ]
        boosting = decoder.pipeline.decoding_computer.biasing_multi_model
        assert int(boosting.model2active.sum()) == 1
        live.abort(gone)
        assert int(boosting.model2active.sum()) == 0
        after = live.open("parakeet", lambda e: None)
        live.feed(after, audio)
        assert live.close(after).text == PHRASE
    finally:
        live.stop()


def test_vocabulary_in_config_toml(tmp_path: Path):
    (tmp_path / "more.txt").write_text("Brown fox.\n# a comment\n\nLazy dog.\n", encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        '[vocabulary]\nphrases = ["Quick fox."]\nphrases_file = "more.txt"\nstrength = 0.5\n'
        '[vocabulary.replacements]\n"b" = "c"\n"a" = "b"\n',
        encoding="utf-8",
    )
    vocabulary = load_config(config).transcription.vocabulary
    assert vocabulary == Vocabulary(("Quick fox.", "Brown fox.", "Lazy dog."), 0.5, (("b", "c"), ("a", "b")))
    config.write_text("[vocabulary]\nstrength = 0\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"strength = 0; use a number above 0 and at most 10 \(1.0 to start\)\."
    ):
        load_config(config)
    assert parse_phrases("A, B ,C") == ["A", "B", "C"]
    assert parse_rules("open ai => OpenAI\n# c\n") == (("open ai", "OpenAI"),)
    with pytest.raises(VocabularyError) as caught:
        parse_rules("open ai \n")
    assert (
        str(caught.value)
        == "Rule line 1 ('open ai') is not `find => replace`; write e.g. `open ai => OpenAI`."
    )


def run_cli(project: Project, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "localstt.cli", "--config", str(project.config), "--out", str(out)]
    return subprocess.run(
        [*command, "--format", "txt", *args], capture_output=True, text=True, timeout=600, env=project.env()
    )


@pytest.mark.slow
def test_a_rerun_with_other_words_redoes_the_files_and_with_the_same_skips(
    exported_project: Project, dog_wav: Path, tmp_path: Path
):
    out = tmp_path / "out"
    first = run_cli(exported_project, out, str(dog_wav))
    assert first.returncode == 0, first.stderr
    assert (out / "dog.txt").read_text(encoding="utf-8").strip() != SENTENCE
    rules = tmp_path / "rules.txt"
    rules.write_text("jumps => leaps\n", encoding="utf-8")
    second = run_cli(exported_project, out, str(dog_wav), "--hotwords", SENTENCE, "--replace", str(rules))
    assert second.returncode == 0, second.stderr
    assert (out / "dog-1.txt").read_text(encoding="utf-8").strip() == "The dog leaps over the fox."
    again = run_cli(exported_project, out, str(dog_wav), "--hotwords", SENTENCE, "--replace", str(rules))
    assert again.returncode == 0 and "1 of 1 already done" in again.stdout
    lines = [json.loads(line) for line in (out / "job.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 2 and "vocabulary" not in lines[0]
    assert lines[1]["vocabulary"] == Vocabulary((SENTENCE,), replacements=(("jumps", "leaps"),)).fingerprint
    bad = run_cli(exported_project, out, str(dog_wav), "--hotwords", "Zoë Ångström")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == (
        "error: The model cannot spell the phrase 'Zoë Ångström' (its tokenizer has no pieces for some of "
        "its characters); write it as the model writes words, or leave it out."
    )


@pytest.mark.slow
def test_the_page_and_the_api_pass_their_words_through(
    exported_project: Project, dog_wav: Path, tmp_path: Path
):
    from gradio_client import Client, handle_file
    from openai import OpenAI

    from testkit.app import launch_app

    with launch_app(exported_project, tmp_path / "app") as app:
        client = OpenAI(base_url=f"{app.url}v1", api_key="unused-on-loopback", max_retries=0)
        with dog_wav.open("rb") as audio:
            plain = client.audio.transcriptions.create(file=audio, model="parakeet").text
        with dog_wav.open("rb") as audio:
            boosted = client.audio.transcriptions.create(
                file=audio, model="parakeet", keywords=[SENTENCE]
            ).text
        assert plain != SENTENCE and boosted == SENTENCE
        page = Client(app.url, verbose=False, analytics_enabled=False)
        text_, _, downloads, _ = page.predict(
            [handle_file(str(dog_wav))],
            None,
            "parakeet",
            ["json"],
            False,
            "",
            SENTENCE,
            "jumps => leaps",
            api_name="/transcribe",
        )
    assert text_ == "The dog leaps over the fox."
    record = json.loads(
        Path(next(d for d in downloads if str(d).endswith(".json"))).read_text(encoding="utf-8")
    )
    assert record["options"]["vocabulary"] == {
        "phrases": [SENTENCE],
        "strength": 1.0,
        "replacements": [["jumps", "leaps"]],
    }
    assert record["text"] == text_
