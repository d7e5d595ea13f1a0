"""Decoded audio (16 kHz mono float32) and what every decoder shares: the collector that checks,
mixes and resamples native-rate blocks, and the one sentence for each way a recording can be unusable.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from localstt.errors import AudioError

TARGET_RATE = 16_000
SILENCE_PEAK = 10 ** (-60 / 20)  # a recording whose loudest sample is below -60 dBFS is "silent"
MIN_SECONDS = 0.1
BLOCK_SECONDS = 10  # both decoders resample in blocks of this many seconds: the same result
_LIMIT_KEY = "`max_audio_minutes` in the [transcription] section of config.toml"
# First bytes of containers that hold audio: failing to decode one of these means damage.
_MAGIC = {b"RIFF": "WAV", b"RF64": "WAV", b"FORM": "AIFF", b"fLaC": "FLAC", b"OggS": "Ogg", b"ID3": "MP3"}
_MAGIC |= {b"\x1aE\xdf\xa3": "WebM/Matroska", b"caff": "CAF", b"0&\xb2u": "WMA", b"#!AMR": "AMR"}


@dataclass(frozen=True, kw_only=True)
class DecodedAudio:
    samples: np.ndarray  # float32, mono, TARGET_RATE
    sample_rate: int = TARGET_RATE
    duration: float
    source_sample_rate: int
    source_channels: int
    decoder: str  # "soundfile" or "pyav"; else what made the samples (`of_samples`)

    @classmethod
    def of_samples(cls, samples: np.ndarray, made_by: str) -> DecodedAudio:
        """Samples made in this process, already mono float32 at TARGET_RATE (not decoded from a file)."""
        return cls(
            samples=samples,
            duration=len(samples) / TARGET_RATE,
            source_sample_rate=TARGET_RATE,
            source_channels=1,
            decoder=made_by,
        )


def silence(seconds: float) -> DecodedAudio:
    """`seconds` of digital silence, as if decoded (a model's first run uses it)."""
    return DecodedAudio.of_samples(np.zeros(round(seconds * TARGET_RATE), dtype=np.float32), "silence")


class Collector:
    """Checks native-rate blocks, averages them to mono and resamples them to 16 kHz."""

    def __init__(self, name: str, source_rate: int) -> None:
        self._name = name
        resample = source_rate != TARGET_RATE
        self._stream = soxr.ResampleStream(source_rate, TARGET_RATE, 1, "float32", "HQ") if resample else None
        self._chunks: list[np.ndarray] = []
        self.frames = 0

    def add(self, block: np.ndarray) -> None:
        if not np.isfinite(block).all():
            raise AudioError(
                f"'{self._name}' contains NaN or infinite sample values, so it is corrupt; "
                "export the recording again."
            )
        if block.shape[1] == 1:
            mono = np.array(block[:, 0], dtype=np.float32)
        else:
            mono = block.mean(axis=1, dtype=np.float64).astype(np.float32)
        self.frames += len(mono)
        self._chunks.append(mono if self._stream is None else self._stream.resample_chunk(mono))

    def finish(self) -> np.ndarray:
        if self._stream is not None:
            self._chunks.append(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)


def finish(
    name: str, samples: np.ndarray, rate: int, channels: int, decoder: str, max_seconds: float | None
) -> DecodedAudio:
    duration = len(samples) / TARGET_RATE
    if len(samples) == 0:
        raise AudioError(f"'{name}' contains no audio samples; record or export it again.")
    if duration < MIN_SECONDS:
        raise AudioError(
            f"'{name}' is only {duration * 1000:.1f} ms long, too short to transcribe; "
            "choose a longer recording."
        )
    refuse_too_long(name, duration, max_seconds)
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise AudioError(
            f"'{name}' appears to be silent (its loudest sample is below -60 dBFS); check that "
            "the microphone was on and unmuted, or that you chose the right file."
        )
    return DecodedAudio(
        samples=samples, duration=duration, source_sample_rate=rate, source_channels=channels, decoder=decoder
    )


def read_head(path: Path) -> bytes:
    if not path.exists():
        raise AudioError(f"Audio file not found: {path}; check the path and that the file was not moved.")
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file; choose a recording inside it.")
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise AudioError(
            f"'{path.name}' cannot be read ({exc.strerror}); check the file's permissions."
        ) from exc
    if not head:
        raise AudioError(
            f"'{path.name}' is empty (0 bytes); the recording or upload did not finish, "
            "so record or copy it again."
        )
    return head


def sniff(head: bytes) -> str | None:
    """The audio container ``head`` starts like, or None."""
    if head[4:8] == b"ftyp":
        return "MP4/M4A"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MPEG audio"
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)


def is_text(head: bytes) -> bool:
    try:  # incremental: a character cut in two at the end of ``head`` is not an error
        return b"\0" not in head and bool(codecs.getincrementaldecoder("utf-8")().decode(head).strip())
    except UnicodeDecodeError:
        return False


def not_audio(name: str, head: bytes) -> str:
    found = "it contains text" if is_text(head) else "its contents match no known audio format"
    advice = "choose a real recording such as WAV, FLAC, MP3, OGG or M4A"
    return f"'{name}' is not an audio file ({found}); {advice}."


def damaged(name: str, container: str, detail: str) -> str:
    kind = f"{container} " if container else ""
    why = f" ({detail})" if detail else ""
    return f"'{name}' is a damaged or truncated {kind}audio file{why}; copy or export the recording again."


def refuse_truncated(name: str, declared_s: float, decoded_s: float) -> None:
    if decoded_s < declared_s - max(0.25, 0.02 * declared_s):
        raise AudioError(
            f"'{name}' is truncated or damaged: its header promises {declared_s:.1f} s but only "
            f"{decoded_s:.1f} s could be decoded; copy or export the recording again."
        )


def refuse_too_long(name: str, seconds: float, max_seconds: float | None) -> None:
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(
            f"'{name}' is {seconds / 60:.1f} minutes long, over the limit of "
            f"{_minutes(max_seconds)} minutes; split it into shorter parts or raise {_LIMIT_KEY}."
        )


def stop_past_limit(name: str, frames: int, rate: int, max_seconds: float | None) -> None:
    """Decoding stops one second past the limit, whatever the header said (or did not say)."""
    if max_seconds is not None and frames > (max_seconds + 1) * rate:
        raise AudioError(
            f"'{name}' is longer than the limit of {_minutes(max_seconds)} minutes "
            f"(decoding stopped after {frames / rate / 60:.1f} minutes); "
            f"split it into shorter parts or raise {_LIMIT_KEY}."
        )


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.2f}".rstrip("0").rstrip(".")
