"""Long audio without rebuilding (localstt/models/parakeet_attention.py): the first switch to local
attention builds the local modules once per loaded model (their weights the full ones' own), every
later switch only puts them in place, the transcript is the same as NeMo's own switch gives, and the
model is back to full attention afterwards."""

from __future__ import annotations

import pytest

from localstt import engine
from localstt.config import load_config
from localstt.store import ModelStore
from testkit.store_env import Project
from testkit.tiny_models import PHRASE_DIALOGUE_WAV, PHRASE_WAV


def test_the_second_long_recording_builds_no_module(
    exported_project: Project, monkeypatch: pytest.MonkeyPatch
):
    from nemo.collections.asr.parts.submodules import multi_head_attention

    store = ModelStore(load_config(exported_project.config))
    local = store.config.transcription.replace(full_attention_max_minutes=0)  # every recording is "long"
    built: list[str] = []
    longformer = multi_head_attention.RelPositionMultiHeadAttentionLongformer
    real_init = longformer.__init__

    def counted(self: object, *args: object, **kwargs: object) -> None:
        built.append(type(self).__name__)
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(longformer, "__init__", counted)
    first = engine.transcribe(PHRASE_DIALOGUE_WAV, "parakeet", local, store)
    layers = len(built)
    assert layers >= 2  # the first switch built one local module per layer
    second = engine.transcribe(PHRASE_WAV, "parakeet", local, store)
    again = engine.transcribe(PHRASE_DIALOGUE_WAV, "parakeet", local, store)
    assert len(built) == layers  # the later switches built none
    assert again.text == first.text and [w.start for w in again.words] == [w.start for w in first.words]
    assert "local attention" in first.notes[0] and "local attention" in second.notes[0]

    loaded = store.loaded("parakeet")
    assert loaded is not None
    encoder = loaded.model.encoder
    assert encoder.self_attention_model == "rel_pos" and encoder._cfg.self_attention_model == "rel_pos"
    for layer_attention, kept in zip(
        [m.self_attn for m in encoder.modules() if hasattr(m, "self_attn")],
        loaded.cache["local attention"]["self_attn"],
        strict=True,
    ):
        assert type(layer_attention).__name__ == "RelPositionMultiHeadAttention"
        assert kept.linear_q.weight is layer_attention.linear_q.weight  # one copy of the weights

    # The same transcript as NeMo's own switch on a model that never had these modules.
    fresh = ModelStore(load_config(exported_project.config))
    with fresh.use("parakeet") as model, model.lock:
        model.model.change_attention_model("rel_pos_local_attn", [256, 256])
        model.model.change_subsampling_conv_chunking_factor(1)
    nemo_own = engine.transcribe(PHRASE_DIALOGUE_WAV, "parakeet", fresh.config.transcription, fresh)
    assert nemo_own.text == first.text
    full = engine.transcribe(PHRASE_DIALOGUE_WAV, "parakeet", store.config.transcription, store)
    assert "full attention" in full.notes[0]
