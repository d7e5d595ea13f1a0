"""The transcription engine: audio in, Transcript out. The CLI and the web app both call `transcribe`."""

from __future__ import annotations

import copy
import gc
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from localstt import memory
from localstt.audio import DecodedAudio, decode_audio, split_at_quiet_points
from localstt.config import TranscriptionSettings
from localstt.transcript import Segment, Transcript, Word

SAMPLE_RATE = 16000
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class TranscribeOptions(TranscriptionSettings):
    """Everything the caller can choose about one transcription: config.toml's [transcription]
    settings (localstt.config.TranscriptionSettings, which says what each does), and the rest."""

    canary_max_new_tokens: int = 320

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> TranscribeOptions:
        """The options config.toml's [transcription] asks for; `config` is a localstt.config.AppConfig."""
        return cls(**{**asdict(config.transcription), **overrides})


@dataclass(frozen=True)
class LlmAnswer:
    answer: str
    thinking: str


class EngineError(RuntimeError):
    """Transcription failed in a way the user can act on; the message says how."""


OUT_OF_MEMORY = {
    "GPU": "The GPU ran out of memory: close other GPU programs, or set keep_all_loaded = false "
    "in config.toml, or use a shorter recording.",
    "RAM": "The computer ran out of memory: close other programs, or set keep_all_loaded = false "
    "in config.toml, or use a shorter recording.",
}


def _out_of_memory(error: BaseException) -> str:
    """ "GPU" for a GPU out-of-memory error, "RAM" for the CPU allocator's, "" for any other error."""
    import torch

    if isinstance(error, torch.OutOfMemoryError) or type(error).__name__ == "OutOfMemoryError":
        return "GPU"
    if isinstance(error, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(error):
        return "RAM"
    return ""


def _ran_out(kind: str) -> str:
    return "the GPU ran out of memory" if kind == "GPU" else "the computer ran out of memory"


def _release_memory(device: str) -> None:
    """Free what a failed attempt left behind (call outside its `except` block, whose traceback holds
    the attempt's tensors), and hand PyTorch's cached GPU memory back."""
    import torch

    gc.collect()
    if str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()


_model_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(model: Any) -> threading.Lock:
    """One GPU model is never run by two requests at once."""
    with _locks_guard:
        return _model_locks.setdefault(id(model), threading.Lock())


def _autocast(device: str, dtype_name: str | None) -> Any:
    """torch.autocast in `dtype_name` (a loaded model's `precision.autocast`) on a GPU, else nothing.

    Where only the speech encoder runs under autocast, the loader installed that (localstt/precision.py).
    """
    import torch

    if device == "cuda" and dtype_name in ("bfloat16", "float16"):
        return torch.autocast("cuda", dtype=getattr(torch, dtype_name))
    return nullcontext()


@contextmanager
def _local_attention(model: Any, enabled: bool) -> Iterator[None]:
    """Switch Parakeet to local attention for long audio and always switch back, config included."""
    if not enabled:
        yield
        return
    from omegaconf import open_dict

    encoder = model.encoder
    attention = (encoder.self_attention_model, list(encoder.att_context_size))
    chunking = encoder.subsampling_conv_chunking_factor
    saved_cfg = copy.deepcopy(model.cfg.encoder)
    try:
        model.change_attention_model("rel_pos_local_attn", [256, 256])
        model.change_subsampling_conv_chunking_factor(1)
        yield
    finally:
        model.change_attention_model(attention[0], attention[1])
        model.change_subsampling_conv_chunking_factor(chunking)
        with open_dict(model.cfg):
            model.cfg.encoder = saved_cfg


def _parakeet_segments(hypothesis: Any, offset: float = 0.0) -> list[Segment]:
    stamps = getattr(hypothesis, "timestamp", None) or {}
    words = [
        Word(str(w["word"]), round(float(w["start"]) + offset, 3), round(float(w["end"]) + offset, 3))
        for w in stamps.get("word", [])
    ]
    segments: list[Segment] = []
    for raw in stamps.get("segment", []):
        start, end = float(raw["start"]) + offset, float(raw["end"]) + offset
        inside = tuple(w for w in words if start - 1e-3 <= w.start and w.end <= end + 1e-3)
        segments.append(Segment(round(start, 3), round(end, 3), str(raw["segment"]).strip(), inside))
    if not segments and words:
        segments.append(Segment(words[0].start, words[-1].end, " ".join(w.text for w in words), tuple(words)))
    return segments


def _score_bytes(loaded: Any) -> tuple[int, int]:
    """Bytes of one attention-score element and of one softmax element in Parakeet's encoder."""
    import torch

    amp = loaded.precision.autocast or loaded.precision.encoder_autocast
    if loaded.device == "cuda" and amp in ("bfloat16", "float16"):
        # NeMo's attention turns float16 autocast into bfloat16 where the GPU has it natively (see
        # precision.native_bf16_in_nemo_attention), else float32.
        low = 2 if amp == "bfloat16" or torch.cuda.is_bf16_supported(including_emulation=False) else 4
        return low, 4  # autocast runs softmax in float32
    weights = next(loaded.model.parameters()).dtype.itemsize
    return weights, weights


def _attention_plan(loaded: Any, duration: float, options: TranscribeOptions) -> memory.AttentionPlan:
    """Full or local attention for this recording, from its length and the memory free right now."""
    score, softmax = _score_bytes(loaded)
    dims = memory.attention_dims(loaded.model, dtype_bytes=score, softmax_bytes=softmax)
    return memory.choose_attention(
        duration,
        memory.free_memory_bytes(loaded.device),
        dims,
        full_attention_max_minutes=options.full_attention_max_minutes,
        memory_fraction=options.attention_memory_fraction,
        device=str(loaded.device),
    )


def _run_parakeet(loaded: Any, audio: DecodedAudio, options: TranscribeOptions, local: bool) -> Any:
    import torch

    model = loaded.model
    with (
        _local_attention(model, local),
        torch.inference_mode(),
        _autocast(loaded.device, loaded.precision.autocast),
    ):
        hypotheses = model.transcribe(
            [audio.samples],
            batch_size=options.parakeet_batch_size,
            timestamps=True,
            verbose=False,
        )
    return hypotheses[0] if isinstance(hypotheses, list) else hypotheses[0][0]


def _transcribe_parakeet(
    loaded: Any, audio: DecodedAudio, options: TranscribeOptions, progress: Progress
) -> tuple[list[Segment], list[str]]:
    """Full attention when the plan allows it; on running out of memory there, once more with local
    attention. The model's attention settings are as before afterwards, whatever happened."""
    with _lock_for(loaded.model):
        plan = _attention_plan(loaded, audio.duration, options)
        progress(0.1, plan.headline)
        progress(0.1, plan.reason)
        notes = [plan.reason]
        ran_out = ""
        try:
            hypothesis = _run_parakeet(loaded, audio, options, local=plan.mode == "local")
        except Exception as error:
            ran_out = _out_of_memory(error) if plan.mode == "full" else ""
            if not ran_out:
                raise
        if ran_out:  # here, not in the `except` block, so that the failed attempt's tensors are freed
            _release_memory(loaded.device)
            progress(0.1, f"{_ran_out(ran_out)} in full attention; transcribing again with local attention")
            hypothesis = _run_parakeet(loaded, audio, options, local=True)
            notes.append(f"{_ran_out(ran_out)} in full attention; transcribed again with local attention")
    segments = _parakeet_segments(hypothesis)
    if not segments and str(hypothesis.text).strip():
        segments = [Segment(0.0, round(audio.duration, 3), str(hypothesis.text).strip())]
    return segments, notes


def _decode_ids(model: Any, ids: Any) -> str:
    eos = model.text_eos_id
    tokens = [int(t) for t in ids]
    if eos in tokens:
        tokens = tokens[: tokens.index(eos)]
    text = model.tokenizer.ids_to_text(tokens)
    return re.sub(r"<\|[^|>]*\|>", "", text).strip()


def _generate(
    model: Any, prompts: list[list[dict[str, Any]]], max_new_tokens: int, **audio: Any
) -> list[str]:
    ids = model.generate(prompts=prompts, max_new_tokens=max_new_tokens, **audio)
    return [_decode_ids(model, row) for row in ids.cpu()]


def _canary_batch(
    loaded: Any, samples: np.ndarray, batch: list[tuple[int, int]], options: TranscribeOptions
) -> list[str]:
    """Canary-Qwen's text for each window (start, end sample) of `batch`, all at once."""
    import torch

    model = loaded.model
    prompt = [{"role": "user", "content": f"Transcribe the following: {model.audio_locator_tag}"}]
    lengths = [end - start for start, end in batch]
    padded = np.zeros((len(batch), max(lengths)), dtype=np.float32)
    for row, (start, end) in enumerate(batch):
        padded[row, : end - start] = samples[start:end]
    with _lock_for(model), torch.inference_mode(), _autocast(loaded.device, loaded.precision.autocast):
        return _generate(
            model,
            [prompt] * len(batch),
            options.canary_max_new_tokens,
            audios=torch.from_numpy(padded).to(loaded.device),
            audio_lens=torch.tensor(lengths, dtype=torch.long, device=loaded.device),
        )


def _transcribe_canary(
    loaded: Any, audio: DecodedAudio, options: TranscribeOptions, progress: Progress
) -> tuple[list[Segment], list[str]]:
    """Windows of at most canary_window_seconds, canary_batch_size at a time; on running out of memory
    the batch is halved (down to 1) and redone, and stays that small for the rest of the recording."""
    windows = split_at_quiet_points(audio.samples, SAMPLE_RATE, options.canary_window_seconds)
    segments: list[Segment] = []
    notes: list[str] = []
    size = max(1, options.canary_batch_size)
    first = 0
    while first < len(windows):
        batch = windows[first : first + size]
        progress(
            0.1 + 0.85 * first / len(windows), f"window {first + 1}-{first + len(batch)} of {len(windows)}"
        )
        ran_out = ""
        try:
            texts = _canary_batch(loaded, audio.samples, batch, options)
        except Exception as error:
            ran_out = _out_of_memory(error) if len(batch) > 1 else ""
            if not ran_out:
                raise
        if ran_out:  # here, not in the `except` block, so that the failed batch's tensors are freed
            _release_memory(loaded.device)
            size = max(1, len(batch) // 2)
            message = f"{_ran_out(ran_out)} with {len(batch)} windows at once; now {size} at a time"
            progress(0.1 + 0.85 * first / len(windows), message)
            notes.append(f"{message}, from window {first + 1} on")
            continue
        for (start, end), text in zip(batch, texts, strict=True):
            if text:
                segments.append(Segment(round(start / SAMPLE_RATE, 3), round(end / SAMPLE_RATE, 3), text))
        first += len(batch)
    return segments, notes


def transcribe(
    audio: Path | DecodedAudio,
    model_key: str,
    options: TranscribeOptions,
    store: Any,
    progress: Progress | None = None,
) -> Transcript:
    """Transcribe one recording with the model `model_key` from `store` (a model_loader.ModelStore)."""
    report: Progress = progress or (lambda fraction, message: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if isinstance(audio, Path):
        report(0.0, "reading audio")
        decoded = decode_audio(audio, max_seconds=options.max_audio_minutes * 60)
        source_name = audio.name
    else:
        decoded, source_name = audio, ""
    timings["decode_s"] = time.perf_counter() - started
    report(0.05, f"loading {model_key}")
    mark = time.perf_counter()
    loaded = store.load(model_key)
    timings["load_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    try:
        if loaded.spec.kind == "nemo-asr":
            segments, notes = _transcribe_parakeet(loaded, decoded, options, report)
        else:
            segments, notes = _transcribe_canary(loaded, decoded, options, report)
    except Exception as error:
        ran_out = _out_of_memory(error)
        if not ran_out:
            raise
        traceback.clear_frames(error.__traceback__)  # let go of the failed run's tensors
        _release_memory(loaded.device)
        raise EngineError(OUT_OF_MEMORY[ran_out]) from error
    timings["transcribe_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started
    if decoded.duration > 0:
        timings["rtfx"] = decoded.duration / max(timings["transcribe_s"], 1e-9)
    report(1.0, "done")
    return Transcript(
        text=" ".join(segment.text for segment in segments).strip(),
        segments=segments,
        duration=round(decoded.duration, 3),
        model_key=model_key,
        revision=loaded.spec.revision,
        timings={name: round(value, 4) for name, value in timings.items()},
        source_name=source_name,
        notes=notes,
    )


def split_thinking(reply: str) -> LlmAnswer:
    thinking = "\n".join(
        part.strip() for part in re.findall(r"<think>(.*?)(?:</think>|$)", reply, flags=re.S)
    )
    answer = re.sub(r"<think>.*?(?:</think>|$)", "", reply, flags=re.S).strip()
    return LlmAnswer(answer=answer, thinking=thinking.strip())


def ask_llm(
    store: Any, model_key: str, transcript_text: str, question: str, max_new_tokens: int = 512
) -> LlmAnswer:
    """Ask Canary-Qwen's language model (its speech adapter turned off) about a transcript."""
    import torch

    loaded = store.load(model_key)
    if loaded.spec.kind != "salm":
        raise EngineError(f"{model_key} has no language model to ask; pick a Canary-Qwen model.")
    if not question.strip():
        raise EngineError("Type a question first, for example: Summarise this transcript.")
    from nemo.collections.common.prompts import PromptFormatter

    model = loaded.model
    turns = [{"role": "user", "content": f"{question.strip()}\n\nTranscript:\n{transcript_text.strip()}"}]
    formatter = PromptFormatter.resolve(model.cfg.prompt_format)(model.tokenizer)
    prompt_ids = torch.as_tensor(formatter.encode_dialog(turns=turns)["input_ids"]).unsqueeze(0)
    with (
        _lock_for(model),
        torch.inference_mode(),
        model.llm.disable_adapter(),
        _autocast(loaded.device, loaded.precision.autocast),
    ):
        ids = model.generate(prompts=prompt_ids.to(loaded.device), max_new_tokens=max_new_tokens)
    # Text-only generation returns the prompt followed by the reply.
    reply = [int(t) for t in ids[0, prompt_ids.shape[1] :].cpu()]
    if model.text_eos_id in reply:
        reply = reply[: reply.index(model.text_eos_id)]
    return split_thinking(model.tokenizer.ids_to_text(reply))
