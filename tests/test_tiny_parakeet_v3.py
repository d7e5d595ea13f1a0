"""The tiny multilingual Parakeet-TDT fixture (scripts/make_tiny_parakeet_v3.py), the stand-in for
nvidia/parakeet-tdt-0.6b-v3: the real class, no language prompt, English and German by ear."""

from __future__ import annotations

import pytest
import soundfile as sf

from testkit.tiny_models import FIXTURES, PHRASE_TXT, PHRASE_WAV

TINY_PARAKEET_V3_NEMO = FIXTURES / "tiny-parakeet-v3.nemo"
PHRASE_DE_WAV = FIXTURES / "phrase-de.wav"
PHRASE_DE_TXT = FIXTURES / "phrase-de.txt"
PHRASES = {
    "en": (PHRASE_WAV, PHRASE_TXT.read_text(encoding="utf-8").strip()),
    "de": (PHRASE_DE_WAV, PHRASE_DE_TXT.read_text(encoding="utf-8").strip()),
}


@pytest.fixture(scope="module")
def parakeet_v3():  # noqa: ANN201
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    return EncDecRNNTBPEModel.restore_from(str(TINY_PARAKEET_V3_NEMO), map_location="cpu").eval()


def test_tiny_parakeet_v3_is_the_v2_class_with_a_bilingual_tokenizer(parakeet_v3) -> None:
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    cfg = parakeet_v3.cfg
    assert type(parakeet_v3) is EncDecRNNTBPEModel
    assert cfg.target == "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel"
    assert cfg.decoding.model_type == "tdt" and cfg.joint.num_extra_outputs == 5
    assert PHRASES["de"][1] == "Der schnelle braune Fuchs springt über den faulen Hund."
    for _, text in PHRASES.values():  # every character known: no <unk> in either language
        assert parakeet_v3.tokenizer.ids_to_text(parakeet_v3.tokenizer.text_to_ids(text)) == text
    assert TINY_PARAKEET_V3_NEMO.stat().st_size < 3_000_000


@pytest.mark.parametrize("lang", ["de", "en"])
def test_tiny_parakeet_v3_transcribes_each_language(parakeet_v3, lang: str) -> None:
    wav, text = PHRASES[lang]
    hyp = parakeet_v3.transcribe([str(wav)], timestamps=True, verbose=False)[0]
    assert hyp.text == text
    words = hyp.timestamp["word"]
    assert " ".join(w["word"] for w in words) == text
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert all(0.0 <= w["start"] <= w["end"] <= sf.info(str(wav)).duration + 0.08 for w in words)


def test_tiny_parakeet_v3_tells_the_languages_apart_in_one_batch(parakeet_v3) -> None:
    wavs, texts = zip(*(PHRASES[lang] for lang in ("de", "en", "de")), strict=True)
    hyps = parakeet_v3.transcribe([str(w) for w in wavs], batch_size=3, verbose=False)
    assert [h.text for h in hyps] == list(texts)
