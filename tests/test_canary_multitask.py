"""Canary-1B-v2 as a model of the app (a tiny EncDecMultiTaskModel of the real class, its timestamps
aligner nested in the archive, served by the test hub under the real name): loaded in place with its
aligner mapped too, told the spoken language, transcribing with word times and translating."""

from __future__ import annotations

from pathlib import Path

import pytest

from localstt import engine
from localstt.errors import LanguageError
from localstt.loading.nemo_archive import UNPACKED_PREFIX, meta_tensors
from localstt.options import TranscribeOptions
from localstt.store import ModelStore
from testkit.tiny_models import PHRASE_DE_TXT, PHRASE_DE_WAV, PHRASE_TXT, PHRASE_WAV

GERMAN = PHRASE_DE_TXT.read_text(encoding="utf-8").strip()
ENGLISH = PHRASE_TXT.read_text(encoding="utf-8").strip()
KEY = "canary-1b-v2"


def test_loaded_in_place_with_its_aligner_mapped_not_unpacked(model_store: ModelStore) -> None:
    from nemo.collections.asr.models import EncDecCTCModelBPE, EncDecMultiTaskModel

    export = model_store.export_dir(KEY)
    with model_store.use(KEY) as loaded:
        model = loaded.model
        assert type(model) is EncDecMultiTaskModel and loaded.method == "mapped"
        aligner = model.timestamps_asr_model
        assert type(aligner) is EncDecCTCModelBPE
        assert meta_tensors(model) == [] and meta_tensors(aligner) == []
        mine = {name: tensor.clone() for name, tensor in aligner.state_dict().items()}
    # The same aligner as NeMo's own restore (which unpacks the whole archive to a temp folder).
    (nemo,) = export.glob("*.nemo")
    reference = EncDecMultiTaskModel.restore_from(str(nemo), map_location="cpu").timestamps_asr_model
    theirs = reference.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(mine[name].equal(theirs[name]) for name in theirs)
    # Only the small members were unpacked beside the archive: neither model's weights.
    (unpacked,) = export.glob(f"{UNPACKED_PREFIX}*")
    names = sorted(path.name for path in unpacked.iterdir())
    assert "timestamps_asr_model_config.yaml" in names
    assert not [name for name in names if name.endswith("weights.ckpt")], names


def test_transcribes_with_word_times_and_translates_in_the_languages_it_is_told(
    model_store: ModelStore,
) -> None:
    german = engine.transcribe(PHRASE_DE_WAV, KEY, TranscribeOptions(language="de"), model_store)
    assert (german.text, german.language, german.translated_to) == (GERMAN, "de", "")
    assert " ".join(word.text for word in german.words) == GERMAN  # timed by the aligner
    assert german.words[0].start < german.words[-1].end <= german.duration + 0.1

    english = engine.transcribe(
        PHRASE_DE_WAV, KEY, TranscribeOptions(language="de", translate_to="en"), model_store
    )
    assert (english.text, english.language, english.translated_to) == (ENGLISH, "de", "en")
    assert english.words == []  # a translation's words do not line up with the audio: per window
    assert english.notes == ["translated from de into en: timed per window, not per word"]

    back = engine.transcribe(
        PHRASE_WAV, KEY, TranscribeOptions(language="en", translate_to="de"), model_store
    )
    assert (back.text, back.translated_to) == (GERMAN, "de")
    assert back.to_dict()["translated_to"] == "de" and back.to_dict()["language"] == "en"


def test_it_must_be_told_the_spoken_language(model_store: ModelStore, tmp_path: Path) -> None:
    with pytest.raises(LanguageError) as caught:
        engine.transcribe(PHRASE_DE_WAV, KEY, TranscribeOptions(), model_store)
    assert str(caught.value).startswith("canary-1b-v2 must be told the spoken language: give one of bg, cs,")
    with pytest.raises(LanguageError) as pair:
        engine.transcribe(
            PHRASE_DE_WAV, KEY, TranscribeOptions(language="de", translate_to="fr"), model_store
        )
    assert str(pair.value) == (
        "canary-1b-v2 does not translate German into French; from German it translates into English."
    )


def test_a_recording_longer_than_a_window_is_read_in_windows_cut_at_quiet_points(
    model_store: ModelStore, tmp_path: Path
) -> None:
    import numpy as np
    import soundfile as sf

    speech, rate = sf.read(PHRASE_DE_WAV, dtype="float32")
    twice = tmp_path / "twice.wav"
    sf.write(twice, np.concatenate([speech, np.zeros(rate, np.float32), speech]), rate)
    options = TranscribeOptions.build(language="de", canary_1b_window_seconds=5.0)
    transcript = engine.transcribe(twice, KEY, options, model_store)
    assert transcript.text == f"{GERMAN} {GERMAN}"
    first, second = transcript.segments
    assert first.end <= second.start  # two windows, cut in the quiet between them
    # Each window's word times are the aligner's, moved to where the window starts.
    assert second.words[0].start >= len(speech) / rate
    assert " ".join(word.text for word in transcript.words) == transcript.text
