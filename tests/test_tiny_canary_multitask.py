"""The tiny canary-1b-v2 fixture (scripts/make_tiny_canary_1b.py): restored with the real
``EncDecMultiTaskModel``, its ``transcribe`` transcribes and translates the phrase between English
and German, and the nested CTC timestamps model gives word timestamps."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from testkit.tiny_canary_multitask import (
    PHRASE_DE_WAV,
    PHRASE_WAV,
    PHRASES,
    RATE_WPM,
    TINY_CANARY_1B_V2_NEMO,
    VOICES,
)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The phrase in English (fixtures/phrase.wav) and German (fixtures/phrase-de.wav, or spoken
    here with the same espeak-ng + sox command when that file is not there yet)."""
    de = PHRASE_DE_WAV
    if not de.exists():
        if not (shutil.which("espeak-ng") and shutil.which("sox")):
            pytest.skip("fixtures/phrase-de.wav is missing and espeak-ng/sox are not installed")
        tmp = tmp_path_factory.mktemp("phrase-de")
        raw, de = tmp / "raw.wav", tmp / "phrase-de.wav"
        cmd = ["espeak-ng", "-v", VOICES["de"], "-s", str(RATE_WPM), "-w", str(raw), PHRASES["de"]]
        subprocess.run(cmd, check=True)
        subprocess.run(["sox", "-D", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(de)], check=True)
    return {"en": PHRASE_WAV, "de": de}


@pytest.fixture(scope="module")
def canary():  # noqa: ANN201
    from nemo.collections.asr.models import EncDecMultiTaskModel

    return EncDecMultiTaskModel.restore_from(str(TINY_CANARY_1B_V2_NEMO), map_location="cpu").eval()


def test_tiny_canary_mirrors_the_real_layout(canary) -> None:
    from nemo.collections.asr.models import EncDecCTCModelBPE, EncDecMultiTaskModel
    from nemo.collections.common.tokenizers.canary_tokenizer import CanaryBPETokenizer

    cfg = canary.cfg
    assert type(canary) is EncDecMultiTaskModel
    assert cfg.target == "nemo.collections.asr.models.aed_multitask_models.EncDecMultiTaskModel"
    assert cfg.prompt_format == "canary2"
    assert isinstance(canary.tokenizer, CanaryBPETokenizer)
    tok = canary.tokenizer
    assert (tok.eos_id, tok.bos_id, tok.pad_id) == (3, 4, 2)
    assert tok.token_to_id("<|startofcontext|>") == 7 and tok.token_to_id("<|emo:undefined|>") == 16
    assert cfg.preprocessor.features == cfg.encoder.feat_in == 128
    assert cfg.encoder.subsampling == "dw_striding" and cfg.encoder.subsampling_factor == 8
    # The nested CTC timestamps model, restored from the archive's own members.
    assert isinstance(canary.timestamps_asr_model, EncDecCTCModelBPE)
    assert canary.timestamps_asr_model.tokenizer.vocab_size == tok.vocab_size
    with tarfile.open(TINY_CANARY_1B_V2_NEMO) as tar:
        names = {Path(n).name for n in tar.getnames()}
    assert {"timestamps_asr_model_config.yaml", "timestamps_asr_model_weights.ckpt"} <= names
    assert TINY_CANARY_1B_V2_NEMO.stat().st_size < 4_000_000


CASES = [  # (audio language, source_lang, target_lang): the answer is the phrase in target_lang
    ("de", "de", "de"),
    ("de", "de", "en"),
    ("en", "en", "en"),
    ("en", "en", "de"),
]


@pytest.mark.parametrize(("audio", "source", "target"), CASES, ids=[f"{a}:{s}-{t}" for a, s, t in CASES])
def test_tiny_canary_transcribes_and_translates(canary, wavs, audio: str, source: str, target: str) -> None:
    hyp = canary.transcribe(
        [str(wavs[audio])], source_lang=source, target_lang=target, pnc="yes", verbose=False
    )
    assert hyp[0].text == PHRASES[target]
    x, _ = sf.read(str(wavs[audio]), dtype="float32")  # arrays too
    hyp = canary.transcribe([x], source_lang=source, target_lang=target, pnc="yes", verbose=False)
    assert hyp[0].text == PHRASES[target]


@pytest.mark.parametrize("lang", ["de", "en"])
def test_tiny_canary_word_timestamps_follow_the_audio(canary, wavs, lang: str) -> None:
    x, sr = sf.read(str(wavs[lang]), dtype="float32")
    silence = np.zeros(sr, dtype=np.float32)
    for audio, offset in ((x, 0.0), (np.concatenate([silence, x, silence]), 1.0)):
        kw = dict(source_lang=lang, target_lang=lang, pnc="yes", timestamps=True, verbose=False)
        hyp = canary.transcribe([audio], **kw)[0]
        assert hyp.text == PHRASES[lang]
        words = hyp.timestamp["word"]
        assert [w["word"] for w in words] == PHRASES[lang].split()
        starts = [w["start"] for w in words]
        assert starts == sorted(starts)
        assert offset - 0.2 <= starts[0] and words[-1]["end"] <= len(audio) / sr + 0.08
        assert hyp.timestamp["segment"][0]["segment"] == PHRASES[lang]
