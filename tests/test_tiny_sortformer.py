"""The tiny Sortformer fixture (scripts/make_tiny_sortformer.py): the real class loaded offline,
telling the two voices of a held-out dialogue apart through the real ``diarize``."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from localstt.models.sortformer import parse_turns
from localstt.speakers import SpeakerTurn, assign_speakers, speakers_in_order
from localstt.transcript import Segment, Word
from testkit import offline

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY_SORTFORMER_NEMO = FIXTURES / "tiny-sortformer.nemo"
DIALOGUE_WAV = FIXTURES / "dialogue.wav"
DIALOGUE_JSON = FIXTURES / "dialogue.json"
TRUTH: list[dict[str, Any]] = json.loads(DIALOGUE_JSON.read_text(encoding="utf-8"))

_SOCKET_FUNCS = ("connect", "connect_ex", "sendto", "sendmsg")


@pytest.fixture(scope="module")
def no_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Network refused (loopback too) while this module runs; yields the file of attempts."""
    attempts = tmp_path_factory.mktemp("offline") / "attempts.txt"
    saved = {name: getattr(socket.socket, name) for name in _SOCKET_FUNCS}
    saved_mod = (socket.create_connection, socket.getaddrinfo)
    offline.block_network(allow_loopback=False, attempts_file=str(attempts))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        try:
            yield attempts
        finally:
            for name, func in saved.items():
                setattr(socket.socket, name, func)
            socket.create_connection, socket.getaddrinfo = saved_mod


@pytest.fixture(scope="module")
def diarized(no_network: Path) -> list[str]:
    from nemo.collections.asr.models import SortformerEncLabelModel

    model = SortformerEncLabelModel.restore_from(str(TINY_SORTFORMER_NEMO), map_location="cpu")
    model.eval()
    assert type(model) is SortformerEncLabelModel and model.streaming_mode
    lines = model.diarize(audio=[str(DIALOGUE_WAV)], batch_size=1, verbose=False)
    assert len(lines) == 1
    assert not no_network.exists(), no_network.read_text()
    return list(lines[0])


def test_fixture_is_small_and_the_dialogue_is_long_enough_for_two_chunks():
    assert TINY_SORTFORMER_NEMO.stat().st_size < 3_000_000
    info = sf.info(str(DIALOGUE_WAV))
    assert (info.samplerate, info.channels) == (16000, 1)
    # chunk_len 188 frames x 80 ms = 15.04 s: the speaker cache is used
    assert info.duration > 15.04
    assert {t["speaker"] for t in TRUTH} == {0, 1}
    assert [t["speaker"] for t in TRUTH][:2] == [0, 1]


def test_turns_are_well_formed(diarized: list[str]):
    turns = parse_turns(diarized)
    duration = sf.info(str(DIALOGUE_WAV)).duration
    assert turns
    assert turns == sorted(turns, key=lambda t: (t.start, t.end))
    assert all(0.0 <= t.start < t.end <= duration + 0.08 for t in turns)
    assert all(0 <= t.speaker < 4 for t in turns)


def overlap(turn: dict[str, Any], turns: list[SpeakerTurn], speaker: int) -> float:
    a, b = turn["start"], turn["end"]
    return sum(max(0.0, min(b, t.end) - max(a, t.start)) for t in turns if t.speaker == speaker)


@pytest.mark.parametrize("index", range(len(TRUTH)))
def test_each_true_turn_gets_its_speaker(diarized: list[str], index: int):
    turns = parse_turns(diarized)
    truth = TRUTH[index]
    a, b, speaker = truth["start"], truth["end"], truth["speaker"]
    # renumbered in order of first appearance, as the true turns are
    assert overlap(truth, turns, speaker) > 0.8 * (b - a)
    assert overlap(truth, turns, 1 - speaker) < 0.2 * (b - a)
    mine = [t for t in turns if t.speaker == speaker and t.end > a and t.start < b]
    assert abs(mine[0].start - a) <= 0.5
    assert abs(mine[-1].end - b) <= 0.5


def test_merged_with_words(diarized: list[str]):
    """Words laid evenly over each true turn, merged with the predicted turns."""
    words = []
    for truth in TRUTH:
        texts = truth["text"].split()
        step = (truth["end"] - truth["start"]) / len(texts)
        words += [
            Word(w, truth["start"] + i * step, truth["start"] + (i + 1) * step) for i, w in enumerate(texts)
        ]
    transcript = [Segment(words[0].start, words[-1].end, " ".join(w.text for w in words), tuple(words))]
    parts = assign_speakers(transcript, parse_turns(diarized))
    assert speakers_in_order(parts) == [0, 1]
    assert [(p.speaker, p.text) for p in parts] == [(t["speaker"], t["text"]) for t in TRUTH]
