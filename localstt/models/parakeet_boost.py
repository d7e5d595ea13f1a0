"""Parakeet's phrase boosting: NeMo's GPU phrase boosting (GPU-PB), a boosting tree fused into the
label-looping `greedy_batch` decoder (NeMo 3.0's `BoostingTreeModelConfig`).

The tree's settings are NeMo's dataclass defaults, which NVIDIA's word-boosting guide recommends for
TDT (`context_score` 1.0, `depth_scaling` 2.0); the strength is the user's (`boosting_tree_alpha`).
A decoding is global to the model, so one boosted decoding is built per phrase list
(`change_decoding_strategy`, timestamps on, so that `transcribe(timestamps=True)` never rebuilds it),
kept on the loaded model, and swapped in for a job's model calls; the decoding that was there before
is put back after them. Triton runs the tree only on a GPU.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from localstt.models.family import LoadedModel
from localstt.spec import Vocabulary

# NeMo's `BoostingTreeModelConfig` defaults, as NVIDIA's word-boosting guide recommends for TDT
CONTEXT_SCORE = 1.0
DEPTH_SCALING = 2.0


def phrase_problem(loaded: LoadedModel, phrase: str) -> str:
    """Why the model's tokenizer cannot spell `phrase`, or "": a piece it does not know, or a spelling
    that does not read back as the phrase."""
    tokenizer = loaded.model.tokenizer
    ids = [int(i) for i in tokenizer.text_to_ids(phrase)]
    unknown = getattr(tokenizer, "unk_id", None)
    if (unknown is not None and unknown in ids) or " ".join(tokenizer.ids_to_text(ids).split()) != phrase:
        return (
            f"The model cannot spell the phrase {phrase!r} (its tokenizer has no pieces for some of its "
            "characters); write it as the model writes words, or leave it out."
        )
    return ""


@contextmanager
def boosting(loaded: LoadedModel, vocabulary: Vocabulary) -> Iterator[None]:
    """Within the block, decode with `vocabulary`'s phrases boosted; as before after it."""
    if not vocabulary.phrases:
        yield
        return
    model = loaded.model
    before = decoding_state(model)
    key = f"boosted decoding {vocabulary.phrases_key}"
    if key not in loaded.cache:
        loaded.cache[key] = _build(model, vocabulary, use_triton=loaded.device == "cuda")
    put_decoding(model, loaded.cache[key])
    try:
        yield
    finally:
        put_decoding(model, before)


def _build(model: Any, vocabulary: Vocabulary, use_triton: bool) -> tuple[Any, ...]:
    """The boosted decoding's state, built once; the model's own is put back."""
    from nemo.collections.asr.parts.context_biasing.boosting_graph_batched import (  # NeMo: with the model
        BoostingTreeModelConfig,
    )
    from omegaconf import OmegaConf, open_dict  # NeMo's config library: with the model, not before

    before = decoding_state(model)
    config = copy.deepcopy(model.cfg.decoding)
    with open_dict(config):
        config.strategy = "greedy_batch"  # NeMo boosts only greedy_batch (and beam) decoding of TDT
        config.compute_timestamps = True
        config.greedy.loop_labels = True
        config.greedy.boosting_tree = OmegaConf.structured(
            BoostingTreeModelConfig(
                key_phrases_list=list(vocabulary.phrases),
                context_score=CONTEXT_SCORE,
                depth_scaling=DEPTH_SCALING,
                use_triton=use_triton,
            )
        )
        config.greedy.boosting_tree_alpha = vocabulary.strength
    model.change_decoding_strategy(config, verbose=False)
    boosted = decoding_state(model)
    put_decoding(model, before)
    return boosted


def decoding_state(model: Any) -> tuple[Any, ...]:
    """What `change_decoding_strategy` sets: the decoding, the WER metric, the joint's temperature and
    the decoding config (a later rebuild reads it)."""
    return (model.decoding, model.wer, model.joint.temperature, copy.deepcopy(model.cfg.decoding))


def put_decoding(model: Any, state: tuple[Any, ...]) -> None:
    from omegaconf import open_dict  # NeMo's config library: with the model, not before

    model.decoding, model.wer, model.joint.temperature, config = state
    with open_dict(model.cfg):
        model.cfg.decoding = copy.deepcopy(config)
