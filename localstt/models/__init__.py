"""The model families, one module each, and the registry that maps config.toml's `kind` to them.

* parakeet.py     `kind = "nemo-asr"`: Parakeet-TDT (a `.nemo` archive)       Transcriber, Streamer
  parakeet_live.py  its live decoder: NeMo's buffered streaming pipeline over the loaded model
* canary_qwen.py  `kind = "salm"`: Canary-Qwen (NeMo's speech-LLM, safetensors) Transcriber, Answerer
* canary_multitask.py  `kind = "nemo-multitask"`: Canary-1B-v2 (a `.nemo`)  Transcriber, SpokenLanguage
* sortformer.py   `kind = "sortformer"`: Sortformer, the speaker diarizer      Diarizer

family.py says what a family is and keeps the registry; capabilities.py says what a family can do.
A new family is one more module here, imported below.
"""

from __future__ import annotations

from localstt.models.capabilities import (
    Answerer,
    Diarizer,
    LiveChunk,
    LiveDecoder,
    LiveUpdate,
    PhraseBooster,
    Progress,
    SegmentsDone,
    SpokenLanguage,
    Streamer,
    Transcribed,
    Transcriber,
)
from localstt.models.family import (
    LoadedModel,
    ModelFamily,
    ModelLock,
    families,
    family_for,
    register,
    unregister,
)

# Each module registers its family on import, in this order (the order config errors list them).
# isort: off
from localstt.models import parakeet
from localstt.models import canary_qwen  # noqa: F401
from localstt.models import canary_multitask  # noqa: F401
from localstt.models import sortformer  # noqa: F401
# isort: on

DEFAULT_KIND = parakeet.PARAKEET.kind  # a [models.*] table without `kind`

__all__ = [
    "DEFAULT_KIND",
    "Answerer",
    "Diarizer",
    "LiveChunk",
    "LiveDecoder",
    "LiveUpdate",
    "LoadedModel",
    "ModelFamily",
    "ModelLock",
    "PhraseBooster",
    "Progress",
    "SegmentsDone",
    "SpokenLanguage",
    "Streamer",
    "Transcribed",
    "Transcriber",
    "families",
    "family_for",
    "register",
    "unregister",
]
