"""The subtitle line controls (localstt/subtitles.py): the defaults give today's files byte for byte,
any other setting re-cuts at word boundaries within every limit, preferring punctuation and pauses;
windows without words are cut at sentence ends, timed by characters, with a note; config.toml's
[subtitles] is checked."""

from __future__ import annotations

import itertools
import json
import random
import re
from datetime import timedelta
from pathlib import Path

import pytest
import srt
import webvtt

from localstt import cli
from localstt.errors import ConfigError
from localstt.formats import WRITERS, layout_cues, transcript_from_json, write_outputs, writer_for
from localstt.subtitles import DEFAULT_LAYOUT, INTERPOLATED_NOTE, MIN_CUE_SECONDS, SubtitleLayout, recut_cues
from localstt.transcript import Segment, Transcript, Word
from testkit.store_env import Project
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

TODAY = Path(__file__).parent / "fixtures" / "subtitles" / "today.json"
LAYOUTS = [
    SubtitleLayout(20, 1, 2.0, 0.1),
    SubtitleLayout(32, 2, 4.0, 0.0),
    SubtitleLayout(42, 2, 7.0, 0.08),
    SubtitleLayout(10, 3, 1.0, 0.5),
    SubtitleLayout(80, 1, 10.0, 0.0),
]
WORDS = [
    "the",
    "a",
    "and",
    "to",
    "of",
    "we",
    "it",
    "is",
    "local",
    "speech",
    "model",
    "laptop",
    "recognition,",
    "works.",
    "why?",
    "yes!",
    "so,",
    "right.",
]


def today_cases() -> list[dict]:
    """SRT and WebVTT files written by the writers before the line controls existed (the cue builder
    of formats.py at the commit that added this fixture), with the transcripts they were made from:
    40 transcripts of random words, pauses, windows without words, speakers and over-long words."""
    return json.loads(TODAY.read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", today_cases(), ids=lambda case: case["transcript"]["source_name"])
def test_the_defaults_give_todays_files_byte_for_byte(case: dict, tmp_path: Path):
    transcript = transcript_from_json(json.dumps(case["transcript"]))
    assert WRITERS["srt"].render(transcript) == case["srt"]
    assert WRITERS["vtt"].render(transcript) == case["vtt"]
    assert writer_for("srt", SubtitleLayout()).render(transcript) == case["srt"]
    srt_path, vtt_path = write_outputs(transcript, ["srt", "vtt"], tmp_path, "case", DEFAULT_LAYOUT)
    assert srt_path.read_bytes() == case["srt"].encode("utf-8")
    assert vtt_path.read_bytes() == case["vtt"].encode("utf-8")


def random_transcript(rng: random.Random) -> Transcript:
    """Segments of timed words (some longer than a narrow line), pauses of every length, sometimes
    speakers."""
    segments, cursor = [], rng.uniform(0, 1)
    speakers = rng.random() < 0.5
    for _ in range(rng.randint(1, 6)):
        words, t = [], cursor
        speaker = rng.randint(0, 1) if speakers else None
        for _ in range(rng.choice([1, 3, 8, 20, 45])):
            length = rng.choice([0.1, 0.25, 0.4, 0.9])
            words.append(Word(rng.choice(WORDS), round(t, 3), round(t + length, 3), speaker))
            t += length + rng.choice([0.0, 0.03, 0.3, 0.6, 1.7])
        segments.append(
            Segment(words[0].start, words[-1].end, " ".join(w.text for w in words), tuple(words), speaker)
        )
        cursor = words[-1].end + rng.choice([0.0, 0.2, 2.0])
    names = ["Ana", "Dr. Bartholomew"] if speakers else []
    return Transcript(" ".join(s.text for s in segments), segments, cursor + 1, "m", "r", speaker_names=names)


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
@pytest.mark.parametrize("lead", [False, True], ids=["vtt", "srt"])
def test_recut_cues_keep_every_limit_every_word_once_and_their_words_times(
    layout: SubtitleLayout, lead: bool
):
    rng = random.Random(f"{layout}{lead}")
    for _ in range(30):
        transcript = random_transcript(rng)
        cut = recut_cues(transcript, layout, lead)
        assert cut.note == ""  # every segment has its words
        cues = [cue for cue, _ in cut.cues]
        words = iter(transcript.words)
        word, rest = None, ""  # the word being shown, and what of it a cue has not shown yet
        for index, (cue, name) in enumerate(cut.cues):
            assert 1 <= len(cue.lines) <= layout.max_lines, cue
            assert all(0 < len(line) <= layout.max_chars for line in cue.lines), cue
            assert 0 < cue.end_ms - cue.start_ms <= round(layout.max_duration * 1000), cue
            if index + 1 < len(cues):
                assert cues[index + 1].start_ms - cue.end_ms >= round(layout.min_gap * 1000), cues[
                    index : index + 2
                ]
            shown = cue.text.split()
            if lead and name:  # "Name:" leads, shortened with "…" where it would fill the line
                lead_words = next(i for i, word in enumerate(shown) if word.endswith(":")) + 1
                assert re.fullmatch(
                    rf"{re.escape(name)}:|{re.escape(name[:3])}.*…:", " ".join(shown[:lead_words])
                )
                shown = shown[lead_words:]
            mine = []  # the words this cue shows, in order; a word longer than a line in parts
            for token in shown:
                if not rest:
                    word = next(words)
                    rest = word.text
                assert rest.startswith(token), (cue, word)
                rest = rest[len(token) :]
                if word not in mine:
                    mine.append(word)
            # within its words: from its first word's start; to its last word's end, or, for a short
            # cue, stretched towards 0.7 s only into the time before the next cue
            assert cue.start_ms >= round(mine[0].start * 1000), (cue, mine)
            stretched = cue.start_ms + round(MIN_CUE_SECONDS * 1000)
            assert cue.end_ms <= max(round(mine[-1].end * 1000), stretched), (cue, mine)
        assert next(words, None) is None and not rest  # no word, and no part of one, left out


def test_cuts_prefer_a_sentence_end_then_a_pause_over_filling_the_lines():
    words, t = [], 0.0
    for text in [
        "We",
        "met",
        "at",
        "noon.",
        "Then",
        "we",
        "walked",
        "to",
        "the",
        "old",
        "harbour",
        "and",
        "back",
    ]:
        words.append(Word(text, t, t + 0.3))
        t += 0.35
    segment = Segment(0.0, t, " ".join(w.text for w in words), tuple(words))
    transcript = Transcript(segment.text, [segment], t, "m", "r")
    layout = SubtitleLayout(max_chars=30, max_lines=1, max_duration=7.0)
    cues = [cue.text for cue, _ in recut_cues(transcript, layout, lead=False).cues]
    # filling the line would take "Then we walked" into the first cue (30 characters); the
    # sentence's end is the better cut
    assert cues[0] == "We met at noon."
    assert all(len(text) <= 30 for text in cues)

    # no punctuation, and a 0.9 s pause before "to" (filling the line would cut after "old")
    words, t = [], 0.0
    spoken = "we met at noon then we walked to the old harbour and back home"
    for number, text in enumerate(spoken.split(" ")):
        t += 0.9 if number == 7 else 0.0
        words.append(Word(text, t, t + 0.3))
        t += 0.35
    text = " ".join(w.text for w in words)
    transcript = Transcript(text, [Segment(0.0, words[-1].end, text, tuple(words))], 9, "m", "r")
    layout = SubtitleLayout(max_chars=40, max_lines=1, max_duration=10.0)
    cues = [cue.text for cue, _ in recut_cues(transcript, layout, lead=False).cues]
    assert cues == ["we met at noon then we walked", "to the old harbour and back home"]


def test_a_window_without_words_is_cut_at_sentence_ends_timed_by_characters_with_a_note(tmp_path: Path):
    text = (
        "First sentence is here. A second one follows it now. And a third, which is the longest of them all."
    )
    window = Segment(10.0, 40.0, text)  # 30 s, no word times (a model that reads in windows)
    transcript = Transcript(text, [window], 40.0, "m", "r")
    layout = SubtitleLayout(max_chars=42, max_lines=2, max_duration=15.0)
    cut = recut_cues(transcript, layout, lead=False)
    assert cut.note == INTERPOLATED_NOTE
    texts = [" ".join(cue.lines) for cue, _ in cut.cues]
    assert texts == [
        "First sentence is here.",
        "A second one follows it now.",
        "And a third, which is the longest of them all.",
    ]
    total = len(text) + 1  # the time is shared out by characters (plus a space each)
    done = 0
    for cue, _ in cut.cues:
        assert cue.start_ms == round((10.0 + 30.0 * done / total) * 1000), cue
        done += len(" ".join(cue.lines)) + 1
        assert cue.end_ms == round((10.0 + 30.0 * done / total) * 1000), cue
    vtt = writer_for("vtt", layout).render(transcript)
    assert vtt.startswith(f"WEBVTT\n\nNOTE {INTERPOLATED_NOTE}\n\n")
    assert [c.text.replace("\n", " ") for c in webvtt.from_string(vtt)] == texts  # a note is no cue
    parsed = list(srt.parse(writer_for("srt", layout).render(transcript)))
    assert [p.content.replace("\n", " ") for p in parsed] == texts
    assert layout_cues(transcript, DEFAULT_LAYOUT, lead=False).note == ""  # today's files have no note

    # A sentence too long for one cue is cut at its comma rather than where the lines fill up.
    text = (
        "It began. This long sentence goes on and on, and it keeps going with many more words until the end."
    )
    transcript = Transcript(text, [Segment(0.0, 30.0, text)], 30.0, "m", "r")
    cut = recut_cues(transcript, SubtitleLayout(max_chars=42, max_lines=2, max_duration=30.0), lead=False)
    assert [" ".join(cue.lines) for cue, _ in cut.cues] == [
        "It began.",
        "This long sentence goes on and on,",
        "and it keeps going with many more words until the end.",
    ]


def test_an_edited_segment_whose_words_no_longer_spell_it_is_timed_by_characters():
    words = (Word("hello", 0.0, 0.5), Word("there", 0.6, 1.0))
    stale = Segment(0.0, 1.0, "hello over there", words)
    cut = recut_cues(Transcript(stale.text, [stale], 1.0, "m", "r"), SubtitleLayout(max_chars=20), lead=False)
    assert [cue.text for cue, _ in cut.cues] == ["hello over there"] and cut.note == INTERPOLATED_NOTE


def test_subtitles_in_config_toml_are_checked_in_one_sentence(tmp_path: Path):
    assert SubtitleLayout.from_table({}, "c.toml") == DEFAULT_LAYOUT
    chosen = SubtitleLayout.from_table(
        {"max_chars_per_line": 32, "max_lines_per_cue": 1, "max_cue_seconds": 4, "min_gap_seconds": 0.1},
        "c.toml",
    )
    assert chosen == SubtitleLayout(32, 1, 4.0, 0.1) and not chosen.is_default
    for table, says in [
        ({"max_chars_per_line": 5}, "max_chars_per_line is 5; use a whole number from 10 to 200."),
        ({"max_lines_per_cue": 1.5}, "max_lines_per_cue is 1.5; use a whole number from 1 to 6."),
        ({"max_cue_seconds": "long"}, "max_cue_seconds is 'long'; use a number of seconds from 1 to 60."),
        ({"min_gap_seconds": True}, "min_gap_seconds is True; use a number of seconds from 0 to 2."),
        ({"max_chars": 30}, "has no setting 'max_chars'; use max_chars_per_line, max_lines_per_cue"),
    ]:
        with pytest.raises(ConfigError) as caught:
            SubtitleLayout.from_table(table, "c.toml")
        assert says in str(caught.value) and "c.toml" in str(caught.value)
        assert "\n" not in str(caught.value)


def test_the_command_lines_flags_cut_the_subtitles_and_a_bad_one_is_one_sentence(
    exported_project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "out"
    flags = ["--max-chars-per-line", "20", "--max-lines-per-cue", "1", "--min-gap-seconds", "0.2"]
    status = cli.main(
        [
            "--config",
            str(exported_project.config),
            str(PHRASE_WAV),
            "--format",
            "srt",
            "--out",
            str(out),
            *flags,
        ]
    )
    assert status == 0, capsys.readouterr().err
    cues = list(srt.parse((out / "phrase.srt").read_text(encoding="utf-8")))
    assert len(cues) > 2 and all(len(cue.content) <= 20 and "\n" not in cue.content for cue in cues)
    assert all(
        later.start - earlier.end >= timedelta(milliseconds=200)
        for earlier, later in itertools.pairwise(cues)
    )
    assert " ".join(cue.content for cue in cues) == PHRASE_TXT.read_text().strip()

    capsys.readouterr()
    status = cli.main(
        [
            "--config",
            str(exported_project.config),
            str(PHRASE_WAV),
            "--out",
            str(out),
            "--max-lines-per-cue",
            "9",
        ]
    )
    assert status == 2
    assert capsys.readouterr().err == "error: --max-lines-per-cue is 9; use a whole number from 1 to 6.\n"
