"""Parakeet in bfloat16 where the GPU has it natively (compute capability 8.0 and up), as the Open ASR
Leaderboard runs it: the weights cast whole, no autocast; the older cards' rules unchanged. The cast
is real (on the CPU, which runs bfloat16 too), and the tiny model still says the phrase."""

from __future__ import annotations

import pytest
import torch

from localstt import engine
from localstt.config import load_config
from localstt.models import family_for
from localstt.models.parakeet import attention_plan, score_bytes
from localstt.precision import Precision, choose_precision
from localstt.store import ModelStore
from testkit.store_env import Project
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()


@pytest.mark.parametrize("capability", [(8, 0), (8, 9), (9, 0)])
def test_native_bfloat16_casts_the_asr_weights(capability: tuple[int, int]):
    asr, llm, diarizer = (family_for(kind).makeup for kind in ("nemo-asr", "salm", "sortformer"))
    assert choose_precision("cuda", capability, "auto", asr) == Precision("bfloat16")
    assert choose_precision("cuda", capability, "auto", llm) == Precision(
        "bfloat16", "bfloat16", llm="bfloat16"
    )
    assert choose_precision("cuda", capability, "auto", diarizer) == Precision("float32", autocast="bfloat16")


def test_older_cards_and_the_cpu_keep_their_rules():
    asr = family_for("nemo-asr").makeup
    assert choose_precision("cuda", (7, 5), "auto", asr).encoder_autocast == "float16"
    assert choose_precision("cuda", (7, 5), "auto", asr).weights == "float32"
    assert choose_precision("cuda", (6, 1), "auto", asr).weights == "float32"
    assert choose_precision("cpu", None, "auto", asr) == Precision("float32")
    assert choose_precision("cuda", (9, 0), "float32", asr) == Precision("float32")


def test_the_tiny_model_cast_to_bfloat16_still_says_the_phrase(
    exported_project: Project, monkeypatch: pytest.MonkeyPatch
):
    """The store's real load path, the precision a native-bfloat16 GPU gets (on the CPU)."""
    import localstt.store

    store = ModelStore(load_config(exported_project.config))
    monkeypatch.setattr(
        localstt.store, "pick_device_and_precision", lambda config, family: ("cpu", Precision("bfloat16"))
    )
    transcript = engine.transcribe(PHRASE_WAV, "parakeet", store.config.transcription, store)
    loaded = store.loaded("parakeet")
    assert loaded is not None
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
    assert transcript.text == PHRASE
    # Full attention's memory estimate counts 2 bytes an element for scores and softmax alike.
    assert score_bytes(loaded) == (2, 2)
    assert (
        attention_plan(loaded, 60.0, store.config.transcription.of(type(loaded.family).options_type)).mode
        == "full"
    )
