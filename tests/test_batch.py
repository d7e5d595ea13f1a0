"""Many recordings in one run (localstt/batch.py): batched equals one by one, on the tiny Parakeet."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from localstt import engine
from localstt.audio import probe_seconds
from localstt.options import TranscribeOptions
from localstt.runs.batch import plan_batches, transcribe_all
from localstt.store import ModelStore
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Five recordings of different lengths, rates and containers, all of the phrase."""
    folder = tmp_path_factory.mktemp("recordings")
    speech, rate = sf.read(PHRASE_WAV, dtype="float32")
    silence = np.zeros(rate, dtype=np.float32)
    made = {
        "phrase.wav": speech,
        "twice.wav": np.concatenate([speech, silence, speech]),
        "late.wav": np.concatenate([silence, silence, speech]),
        "thrice.wav": np.concatenate([speech, silence, speech, silence, speech]),
    }
    paths = []
    for name, samples in made.items():
        sf.write(folder / name, samples, rate)
        paths.append(folder / name)
    stereo = folder / "stereo-44k.flac"  # another rate and channel count, through sox
    subprocess.run(["sox", str(PHRASE_WAV), "-r", "44100", "-c", "2", str(stereo)], check=True)
    paths.append(stereo)
    return paths


def one_by_one(paths: list[Path], store: ModelStore, options: TranscribeOptions) -> list[object]:
    return [engine.transcribe(path, "parakeet", options, store).segments for path in paths]


LONGEST_STEP_S = 4 * 0.08  # TDT's longest step: 4 encoder frames of 80 ms
PAUSE_S = 0.3


def assert_same_but_ends_before_a_pause(batched: list, alone: list) -> None:
    """The same segments and words at the same times, but for the ends of words followed by a pause.

    A word's end is where the model's last step after it lands; before a pause every step up to
    TDT's longest lands in silence, so the model is least sure there, and the slightly different
    arithmetic of a padded batch may pick another step. Such an end may differ by at most that
    step; nothing else may."""
    assert len(batched) == len(alone)
    for mine, theirs in zip(batched, alone, strict=True):
        assert [(s.text, s.start) for s in mine] == [(s.text, s.start) for s in theirs]
        words, others = [w for s in mine for w in s.words], [w for s in theirs for w in s.words]
        assert [(w.text, w.start) for w in words] == [(w.text, w.start) for w in others]
        for index, (word, other) in enumerate(zip(words, others, strict=True)):
            if word.end == other.end:
                continue
            following = others[index + 1].start if index + 1 < len(others) else float("inf")
            assert following - max(word.end, other.end) >= PAUSE_S, (word, other)
            assert abs(word.end - other.end) <= LONGEST_STEP_S + 1e-6, (word, other)


def test_batched_gives_the_same_text_and_timestamps_as_one_by_one(
    model_store: ModelStore, recordings, monkeypatch
):
    options = model_store.config.transcription.replace(parakeet_batch_size="auto")
    alone = one_by_one(recordings, model_store, options)
    model = model_store.load("parakeet").model
    calls: list[int] = []
    original = model.transcribe

    def counted(audio, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(len(audio))
        return original(audio, *args, **kwargs)

    monkeypatch.setattr(model, "transcribe", counted)
    results = transcribe_all(recordings, "parakeet", options, model_store)
    assert [r.path for r in results] == recordings  # in input order
    assert [r.failure for r in results] == [""] * len(recordings)
    assert_same_but_ends_before_a_pause([r.transcript.segments for r in results], alone)  # type: ignore[union-attr]
    assert [r.transcript.text for r in results] == [  # type: ignore[union-attr]
        PHRASE,
        f"{PHRASE} {PHRASE}",
        PHRASE,
        f"{PHRASE} {PHRASE} {PHRASE}",
        PHRASE,
    ]
    assert calls == [5]  # all five in one model call
    assert all(r.transcript.notes == ["full attention, 5 recordings at once"] for r in results)  # type: ignore[union-attr]


def test_a_batch_size_caps_how_many_run_together(model_store: ModelStore, recordings, monkeypatch):
    options = model_store.config.transcription.replace(parakeet_batch_size=2)
    model = model_store.load("parakeet").model
    calls: list[int] = []
    original = model.transcribe
    monkeypatch.setattr(
        model, "transcribe", lambda audio, *a, **k: calls.append(len(audio)) or original(audio, *a, **k)
    )
    results = transcribe_all(recordings, "parakeet", options, model_store)
    assert calls == [2, 2, 1]
    assert_same_but_ends_before_a_pause(
        [r.transcript.segments for r in results], one_by_one(recordings, model_store, options)
    )  # type: ignore[union-attr]


def test_one_bad_recording_costs_only_itself(model_store: ModelStore, recordings, tmp_path: Path):
    fake = tmp_path / "notes.wav"
    fake.write_text("not a recording\n" * 20)
    missing = tmp_path / "gone.wav"
    paths = [recordings[0], fake, recordings[1], missing]
    options = model_store.config.transcription
    results = transcribe_all(paths, "parakeet", options, model_store)
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert results[0].transcript.text == PHRASE  # type: ignore[union-attr]
    assert results[2].transcript.text == f"{PHRASE} {PHRASE}"  # type: ignore[union-attr]
    assert results[1].transcript is None and "'notes.wav' is not an audio file" in results[1].failure
    assert results[3].transcript is None and results[3].failure.startswith("Audio file not found:")


def test_batches_are_longest_first_within_the_minutes_and_unknown_lengths_last():
    seconds = [60.0, None, 600.0, 30.0, 2000.0, 90.0]
    assert plan_batches(seconds, batch_minutes=10) == [[4], [2], [5, 0, 3], [1]]
    assert plan_batches([], batch_minutes=10) == []


def test_on_a_gpu_short_clips_fill_a_batch_of_128_whatever_the_minutes():
    clips = [10.0] * 200  # 10 s each: 60 of them make batch_minutes = 10
    assert [len(batch) for batch in plan_batches(clips, batch_minutes=10)] == [60, 60, 60, 20]
    assert [len(batch) for batch in plan_batches(clips, batch_minutes=10, on_gpu=True)] == [128, 72]
    # More minutes than that asked for: still at most 128 recordings at once on a GPU.
    assert [len(batch) for batch in plan_batches(clips, batch_minutes=60, on_gpu=True)] == [128, 72]
    # Long recordings: at most 64 minutes of audio in a batch (what the clips may add up to).
    long = [1800.0, 1800.0, 1800.0, 4000.0]
    assert plan_batches(long, batch_minutes=10, on_gpu=True) == [[3], [0, 1], [2]]
    assert plan_batches(long, batch_minutes=10) == [[3], [0], [1], [2]]


def test_the_plan_follows_the_device_the_model_runs_on(exported_project):
    import torch

    from localstt.config import load_config
    from localstt.runs.batch import runs_on_gpu
    from localstt.store import ModelStore
    from testkit.simulated_gpu import CARDS, simulated_gpu
    from testkit.store_env import config_on

    with simulated_gpu(CARDS["h100"]):
        assert runs_on_gpu(ModelStore(load_config(config_on(exported_project, "auto"))), "parakeet")
        assert not runs_on_gpu(ModelStore(load_config(config_on(exported_project, "cpu"))), "parakeet")
    # outside the block, what this machine has (a GPU, none, or the whole run's simulated one)
    auto = ModelStore(load_config(config_on(exported_project, "auto")))
    assert runs_on_gpu(auto, "parakeet") == torch.cuda.is_available()


def test_lengths_come_from_the_header(recordings, tmp_path: Path):
    assert probe_seconds(recordings[1]) == pytest.approx(sf.info(recordings[1]).duration)
    assert probe_seconds(recordings[4]) == pytest.approx(sf.info(PHRASE_WAV).duration, abs=0.01)
    mp3 = tmp_path / "phrase.mp3"
    subprocess.run(["sox", str(PHRASE_WAV), str(mp3)], check=True)
    assert probe_seconds(mp3) == pytest.approx(sf.info(PHRASE_WAV).duration, abs=0.1)
    text = tmp_path / "text.wav"
    text.write_text("hello\n")
    assert probe_seconds(text) is None
    assert probe_seconds(tmp_path / "missing.wav") is None
