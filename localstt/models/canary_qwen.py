"""Canary-Qwen (NeMo's speech-LLM `SALM`, `kind = "salm"`): a folder of upstream files per export.

Export: canary's config.json and safetensors unchanged, plus the LLM's tokenizer at the root and its
config.json in llm_backbone/ (NeMo 3.0 builds the LLM from those; its weights are never fetched).
Load: localstt/loading/speechlm.py. Transcribe: windows of at most `canary_window_seconds` cut at quiet
points, several at once; given many recordings, their windows are pooled, longest first, so that a
folder of short voice notes still fills each batch (the Open ASR leaderboard's recipe, up to 192 at
once). It can also answer questions about a transcript (its LLM, adapter off).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from localstt import memory
from localstt.audio import DecodedAudio, silence, split_at_quiet_points
from localstt.errors import HubError
from localstt.loading.speechlm import load_salm
from localstt.manifest import Manifest
from localstt.models.capabilities import Answerer, Progress, SegmentsDone, Transcribed, Transcriber
from localstt.models.family import LoadedModel, ModelFamily, register
from localstt.precision import ModelMakeup, Precision, autocast_context
from localstt.spec import FamilyOptions, Limit, ModelSpec, setting
from localstt.transcript import Segment

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from localstt.hub import RemoteFile

SAMPLE_RATE = 16000
AUTO_WINDOWS = 192  # the most windows "auto" runs at once: the Open ASR leaderboard's batch
# ... on the CPU, where 24 at once was no faster than 8 at full size (docs/benchmarks.md), and where a
# batch of 40 s windows takes minutes that the progress and a waiting live step sit out.
CPU_AUTO_WINDOWS = 8
AUTO_MEMORY_SHARE = 0.8  # "auto" plans to use at most this share of the free memory
MODEL_FILE_PATTERNS = {
    "config.json": "{name}",
    "*.safetensors": "{name}",
    "*.safetensors.index.json": "{name}",
}
# SALM builds its LLM from a tokenizer beside config.json and the LLM's config in llm_backbone/
# (nemo.collections.speechlm2.parts.hf_hub._inject_local_artifact_paths); no LLM weights are needed.
LLM_FILE_PATTERNS = {
    "tokenizer.json": "{name}",
    "tokenizer_config.json": "{name}",
    "vocab.json": "{name}",
    "merges.txt": "{name}",
    "special_tokens_map.json": "{name}",
    "added_tokens.json": "{name}",
    "config.json": "llm_backbone/config.json",
    "generation_config.json": "llm_backbone/generation_config.json",
}


@dataclass(frozen=True)
class CanaryQwenOptions(FamilyOptions):
    # Canary-Qwen reads at most about 40 s per prompt; this many windows at once (halved on OOM).
    canary_window_seconds: float = setting(
        40.0,
        Limit(
            0, False, 40, False, "a number of seconds above 0 and at most 40 (Canary-Qwen reads at most 40 s)"
        ),
    )
    # "auto": as many windows as the memory free now holds (at most AUTO_WINDOWS; CPU_AUTO_WINDOWS on
    # the CPU), or a whole number.
    canary_batch_size: int | str = setting(
        "auto", Limit(1, True, None, True, 'a whole number, 1 or more, or "auto"', words=("auto",))
    )
    canary_max_new_tokens: int = setting(320, Limit(1, True, None, True, "a whole number, 1 or more"))


class CanaryQwen(ModelFamily, Transcriber[CanaryQwenOptions], Answerer):
    kind: ClassVar[str] = "salm"
    runtime_module: ClassVar[str] = "nemo.collections.asr"
    runtime_name: ClassVar[str] = "NeMo"
    makeup: ClassVar[ModelMakeup] = ModelMakeup(
        "Canary-Qwen", language_model="about 10 GB for Canary-Qwen's 2.5 B parameters"
    )
    options_type: ClassVar[type[FamilyOptions]] = CanaryQwenOptions
    has_word_times: ClassVar[bool] = False

    def check_spec(self, spec: ModelSpec) -> str | None:
        if spec.llm_repo.count("/") != 1:
            return f'is a {self.kind} model and needs llm_repo = "org/name".'
        return None

    def plan(self, api: HfApi, spec: ModelSpec) -> list[RemoteFile]:
        from localstt.hub import list_files  # huggingface_hub: only the export needs it

        files = list_files(api, spec.repo, spec.revision, MODEL_FILE_PATTERNS)
        if not any(f.path == "config.json" for f in files) or not any(
            f.path.endswith(".safetensors") for f in files
        ):
            raise HubError(
                f"{spec.repo}@{spec.short_revision} has no config.json + model.safetensors; is kind right?"
            )
        llm_files = list_files(api, spec.llm_repo, spec.llm_revision, LLM_FILE_PATTERNS)
        if not any(f.path == "tokenizer_config.json" for f in llm_files):
            raise HubError(f"{spec.llm_repo}@{spec.llm_revision[:12]} has no tokenizer_config.json.")
        return sorted(files + llm_files, key=lambda f: f.size)

    def check_downloaded(self, staging: Path, spec: ModelSpec, destination: str) -> None:
        if destination == "config.json":
            self.check_staged(staging, spec)

    def check_staged(self, staging: Path, spec: ModelSpec) -> None:
        """The LLM canary's config.json names must be the one config.toml pins."""
        named = json.loads((staging / "config.json").read_text(encoding="utf-8")).get("pretrained_llm")
        if named != spec.llm_repo:
            raise HubError(
                f'{spec.repo} names {named} as its LLM but config.toml has llm_repo = "{spec.llm_repo}"; '
                f'set llm_repo = "{named}" and llm_revision = "" in [models.{spec.key}].'
            )

    def load(
        self, export_dir: Path, manifest: Manifest, device: str, precision: Precision
    ) -> tuple[Any, str]:
        if device == "cuda":
            import torch  # with the model, not before

            # As the Open ASR leaderboard runs it: float32 matrix products (the parts not cast to
            # bfloat16 or float16) may use TensorFloat-32 where the card has it. For the whole process.
            torch.set_float32_matmul_precision("medium")
        return load_salm(export_dir, device, precision)

    def transcribe(
        self,
        loaded: LoadedModel,
        audio: DecodedAudio,
        options: CanaryQwenOptions,
        progress: Progress,
        segments_done: SegmentsDone | None = None,
    ) -> Transcribed:
        """Windows of at most canary_window_seconds, in order, `canary_batch_size` at a time."""
        return _run_windows(loaded, [audio], options, progress, segments_done)[0]

    def transcribe_batch(
        self,
        loaded: LoadedModel,
        audios: Sequence[DecodedAudio],
        options: CanaryQwenOptions,
        progress: Progress,
    ) -> list[Transcribed]:
        """The windows of every recording pooled, longest first (so that each batch pads little), run
        `canary_batch_size` at a time, and each recording's put back together."""
        return _run_windows(loaded, audios, options, progress, None)

    def first_run(self, loaded: LoadedModel) -> None:
        _transcribe_windows(loaded, [silence(1.0).samples], CanaryQwenOptions(canary_max_new_tokens=1))

    def ask(self, loaded: LoadedModel, transcript_text: str, question: str, max_new_tokens: int) -> str:
        import torch  # with the model, not before
        from nemo.collections.common.prompts import PromptFormatter  # NeMo: ~10 s to import, so not before

        model = loaded.model
        turns = [{"role": "user", "content": f"{question.strip()}\n\nTranscript:\n{transcript_text.strip()}"}]
        formatter = PromptFormatter.resolve(model.cfg.prompt_format)(model.tokenizer)
        prompt_ids = torch.as_tensor(formatter.encode_dialog(turns=turns)["input_ids"]).unsqueeze(0)
        with (
            torch.inference_mode(),
            model.llm.disable_adapter(),
            autocast_context(loaded.device, loaded.precision.autocast),
        ):
            ids = model.generate(prompts=prompt_ids.to(loaded.device), max_new_tokens=max_new_tokens)
        # Text-only generation returns the prompt followed by the reply.
        reply = [int(t) for t in ids[0, prompt_ids.shape[1] :].cpu()]
        if model.text_eos_id in reply:
            reply = reply[: reply.index(model.text_eos_id)]
        return str(model.tokenizer.ids_to_text(reply))


@dataclass(frozen=True)
class Window:
    recording: int  # its index among the recordings run together
    start: int  # samples
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def _run_windows(
    loaded: LoadedModel,
    audios: Sequence[DecodedAudio],
    options: CanaryQwenOptions,
    progress: Progress,
    segments_done: SegmentsDone | None,
) -> list[Transcribed]:
    """(segments, notes) of each of `audios`. On running out of memory the batch is halved (down to
    1) and redone, and stays that small for the rest of the run."""
    windows = [
        Window(recording, start, end)
        for recording, audio in enumerate(audios)
        for start, end in split_at_quiet_points(audio.samples, SAMPLE_RATE, options.canary_window_seconds)
    ]
    if len(audios) > 1:
        windows.sort(key=lambda window: -window.length)
    segments: list[list[Segment]] = [[] for _ in audios]
    notes: list[list[str]] = [[] for _ in audios]
    size = windows_at_once(loaded, options)
    first = 0
    while first < len(windows):
        loaded.lock.yield_to_first()  # a live step waiting for the model goes between two batches
        batch = windows[first : first + size]
        where = 0.1 + 0.85 * first / len(windows)
        progress(where, f"window {first + 1}-{first + len(batch)} of {len(windows)}")
        ran_out: memory.OutOfMemoryKind = ""
        try:
            texts = _transcribe_windows(
                loaded, [audios[w.recording].samples[w.start : w.end] for w in batch], options
            )
        except Exception as error:
            ran_out = memory.out_of_memory(error) if len(batch) > 1 else ""
            if not ran_out:
                raise
        if ran_out:  # here, not in the `except` block, so that the failed batch's tensors are freed
            memory.release_memory(loaded.device)
            size = max(1, len(batch) // 2)
            message = f"{memory.ran_out(ran_out)} with {len(batch)} windows at once; now {size} at a time"
            progress(where, message)
            for recording in sorted({w.recording for w in windows[first:]}):
                notes[recording].append(f"{message}, from window {first + 1} on")
            continue
        done = [
            (w.recording, Segment(round(w.start / SAMPLE_RATE, 3), round(w.end / SAMPLE_RATE, 3), text))
            for w, text in zip(batch, texts, strict=True)
            if text
        ]
        for recording, segment in done:
            segments[recording].append(segment)
        if segments_done is not None and done:
            segments_done([segment for _, segment in done])
        first += len(batch)
    return [
        (sorted(found, key=lambda segment: segment.start), said)
        for found, said in zip(segments, notes, strict=True)
    ]


def windows_at_once(loaded: LoadedModel, options: CanaryQwenOptions) -> int:
    """`canary_batch_size`, "auto" resolved: as many windows as AUTO_MEMORY_SHARE of the memory free
    now holds by `window_bytes`' estimate, at least 1 and at most AUTO_WINDOWS (CPU_AUTO_WINDOWS on
    the CPU). Running out anyway halves the batch (`_run_windows`)."""
    if options.canary_batch_size != "auto":
        return max(1, int(options.canary_batch_size))
    most = AUTO_WINDOWS if loaded.device == "cuda" else CPU_AUTO_WINDOWS
    per_window = window_bytes(loaded.model, options, loaded.precision.llm or loaded.precision.weights)
    fit = int(memory.free_memory_bytes(loaded.device) * AUTO_MEMORY_SHARE // per_window)
    return max(1, min(most, fit))


def window_bytes(model: Any, options: CanaryQwenOptions, llm_dtype: str) -> int:
    """An estimate of one window's memory while it is transcribed: the language model's key-value
    cache over the window's audio embeddings (one per 80 ms), the prompt and the new tokens, twice
    over for the activations around it."""
    config = model.llm.config
    layers = int(config.num_hidden_layers)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
    tokens = int(options.canary_window_seconds / 0.08) + 64 + options.canary_max_new_tokens
    dtype_bytes = 4 if llm_dtype == "float32" else 2
    return 2 * layers * 2 * kv_heads * head_dim * tokens * dtype_bytes


def _decode_ids(model: Any, ids: Any) -> str:
    eos = model.text_eos_id
    tokens = [int(t) for t in ids]
    if eos in tokens:
        tokens = tokens[: tokens.index(eos)]
    text = model.tokenizer.ids_to_text(tokens)
    return re.sub(r"<\|[^|>]*\|>", "", text).strip()


def _transcribe_windows(
    loaded: LoadedModel, pieces: list[np.ndarray], options: CanaryQwenOptions
) -> list[str]:
    """Canary-Qwen's text for each piece of audio (a window), all at once."""
    import torch  # with the model, not before

    model = loaded.model
    prompt = [{"role": "user", "content": f"Transcribe the following: {model.audio_locator_tag}"}]
    lengths = [len(piece) for piece in pieces]
    padded = np.zeros((len(pieces), max(lengths)), dtype=np.float32)
    for row, piece in enumerate(pieces):
        padded[row, : len(piece)] = piece
    with torch.inference_mode(), autocast_context(loaded.device, loaded.precision.autocast):
        ids = model.generate(
            prompts=[prompt] * len(pieces),
            max_new_tokens=options.canary_max_new_tokens,
            audios=torch.from_numpy(padded).to(loaded.device),
            audio_lens=torch.tensor(lengths, dtype=torch.long, device=loaded.device),
        )
    return [_decode_ids(model, row) for row in ids.cpu()]


CANARY_QWEN = register(CanaryQwen())
