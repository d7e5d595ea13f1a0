"""Any user recording to 16 kHz mono float32, or a refusal in one clear sentence.

WAV, FLAC, OGG/Vorbis, MP3 (and whatever else libsndfile opens) are read with soundfile; the rest
goes to PyAV (localstt/audio/pyav.py). Either way the decoder's native-rate float32 output is
averaged to mono and resampled to 16 kHz by soxr ("HQ") in Python, in the same 10 s blocks, so both
paths give the same result and a long recording never sits in memory at its source rate. The length
is checked from the header before decoding, and decoding stops one second past the limit, so a tiny
file claiming (or hiding) hours is refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import soundfile as sf

from localstt.audio.pyav import decode_pyav, probe_pyav_seconds
from localstt.audio.samples import (
    BLOCK_SECONDS,
    Collector,
    DecodedAudio,
    damaged,
    finish,
    read_head,
    refuse_too_long,
    refuse_truncated,
)
from localstt.errors import AudioError

PYAV_EXTENSIONS = frozenset(
    {".m4a", ".m4b", ".aac", ".mp4", ".mov", ".3gp", ".webm", ".mkv", ".mka", ".opus", ".wma"}
)
_UNKNOWN_FRAMES = 2**62  # libsndfile's frame count for a stream whose header gives no length


def decode_audio(path: Path, max_seconds: float | None) -> DecodedAudio:
    """Decode ``path`` to 16 kHz mono float32; raise AudioError for anything unusable."""
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, not {max_seconds}")
    path = Path(path)
    head = read_head(path)
    if path.suffix.lower() not in PYAV_EXTENSIONS:
        try:
            info = sf.info(str(path))
        except sf.SoundFileError:
            pass  # not for libsndfile: PyAV may know it
        else:
            shape = (int(info.samplerate), int(info.channels), int(info.frames))
            # A streamed FLAC (no length in its header) reads as SF_COUNT_MAX frames; PyAV decodes it
            # with the running limit instead, as it does every headerless stream.
            if shape[2] < _UNKNOWN_FRAMES:
                return _decode_soundfile(path, shape, str(info.format), max_seconds)
    return decode_pyav(path, head, max_seconds)


def probe_seconds(path: Path) -> float | None:
    """The recording's length from its header alone (no decoding), or None when it does not say (or
    is no recording: decode_audio then says what is wrong)."""
    try:
        info = sf.info(str(path))
        if 0 < info.frames < _UNKNOWN_FRAMES and info.samplerate > 0:
            return float(info.frames) / float(info.samplerate)
    except (sf.SoundFileError, OSError, RuntimeError):
        pass
    return probe_pyav_seconds(path)


def _decode_soundfile(
    path: Path, shape: tuple[int, int, int], container: str, max_seconds: float | None
) -> DecodedAudio:
    rate, channels, frames = shape
    refuse_too_long(path.name, frames / rate if rate else 0.0, max_seconds)
    collector = Collector(path.name, rate)
    try:  # not sf.blocks(): it pads a short read with stale data instead of stopping
        with sf.SoundFile(str(path)) as handle:
            declared = _declared_wav_frames(handle.extra_info, frames)
            while collector.frames < frames:
                wanted = min(rate * BLOCK_SECONDS, frames - collector.frames)
                block = handle.read(wanted, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                collector.add(block)
    except sf.SoundFileError as exc:
        detail = str(exc).removeprefix("Error : ").strip().rstrip(".")
        raise AudioError(damaged(path.name, container, detail)) from exc
    refuse_truncated(path.name, declared / rate, collector.frames / rate)
    return finish(path.name, collector.finish(), rate, channels, "soundfile", max_seconds)


def _declared_wav_frames(log: str, frames: int) -> int:
    """Frames a WAV header declares; libsndfile quietly shortens a truncated file to what is
    there and only says so in its log ("data : 150334 (should be 75145)")."""
    match = re.search(r"^data\s*:\s*(\d+) \(should be (\d+)\)", log, re.MULTILINE)
    if match is None:
        return frames
    declared, present = int(match[1]), int(match[2])
    if present <= 0 or declared >= 0xFFFF0000:  # a placeholder size left by a streaming recorder
        return frames
    return max(frames, frames * declared // present)
