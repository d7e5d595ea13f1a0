"""Cue building and the TXT/SRT/VTT/JSON writers, checked by parsing the output back with `srt` and
`webvtt-py`, and write_outputs' no-clobber atomic writes."""

from __future__ import annotations

import json
import random
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import srt
import webvtt

from localstt.formats import (
    WRITERS,
    Cue,
    JsonWriter,
    SrtWriter,
    TxtWriter,
    VttWriter,
    build_cues,
    format_timestamp,
    transcript_from_json,
    wrap_balanced,
    write_outputs,
)
from localstt.transcript import Segment, Transcript, Word


def timed_words(text: str, start: float, word_s: float = 0.35, gap_s: float = 0.05) -> tuple[Word, ...]:
    words, cursor = [], start
    for token in text.split():
        words.append(Word(token, round(cursor, 3), round(cursor + word_s, 3)))
        cursor += word_s + gap_s
    return tuple(words)


def segment(text: str, start: float, *, with_words: bool = True, end: float | None = None) -> Segment:
    words = timed_words(text, start) if with_words else ()
    return Segment(start, end if end is not None else (words[-1].end if words else start + 3), text, words)


def sample_transcript() -> Transcript:
    segments = [
        segment("Hello and welcome to the show.", 0.5),
        segment(
            "Today we talk about local speech recognition, why it matters, how it works on an "
            "ordinary laptop, and what it costs compared with a cloud service.",
            3.0,
        ),
        segment("Café naïve — 東京 & <friends> --> fine.", 14.0),
        segment(
            "This segment has no word timestamps so its cues are timed in proportion to "
            "the number of characters in each part of the text.",
            20.0,
            with_words=False,
            end=31.0,
        ),
        segment("Ok.", 40.0, end=40.2),
    ]
    return Transcript(
        text=" ".join(s.text for s in segments),
        segments=segments,
        duration=41.0,
        model_key="parakeet-tdt-0.6b-v3",
        revision="0" * 40,
        timings={"load": 1.25, "transcribe": 3.5},
        source_name="show.wav",
    )


def check_cues(cues: list[Cue], transcript: Transcript) -> None:
    assert cues
    for index, cue in enumerate(cues):
        assert 1 <= len(cue.lines) <= 2 and all(0 < len(line) <= 42 for line in cue.lines), cue
        assert cue.end_ms > cue.start_ms, cue
        assert cue.end_ms - cue.start_ms <= 7000, cue
        if index + 1 < len(cues):
            following = cues[index + 1]
            assert cue.end_ms <= following.start_ms, (cue, following)
            assert cue.end_ms - cue.start_ms >= 700 or cue.end_ms == following.start_ms, cue
    shown = " ".join(line for cue in cues for line in cue.lines).split()
    assert shown == " ".join(s.text for s in transcript.segments).split()  # every word, once, in order


def test_cues_respect_lines_lengths_durations_and_order() -> None:
    transcript = sample_transcript()
    cues = build_cues(transcript)
    check_cues(cues, transcript)
    for cue in cues:
        if len(cue.lines) == 2:  # balanced: no other break point makes the longer line shorter
            words = cue.text.split()
            best = min(max(len(" ".join(words[:i])), len(" ".join(words[i:]))) for i in range(1, len(words)))
            assert max(map(len, cue.lines)) == best, cue.lines


def test_long_segment_splits_at_word_times_or_in_proportion_to_characters() -> None:
    transcript = sample_transcript()
    cues = build_cues(transcript)
    worded = transcript.segments[1]
    inside = [c for c in cues if worded.start * 1000 <= c.start_ms < worded.end * 1000]
    assert len(inside) == 2  # 26 words, 143 characters: two full two-line cues
    word_starts = {round(w.start * 1000) for w in worded.words}
    word_ends = {round(w.end * 1000) for w in worded.words}
    assert all(c.start_ms in word_starts for c in inside)
    assert all(c.end_ms in word_ends for c in inside[:-1])

    plain = transcript.segments[3]  # 11 s, no words: time shared out by characters (plus a space)
    inside = [c for c in cues if 20000 <= c.start_ms < 31000]
    assert len(inside) >= 2 and inside[0].start_ms == 20000 and inside[-1].end_ms == 31000
    total = len(plain.text) + 1
    done = 0
    for cue in inside:
        done += len(" ".join(cue.lines)) + 1
        assert abs(cue.end_ms - (20000 + 11000 * done / total)) <= 1, cue


def test_short_cues_are_stretched_only_into_free_time() -> None:
    transcript = Transcript(
        text="",
        segments=[Segment(1.0, 1.2, "Hi."), Segment(1.5, 1.7, "Yo."), Segment(5.0, 5.1, "Bye.")],
        duration=6,
        model_key="m",
        revision="r",
    )
    cues = build_cues(transcript)
    # "Hi." can only reach 0.7 s by also starting 0.2 s early; "Bye." has room after it.
    assert [(c.start_ms, c.end_ms) for c in cues] == [(800, 1500), (1500, 2200), (5000, 5700)]


def test_srt_parses_back_to_the_same_cues() -> None:
    transcript = sample_transcript()
    rendered = SrtWriter().render(transcript)
    cues = build_cues(transcript)
    parsed = list(srt.parse(rendered))
    assert [p.index for p in parsed] == list(range(1, len(cues) + 1))
    for cue, subtitle in zip(cues, parsed, strict=True):
        assert subtitle.start == timedelta(milliseconds=cue.start_ms)
        assert subtitle.end == timedelta(milliseconds=cue.end_ms)
        assert subtitle.content == cue.text.replace("-->", "->")
    assert rendered.startswith("1\n00:00:00,500 --> 00:00:")
    assert "\n\n2\n" in rendered and " --> " in rendered and "\n\n\n" not in rendered
    assert "東京 & <friends> -> fine." in rendered


def test_vtt_parses_back_to_the_same_cues() -> None:
    transcript = sample_transcript()
    rendered = VttWriter().render(transcript)
    assert rendered.startswith("WEBVTT\n\n00:00:00.500 --> ")
    cues = build_cues(transcript)
    parsed = list(webvtt.from_string(rendered))
    assert len(parsed) == len(cues)
    for cue, caption in zip(cues, parsed, strict=True):
        assert caption.start == format_timestamp(cue.start_ms, ".")
        assert caption.end == format_timestamp(cue.end_ms, ".")
        escaped = cue.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert caption.text == escaped
    assert "東京 &amp; &lt;friends&gt; --&gt; fine." in rendered
    timing = re.compile(r"\d{2,}:\d{2}:\d{2}\.\d{3} --> \d{2,}:\d{2}:\d{2}\.\d{3}")
    assert all(timing.fullmatch(line) for line in rendered.splitlines() if "-->" in line)


def test_timestamps_past_one_and_past_99_hours() -> None:
    assert format_timestamp(3_723_456, ",") == "01:02:03,456"
    assert format_timestamp(3_723_456, ".") == "01:02:03.456"
    assert format_timestamp(100 * 3_600_000 + 1, ",") == "100:00:00,001"
    transcript = Transcript(
        text="late",
        segments=[Segment(3723.456, 3725.0, "Still here."), Segment(360_000.0, 360_002.5, "Very late.")],
        duration=360_003.0,
        model_key="m",
        revision="r",
    )
    parsed_srt = list(srt.parse(SrtWriter().render(transcript)))
    assert parsed_srt[0].start == timedelta(hours=1, minutes=2, seconds=3, milliseconds=456)
    assert parsed_srt[1].start == timedelta(hours=100) and parsed_srt[1].end == timedelta(
        hours=100, seconds=2.5
    )
    parsed_vtt = list(webvtt.from_string(VttWriter().render(transcript)))
    assert (parsed_vtt[1].start, parsed_vtt[1].end) == ("100:00:00.000", "100:00:02.500")


def test_three_hour_transcript_last_cue() -> None:
    rng = random.Random(3)
    vocabulary = [
        "we",
        "the",
        "local",
        "model",
        "speech",
        "recognition",
        "quickly",
        "writes",
        "every",
        "word",
        "down",
        "right",
    ]
    segments, start = [], 0.0
    while start < 3 * 3600 - 12:
        text = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(3, 30)))
        segments.append(segment(text, start, with_words=rng.random() < 0.7))
        start = segments[-1].end + rng.uniform(0.05, 2.0)
    segments.append(Segment(10_795.25, 10_799.125, "The end."))
    transcript = Transcript("", segments, 10_800.0, "m", "r")
    cues = build_cues(transcript)
    check_cues(cues, transcript)
    rendered = SrtWriter().render(transcript)
    last = rendered.rstrip("\n").split("\n\n")[-1].split("\n")
    assert last == [str(len(cues)), "02:59:55,250 --> 02:59:59,125", "The end."]
    assert VttWriter().render(transcript).endswith("\n\n02:59:55.250 --> 02:59:59.125\nThe end.\n")


def test_wrap_balanced() -> None:
    assert wrap_balanced(["a", "bb", "ccc", "dddd"], 42, 2) == ["a bb ccc dddd"]
    words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "and", "keeps", "running"]
    assert wrap_balanced(words, 42, 2) == ["the quick brown fox jumps over", "the lazy dog and keeps running"]
    assert wrap_balanced(words, 20, 4) == [
        "the quick brown",
        "fox jumps over",
        "the lazy dog and",
        "keeps running",
    ]
    assert wrap_balanced(["x" * 30, "y" * 30, "z" * 30], 42, 2) is None


def test_json_round_trips_with_stable_keys() -> None:
    transcript = sample_transcript()
    rendered = JsonWriter().render(transcript)
    data = json.loads(rendered)
    assert list(data) == ["text", "segments", "duration", "model_key", "revision", "timings", "source_name"]
    assert list(data["segments"][0]) == ["start", "end", "text", "words"]
    assert list(data["segments"][0]["words"][0]) == ["text", "start", "end"]
    assert data == json.loads(json.dumps(transcript.to_dict()))
    assert "東京" in rendered and '\n  "segments": [' in rendered
    assert transcript_from_json(rendered) == transcript
    transcript.timings["numpy"] = np.float32(0.5)  # what a careless engine might put there
    assert json.loads(JsonWriter().render(transcript))["timings"]["numpy"] == 0.5


def test_txt_paragraphs_follow_pauses() -> None:
    text = TxtWriter().render(sample_transcript())
    paragraphs = text.rstrip("\n").split("\n\n")
    assert text.endswith(".\n") and len(paragraphs) == 3  # pauses of 2.85 s before 20 s and 40 s
    assert paragraphs[0].startswith("Hello and welcome to the show. Today we talk")
    assert paragraphs[0].endswith("a cloud service. Café naïve — 東京 & <friends> --> fine.")
    assert paragraphs[-1] == "Ok."
    assert TxtWriter().render(Transcript("Just text.", [], 1.0, "m", "r")) == "Just text.\n"


def test_empty_transcript() -> None:
    empty = Transcript("", [], 0.0, "m", "r")
    assert SrtWriter().render(empty) == "" and VttWriter().render(empty) == "WEBVTT\n"
    assert TxtWriter().render(empty) == "" and list(webvtt.from_string(VttWriter().render(empty))) == []


def test_write_outputs_is_atomic_and_never_overwrites(tmp_path: Path) -> None:
    transcript = sample_transcript()
    out = tmp_path / "out"
    paths = write_outputs(transcript, ["txt", ".SRT", "vtt", "json", "srt"], out, "show")
    assert [p.name for p in paths] == ["show.txt", "show.srt", "show.vtt", "show.json"]
    for path, key in zip(paths, ["txt", "srt", "vtt", "json"], strict=True):
        assert path.read_bytes() == WRITERS[key].render(transcript).encode("utf-8")
    assert write_outputs(transcript, ["srt"], out, "show") == [out / "show.srt"]  # same content: kept

    (out / "show.srt").write_text("my hand-edited subtitles\n", encoding="utf-8")
    (out / "show-1.srt").write_text("another edit\n", encoding="utf-8")
    [new] = write_outputs(transcript, ["srt"], out, "show")
    assert new == out / "show-2.srt" and new.read_text(encoding="utf-8") == SrtWriter().render(transcript)
    assert (out / "show.srt").read_text(encoding="utf-8") == "my hand-edited subtitles\n"
    assert (out / "show-1.srt").read_text(encoding="utf-8") == "another edit\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left

    [odd] = write_outputs(transcript, ["txt"], out, "../a/b:c")
    assert odd.parent == out and odd.name == "_a_b_c.txt"
    with pytest.raises(ValueError, match="Unknown output format 'docx'; choose from txt, srt, vtt, json"):
        write_outputs(transcript, ["docx"], out, "show")
