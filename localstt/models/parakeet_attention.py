"""Parakeet's switch to local attention for long audio, and back, without rebuilding the encoder.

NeMo's `change_attention_model` builds a new attention module for each of the encoder's layers (24
in Parakeet-TDT-0.6B: random weights first, about 0.5 GB, then the old weights copied in) and a new
positional encoding, every time it is called: twice per long recording. Here that happens once per
loaded model: the first switch keeps both sets, the local modules' parameters made the very tensors
of the full ones (no second copy of the weights), and every later switch only puts the kept modules
in place. The transcript is the same either way (tests/test_long_audio.py).

The local window is NeMo's `rel_pos_local_attn` with 256 frames (about 20 s) each side; NVIDIA's
published long-form figure (the Open ASR Leaderboard's long-form track) uses [128, 128]. The wider
window keeps more context for the same linear memory.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from localstt.models.family import LoadedModel

LOCAL = ("rel_pos_local_attn", [256, 256])


@contextmanager
def local_attention(loaded: LoadedModel, enabled: bool) -> Iterator[None]:
    """Within the block, local attention with chunked subsampling; the model as before after it, its
    config included, whatever happened."""
    if not enabled:
        yield
        return
    from omegaconf import open_dict  # NeMo's config library: with the model, not before

    model = loaded.model
    encoder = model.encoder
    chunking = encoder.subsampling_conv_chunking_factor
    saved_cfg = copy.deepcopy(model.cfg.encoder)
    full = _attention(encoder)
    local = loaded.cache.get("local attention")
    try:
        if local is None:
            model.change_attention_model(*LOCAL)
            local = _attention(encoder)
            _share_weights(local, full)
            loaded.cache["local attention"] = local
        else:
            _put(encoder, local)
        model.change_subsampling_conv_chunking_factor(1)
        yield
    finally:
        _put(encoder, full)
        model.change_subsampling_conv_chunking_factor(chunking)
        with open_dict(model.cfg):
            model.cfg.encoder = saved_cfg


def _layers(encoder: Any) -> list[Any]:
    from nemo.collections.asr.parts.submodules.conformer_modules import ConformerLayer  # NeMo: with the model

    return [module for module in encoder.modules() if type(module) is ConformerLayer]


def _attention(encoder: Any) -> dict[str, Any]:
    """What `change_attention_model` changes: the positional encoding, each layer's attention, the
    names and context sizes."""
    return {
        "model": encoder.self_attention_model,
        "context": list(encoder.att_context_size),
        "pos_enc": encoder.pos_enc,
        "self_attn": [layer.self_attn for layer in _layers(encoder)],
    }


def _put(encoder: Any, attention: dict[str, Any]) -> None:
    from omegaconf import open_dict  # NeMo's config library: with the model, not before

    encoder.pos_enc = attention["pos_enc"]
    encoder.self_attention_model = attention["model"]
    encoder.att_context_size = list(attention["context"])
    encoder.set_max_audio_length(encoder.pos_emb_max_len)
    for layer, module in zip(_layers(encoder), attention["self_attn"], strict=True):
        layer.self_attn = module
        layer.self_attention_model = attention["model"]
    with open_dict(encoder._cfg):  # as change_attention_model leaves it
        encoder._cfg.self_attention_model = attention["model"]
        encoder._cfg.att_context_size = list(attention["context"])


def _share_weights(local: dict[str, Any], full: dict[str, Any]) -> None:
    """The local modules' parameters become the full modules' own (the same tensors, one copy)."""
    for local_module, full_module in zip(local["self_attn"], full["self_attn"], strict=True):
        owned = dict(full_module.named_parameters())
        for name, _ in list(local_module.named_parameters()):
            path, _, leaf = name.rpartition(".")
            holder = local_module.get_submodule(path) if path else local_module
            if name in owned:
                setattr(holder, leaf, owned[name])
