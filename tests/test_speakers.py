"""localstt/speakers.py: Sortformer's lines parsed, and speakers merged with words, on hand-made turns."""

from __future__ import annotations

import dataclasses

import pytest

from localstt.models.sortformer import parse_turns
from localstt.speakers import (
    SpeakerTurn,
    assign_speakers,
    dominant_speaker,
    label_speakers,
    parse_names,
    speakers_in_order,
)
from localstt.transcript import Segment, Transcript, Word, display_names


def seg(*words: tuple[str, float, float]) -> Segment:
    ws = tuple(Word(t, a, b) for t, a, b in words)
    return Segment(ws[0].start, ws[-1].end, " ".join(w.text for w in ws), ws)


def T(start: float, end: float, speaker: int) -> SpeakerTurn:
    return SpeakerTurn(start, end, speaker)


def summary(parts: list[Segment]) -> list[tuple[int | None, float, float, str]]:
    return [(p.speaker, p.start, p.end, p.text) for p in parts]


def word_speakers(part: Segment) -> tuple[int | None, ...]:
    return tuple(w.speaker for w in part.words)


def with_speakers(segment: Segment, speaker: int | None, words: tuple[int | None, ...] = ()) -> Segment:
    """`segment` as assign_speakers should give it back: its speaker, and each word's."""
    spoken = tuple(dataclasses.replace(w, speaker=k) for w, k in zip(segment.words, words, strict=True))
    return dataclasses.replace(segment, speaker=speaker, words=spoken)


def unlabelled(words: tuple[Word, ...]) -> tuple[Word, ...]:
    return tuple(dataclasses.replace(w, speaker=None) for w in words)


# ------------------------------------------------------------------ parse_turns


def test_parse_turns_sorts_grouped_lines_and_renumbers_by_first_appearance():
    # As Sortformer gives them: grouped by speaker, speaker_1 heard first.
    lines = [
        "2.40 3.60 speaker_0",
        "6.00 7.20 speaker_0",
        "0.32 2.24 speaker_1",
        "3.84 5.92 speaker_1",
        "7.36 8.00 speaker_3",
    ]
    assert parse_turns(lines) == [
        T(0.32, 2.24, 0),
        T(2.40, 3.60, 1),
        T(3.84, 5.92, 0),
        T(6.00, 7.20, 1),
        T(7.36, 8.00, 2),
    ]


def test_parse_turns_skips_blank_and_empty_and_rejects_malformed():
    assert parse_turns(["", "1.0 1.0 speaker_2", "  1.5   2.5  speaker_2 "]) == [T(1.5, 2.5, 0)]
    assert parse_turns([]) == []
    with pytest.raises(ValueError, match="not a 'begin end speaker' line"):
        parse_turns(["1.0 2.0"])
    with pytest.raises(ValueError):
        parse_turns(["one 2.0 speaker_0"])


def test_parse_turns_same_start_orders_speakers_numerically():
    lines = ["0.0 1.0 speaker_10", "0.0 1.0 speaker_9", "0.0 1.0 speaker_2"]
    assert parse_turns(lines) == [T(0.0, 1.0, 0), T(0.0, 1.0, 1), T(0.0, 1.0, 2)]


# ------------------------------------------------------------------ assign_speakers


def test_word_straddling_a_boundary_goes_to_the_larger_overlap():
    turns = [T(0.0, 1.0, 0), T(1.0, 3.0, 1)]
    # "big" is 0.8-1.4: 0.2 s in speaker 0, 0.4 s in speaker 1; "ox" 0.9-1.05: 0.1 vs 0.05
    s = seg(("a", 0.1, 0.5), ("ox", 0.9, 1.05), ("big", 1.1 - 0.3, 1.4), ("dog", 1.5, 2.0))
    out = assign_speakers([s], turns)
    assert [word_speakers(p) for p in out] == [(0, 0), (1, 1)]
    assert summary(out) == [(0, 0.1, 1.05, "a ox"), (1, 0.8, 2.0, "big dog")]
    assert unlabelled(out[0].words) == s.words[:2] and unlabelled(out[1].words) == s.words[2:]


def test_overlap_is_summed_over_a_speakers_turns():
    # 0.5-2.5: speaker 0 has 0.5 + 0.5 = 1.0 s (two turns), speaker 1 has 0.8 s (one)
    turns = [T(0.0, 1.0, 0), T(1.1, 1.9, 1), T(2.0, 3.0, 0)]
    assert dominant_speaker(0.5, 2.5, turns) == 0
    assert dominant_speaker(1.0, 2.0, turns) == 1
    # equal overlaps: the lower speaker number
    assert dominant_speaker(0.5, 1.5, [T(0.0, 1.0, 1), T(1.0, 2.0, 0)]) == 0


def test_word_in_a_gap_takes_the_nearest_turn():
    turns = [T(0.0, 1.0, 0), T(3.0, 4.0, 1)]
    s = seg(("one", 0.2, 0.8), ("um", 1.2, 1.4), ("er", 2.5, 2.8), ("two", 3.1, 3.5))
    out = assign_speakers([s], turns)
    # "um" is 0.2 s after speaker 0's turn, "er" 0.2 s before speaker 1's
    assert [word_speakers(p) for p in out] == [(0, 0), (1, 1)]
    assert summary(out) == [(0, 0.2, 1.4, "one um"), (1, 2.5, 3.5, "er two")]
    # exactly halfway: the earlier turn
    assert dominant_speaker(1.9, 2.1, turns) == 0


def test_word_in_a_gap_without_fill_nearest_has_no_speaker_and_splits_nothing():
    turns = [T(0.0, 1.0, 0), T(3.0, 4.0, 1)]
    s = seg(("one", 0.2, 0.8), ("um", 1.2, 1.4), ("er", 2.5, 2.8), ("two", 3.1, 3.5))
    out = assign_speakers([s], turns, fill_nearest=False)
    assert [word_speakers(p) for p in out] == [(0, None, None), (1,)]
    assert summary(out) == [(0, 0.2, 2.8, "one um er"), (1, 3.1, 3.5, "two")]
    # speakerless words at the start join the first speaker's run
    s2 = seg(("so", 1.2, 1.4), ("two", 3.1, 3.5))
    assert assign_speakers([s2], turns, fill_nearest=False) == [with_speakers(s2, 1, (None, 1))]
    # no turns at all
    assert assign_speakers([s2], [], fill_nearest=True) == [with_speakers(s2, None, (None, None))]


def test_zero_length_word_inside_a_turn_takes_it_even_without_fill_nearest():
    turns = [T(0.0, 1.0, 0), T(1.0, 2.0, 1)]
    assert dominant_speaker(0.5, 0.5, turns, fill_nearest=False) == 0
    assert dominant_speaker(1.5, 1.5, turns, fill_nearest=False) == 1
    assert dominant_speaker(2.5, 2.5, turns, fill_nearest=False) is None


def test_single_speaker_splits_nothing():
    turns = [T(0.0, 1.5, 0), T(2.0, 5.0, 0)]
    segments = [
        Segment(0.1, 1.9, "Hello, there.", (Word("Hello,", 0.1, 0.6), Word("there.", 1.4, 1.9))),
        seg(("Fine", 2.2, 2.6), ("thanks.", 2.7, 3.3)),
    ]
    out = assign_speakers(segments, turns)
    # the segments are kept as they are (text, times, words)
    assert out == [with_speakers(segments[0], 0, (0, 0)), with_speakers(segments[1], 0, (0, 0))]
    assert out[0].text == "Hello, there." and out[0].start == 0.1


def test_four_speakers():
    turns = parse_turns(
        [
            "3.0 4.0 speaker_2",
            "0.0 1.0 speaker_3",
            "1.0 2.0 speaker_0",
            "2.0 3.0 speaker_1",
            "4.0 5.0 speaker_3",
        ]
    )
    assert [t.speaker for t in turns] == [0, 1, 2, 3, 0]
    s = seg(
        ("w0", 0.1, 0.9),
        ("w1", 1.1, 1.5),
        ("w2", 1.6, 1.9),
        ("w3", 2.2, 2.8),
        ("w4", 3.1, 3.9),
        ("w5", 4.2, 4.8),
    )
    out = assign_speakers([s], turns)
    assert summary(out) == [
        (0, 0.1, 0.9, "w0"),
        (1, 1.1, 1.9, "w1 w2"),
        (2, 2.2, 2.8, "w3"),
        (3, 3.1, 3.9, "w4"),
        (0, 4.2, 4.8, "w5"),
    ]
    assert speakers_in_order(out) == [0, 1, 2, 3]
    assert display_names(len(speakers_in_order(out)), ["Ana", "Ben"]) == [
        "Ana",
        "Ben",
        "Speaker 3",
        "Speaker 4",
    ]


def test_turns_that_start_before_the_first_word():
    # speech (e.g. a cough, or words the recogniser missed) before the first word
    turns = [T(0.0, 2.5, 0), T(2.6, 6.0, 1)]
    segments = [seg(("so", 1.8, 2.1), ("then", 2.2, 2.7), ("yes", 3.0, 3.4)), seg(("ok", 5.0, 5.5))]
    out = assign_speakers(segments, turns)
    # "then" 2.2-2.7: 0.3 s of speaker 0, 0.1 s of speaker 1
    assert summary(out) == [(0, 1.8, 2.7, "so then"), (1, 3.0, 3.4, "yes"), (1, 5.0, 5.5, "ok")]
    assert speakers_in_order(out) == [0, 1]


def test_several_segments_each_split_on_their_own():
    turns = [T(0.0, 1.0, 0), T(1.0, 2.0, 1), T(2.0, 3.0, 0)]
    segments = [seg(("a", 0.2, 0.6), ("b", 1.2, 1.6)), seg(("c", 1.7, 1.9), ("d", 2.1, 2.5))]
    out = assign_speakers(segments, turns)
    assert summary(out) == [(0, 0.2, 0.6, "a"), (1, 1.2, 1.6, "b"), (1, 1.7, 1.9, "c"), (0, 2.1, 2.5, "d")]


def test_segment_without_words_gets_its_dominant_speaker():
    turns = [T(0.0, 4.0, 0), T(4.0, 10.0, 1), T(10.0, 11.0, 0), T(30.0, 31.0, 2)]
    windows = [
        Segment(0.0, 8.0, "Canary window one."),  # 4 s of speaker 0, 4 s of 1: the lower number
        Segment(3.0, 12.0, "Window two."),  # 1 + 1 s of speaker 0, 6 s of speaker 1
        Segment(13.0, 16.0, "In a gap."),  # nearest turn: speaker 0's ending at 11 s (not 2's at 30 s)
    ]
    out = assign_speakers(windows, turns)
    assert out == [with_speakers(windows[0], 0), with_speakers(windows[1], 1), with_speakers(windows[2], 0)]
    assert assign_speakers(windows[2:], turns, fill_nearest=False) == [with_speakers(windows[2], None)]


# ------------------------------------------------------------------ names


def test_display_names_in_order_of_first_appearance():
    assert display_names(3, ["Ana", "Ben"]) == ["Ana", "Ben", "Speaker 3"]
    assert display_names(2, []) == ["Speaker 1", "Speaker 2"]
    # blank names keep the default; extra names are ignored
    assert display_names(3, ["", " Ben ", "Cy", "Dee"]) == ["Speaker 1", "Ben", "Cy"]
    assert display_names(0, ["Ana"]) == []


def test_label_speakers_numbers_them_as_the_transcript_first_shows_them():
    # the diarizer heard speaker 0 first (a cough before any word), but speaker 1 speaks the first word
    turns = [T(0.0, 0.5, 0), T(1.0, 2.0, 1), T(2.0, 3.0, 0), T(5.0, 6.0, 2)]
    segments = [seg(("hi", 1.2, 1.6), ("there", 2.2, 2.6))]
    out, renumbered, count = label_speakers(segments, turns)
    assert summary(out) == [(0, 1.2, 1.6, "hi"), (1, 2.2, 2.6, "there")]
    assert [word_speakers(p) for p in out] == [(0,), (1,)]
    # speaker 2 speaks no word: numbered last
    assert renumbered == [T(0.0, 0.5, 1), T(1.0, 2.0, 0), T(2.0, 3.0, 1), T(5.0, 6.0, 2)]
    assert count == 3
    assert label_speakers(segments, []) == (
        [with_speakers(segments[0], None, (None, None))],
        [],
        0,
    )


def test_transcript_json_names_the_speakers_and_reads_back():
    out, turns, count = label_speakers([seg(("a", 0.1, 0.5), ("b", 1.2, 1.6))], [T(0, 1, 0), T(1, 2, 1)])
    named = Transcript(
        "a b",
        out,
        2.0,
        "parakeet",
        "r" * 40,
        speaker_turns=turns,
        speaker_names=display_names(count, ["Ana"]),
    )
    assert named.speaker_names == ["Ana", "Speaker 2"]
    data = named.to_dict()
    assert data["speakers"] == ["Ana", "Speaker 2"]
    assert [s["speaker"] for s in data["segments"]] == ["Ana", "Speaker 2"]
    assert [w["speaker"] for s in data["segments"] for w in s["words"]] == ["Ana", "Speaker 2"]
    assert data["speaker_turns"] == [
        {"start": 0, "end": 1, "speaker": "Ana"},
        {"start": 1, "end": 2, "speaker": "Speaker 2"},
    ]
    assert Transcript.from_dict(data) == named
    # without speakers: none of the speaker keys
    plain = Transcript("a", [seg(("a", 0.1, 0.5))], 1.0, "parakeet", "r" * 40)
    assert not {"speakers", "speaker_turns"} & set(plain.to_dict())
    assert "speaker" not in plain.to_dict()["segments"][0]


def test_parse_names():
    assert parse_names("Ana,Ben") == ["Ana", "Ben"]
    assert parse_names(" Ana , Ben Smith ,, Cy ") == ["Ana", "Ben Smith", "", "Cy"]
    assert parse_names("  ") == []
    assert display_names(4, parse_names("Ana,,Cy")) == ["Ana", "Speaker 2", "Cy", "Speaker 4"]
