"""The tiny stand-in models: the committed tiny Parakeet fixture, and the tiny Canary-Qwen (SALM)
loaded offline from one self-contained folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import soundfile as sf

from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV, TINY_PARAKEET_NEMO

PHRASE = PHRASE_TXT.read_text(encoding="utf-8").strip()

SALM_WORKER = """
import json, sys
from pathlib import Path
from testkit import tiny_models  # imports nothing heavy
from testkit import offline
offline.block_network()
result = tiny_models.salm_offline_roundtrip(Path({workdir!r}), Path({wav!r}))
print("RESULT " + json.dumps(result))
"""


@pytest.fixture(scope="module", autouse=True)
def salm_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[str]]:
    """The SALM round trip runs in its own process, offline from its first import and with
    sockets blocked; started first so that it overlaps with the Parakeet tests."""
    workdir = tmp_path_factory.mktemp("salm")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env |= {"HF_HOME": str(workdir / "hf-home"), "NEMO_CACHE_DIR": str(workdir / "nemo-cache")}
    code = SALM_WORKER.format(workdir=str(workdir), wav=str(PHRASE_WAV))
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def parakeet():  # noqa: ANN201
    from nemo.collections.asr.models import ASRModel

    return ASRModel.restore_from(str(TINY_PARAKEET_NEMO), map_location="cpu").eval()


def check_words(words: list[dict], duration: float) -> None:
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    for w in words:
        assert 0.0 <= w["start"] <= w["end"] <= duration + 0.08  # one 80 ms frame of slack


def test_tiny_parakeet_mirrors_the_real_architecture(parakeet) -> None:
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    cfg = parakeet.cfg
    assert type(parakeet) is EncDecRNNTBPEModel
    assert cfg.target == "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel"
    assert cfg.preprocessor.features == cfg.encoder.feat_in == 128
    assert cfg.preprocessor.sample_rate == 16000 and cfg.preprocessor.normalize == "per_feature"
    assert cfg.encoder.subsampling == "dw_striding" and cfg.encoder.subsampling_factor == 8
    assert cfg.joint.num_extra_outputs == len(cfg.decoding.durations) == 5
    assert cfg.decoding.model_type == "tdt" and cfg.loss.loss_name == "tdt"
    assert TINY_PARAKEET_NEMO.stat().st_size < 3_000_000


def test_tiny_parakeet_transcribes_the_phrase(parakeet) -> None:
    duration = sf.info(str(PHRASE_WAV)).duration
    hyp = parakeet.transcribe([str(PHRASE_WAV)], timestamps=True, verbose=False)[0]
    assert hyp.text == PHRASE
    words = hyp.timestamp["word"]
    assert " ".join(w["word"] for w in words) == PHRASE
    check_words(words, duration)


@pytest.mark.parametrize("variant", ["padded 1 s", "x3 with gaps"])
def test_tiny_parakeet_is_robust_to_padding_and_repetition(parakeet, variant: str) -> None:
    audio, sr = sf.read(str(PHRASE_WAV), dtype="float32")
    silence = np.zeros(sr // 2, dtype=np.float32)
    if variant == "padded 1 s":
        x, want = np.concatenate([silence, silence, audio, silence, silence]), PHRASE
    else:
        x, want = np.concatenate([audio, silence, audio, silence, audio]), " ".join([PHRASE] * 3)
    hyp = parakeet.transcribe([x], timestamps=True, verbose=False)[0]
    assert hyp.text == want
    check_words(hyp.timestamp["word"], len(x) / sr)
    if variant == "padded 1 s":
        assert hyp.timestamp["word"][0]["start"] >= 0.8  # timestamps follow the audio


def test_salm_offline_folder_reloads_identically(salm_worker: subprocess.Popen[str]) -> None:
    out, err = salm_worker.communicate(timeout=300)
    assert salm_worker.returncode == 0, err[-4000:]
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["files"] == [
        "config.json",
        "llm_backbone/config.json",
        "llm_backbone/tokenizer.json",
        "llm_backbone/tokenizer_config.json",
        "model.safetensors",
    ]
    assert result["pretrained_llm_after_load"].endswith("llm_backbone")
    assert result["missing"] == [] and result["unexpected"] == []
    assert result["same_state_dict"]
    assert result["ids_reloaded"] == result["ids_original"]
    assert len(result["ids_original"][0]) == 8
    assert result["llm_mode_text"].startswith("user\nHello! Who are you?\nassistant\n")
