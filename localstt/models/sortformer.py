"""Sortformer (NeMo's streaming speaker diarizer, `kind = "sortformer"`): one `.nemo` archive per
export, as Parakeet. Not a transcription model: the engine runs it beside one when the user asks
who spoke (localstt/speakers.py merges its turns with the words).

Load: the archive's small members unpacked once beside it and its weights read with
`torch.load(weights_only=True)` (localstt/loading/nemo_archive.py's plain load: its class cannot be
built on the meta device), float32 weights, under autocast on a GPU as Parakeet.

Diarize: the whole recording in streaming mode, with the streaming settings saved in the export,
whose speaker cache keeps the speakers' identities over hours; at most 4 speakers, 80 ms frames.
NeMo computes the whole recording's spectrogram first, about 40 MB per minute of audio at the peak
(benchmarks/speakers.py).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from localstt.audio import DecodedAudio
from localstt.loading.nemo_archive import UNPACKED_PATH_MARGIN, plan_one_nemo
from localstt.loading.nemo_restore import load_nemo
from localstt.manifest import Manifest
from localstt.models.capabilities import Diarizer, Progress
from localstt.models.family import LoadedModel, ModelFamily, register
from localstt.precision import ModelMakeup, Precision, autocast_context
from localstt.spec import ModelSpec
from localstt.transcript import SpeakerTurn

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from localstt.hub import RemoteFile

logger = logging.getLogger(__name__)


class Sortformer(ModelFamily, Diarizer):
    kind: ClassVar[str] = "sortformer"
    runtime_module: ClassVar[str] = "nemo.collections.asr"
    runtime_name: ClassVar[str] = "NeMo"
    makeup: ClassVar[ModelMakeup] = ModelMakeup("Sortformer")
    suggested_table: ClassVar[tuple[str, str]] = ("sortformer", "nvidia/diar_streaming_sortformer_4spk-v2")
    loader_path_margin: ClassVar[int] = UNPACKED_PATH_MARGIN

    def plan(self, api: HfApi, spec: ModelSpec) -> list[RemoteFile]:
        return plan_one_nemo(api, spec)

    def load(
        self, export_dir: Path, manifest: Manifest, device: str, precision: Precision
    ) -> tuple[Any, str]:
        # Plain: SortformerEncLabelModel.__init__ moves its parts with .to(device), which a model
        # built on the meta device cannot do; at 0.5 GB the second copy of the weights is brief.
        return load_nemo(export_dir, manifest, device, "SortformerEncLabelModel", mapped=False)

    def diarize(self, loaded: LoadedModel, audio: DecodedAudio, progress: Progress) -> list[SpeakerTurn]:
        import torch  # with the model, not before

        model = loaded.model  # the engine has said "identifying speakers"
        # diarize() prints a "Streaming Steps" progress bar to stderr even with verbose=False
        with (
            torch.inference_mode(),
            autocast_context(loaded.device, loaded.precision.autocast),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            results = model.diarize(
                audio=[audio.samples], sample_rate=audio.sample_rate, batch_size=1, verbose=False
            )
        turns = parse_turns(results[0])
        logger.info("%s: %d speaker turns", loaded.spec.key, len(turns))
        return turns


def parse_turns(lines: Sequence[str]) -> list[SpeakerTurn]:
    """Sortformer's "begin end speaker_k" lines as turns sorted by time, speakers renumbered in
    order of first appearance. Blank lines and empty turns (end <= begin) are skipped; a
    malformed line raises ``ValueError``."""
    raw: list[tuple[float, float, str]] = []
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise ValueError(f"not a 'begin end speaker' line: {line!r}")
        start, end = float(fields[0]), float(fields[1])
        if end <= start:
            logger.debug("skipping empty speaker turn %r", line)
            continue
        raw.append((start, end, fields[2]))
    raw.sort(key=lambda t: (t[0], t[1], _label_order(t[2])))
    numbers: dict[str, int] = {}
    turns = []
    for start, end, label in raw:
        speaker = numbers.setdefault(label, len(numbers))
        turns.append(SpeakerTurn(start, end, speaker))
    return turns


def _label_order(label: str) -> tuple[int, str]:
    # "speaker_10" after "speaker_9", should two turns start and end at the same time
    head, _, tail = label.rpartition("_")
    return (int(tail), head) if tail.isdigit() else (-1, label)


SORTFORMER = register(Sortformer())
