"""localstt/speakers.py: Sortformer's lines parsed, and speakers merged with words, on hand-made turns."""

from __future__ import annotations

import pytest

from localstt.speakers import (
    SpeakerSegment,
    SpeakerTurn,
    assign_speakers,
    dominant_speaker,
    parse_names,
    parse_turns,
    speaker_names,
    speakers_in_order,
)
from localstt.transcript import Segment, Word


def seg(*words: tuple[str, float, float]) -> Segment:
    ws = tuple(Word(t, a, b) for t, a, b in words)
    return Segment(ws[0].start, ws[-1].end, " ".join(w.text for w in ws), ws)


def T(start: float, end: float, speaker: int) -> SpeakerTurn:
    return SpeakerTurn(start, end, speaker)


def summary(parts: list[SpeakerSegment]) -> list[tuple[int | None, float, float, str]]:
    return [(p.speaker, p.segment.start, p.segment.end, p.segment.text) for p in parts]


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
    assert [p.word_speakers for p in out] == [(0, 0), (1, 1)]
    assert summary(out) == [(0, 0.1, 1.05, "a ox"), (1, 0.8, 2.0, "big dog")]
    assert out[0].segment.words == s.words[:2] and out[1].segment.words == s.words[2:]


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
    assert [p.word_speakers for p in out] == [(0, 0), (1, 1)]
    assert summary(out) == [(0, 0.2, 1.4, "one um"), (1, 2.5, 3.5, "er two")]
    # exactly halfway: the earlier turn
    assert dominant_speaker(1.9, 2.1, turns) == 0


def test_word_in_a_gap_without_fill_nearest_has_no_speaker_and_splits_nothing():
    turns = [T(0.0, 1.0, 0), T(3.0, 4.0, 1)]
    s = seg(("one", 0.2, 0.8), ("um", 1.2, 1.4), ("er", 2.5, 2.8), ("two", 3.1, 3.5))
    out = assign_speakers([s], turns, fill_nearest=False)
    assert [p.word_speakers for p in out] == [(0, None, None), (1,)]
    assert summary(out) == [(0, 0.2, 2.8, "one um er"), (1, 3.1, 3.5, "two")]
    # speakerless words at the start join the first speaker's run
    s2 = seg(("so", 1.2, 1.4), ("two", 3.1, 3.5))
    assert assign_speakers([s2], turns, fill_nearest=False) == [SpeakerSegment(s2, 1, (None, 1))]
    # no turns at all
    assert assign_speakers([s2], [], fill_nearest=True) == [SpeakerSegment(s2, None, (None, None))]


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
    assert out == [SpeakerSegment(segments[0], 0, (0, 0)), SpeakerSegment(segments[1], 0, (0, 0))]
    assert out[0].segment is segments[0]


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
    assert speaker_names(speakers_in_order(out), ["Ana", "Ben"]) == {
        0: "Ana",
        1: "Ben",
        2: "Speaker 3",
        3: "Speaker 4",
    }


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
    assert out == [
        SpeakerSegment(windows[0], 0),
        SpeakerSegment(windows[1], 1),
        SpeakerSegment(windows[2], 0),
    ]
    assert assign_speakers(windows[2:], turns, fill_nearest=False) == [SpeakerSegment(windows[2], None)]


# ------------------------------------------------------------------ names


def test_speaker_names_in_order_of_first_appearance():
    assert speaker_names([0, 1, 2], ["Ana", "Ben"]) == {0: "Ana", 1: "Ben", 2: "Speaker 3"}
    # the n-th to appear takes the n-th name, whatever its number
    assert speaker_names([1, 0], ["Ana", "Ben"]) == {1: "Ana", 0: "Ben"}
    assert speaker_names([0, 1], []) == {0: "Speaker 1", 1: "Speaker 2"}
    # blank names keep the default; extra names are ignored
    assert speaker_names([0, 1, 2], ["", " Ben ", "Cy", "Dee"]) == {0: "Speaker 1", 1: "Ben", 2: "Cy"}
    assert speaker_names([], ["Ana"]) == {}


def test_parse_names():
    assert parse_names("Ana,Ben") == ["Ana", "Ben"]
    assert parse_names(" Ana , Ben Smith ,, Cy ") == ["Ana", "Ben Smith", "", "Cy"]
    assert parse_names("  ") == []
    assert speaker_names([0, 1, 2, 3], parse_names("Ana,,Cy")) == {
        0: "Ana",
        1: "Speaker 2",
        2: "Cy",
        3: "Speaker 4",
    }
