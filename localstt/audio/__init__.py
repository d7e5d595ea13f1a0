"""Any user recording to 16 kHz mono float32, or refused with one clear sentence.

decode.py   decode_audio and probe_seconds: the checks, and soundfile for what it reads
pyav.py     the rest, through PyAV (FFmpeg's libraries, in-process)
samples.py  DecodedAudio, and what both decoders share (mixing, resampling, the sentences)
quiet.py    long audio cut into windows at its quietest points
"""

from __future__ import annotations

from localstt.audio.decode import PYAV_EXTENSIONS, decode_audio, probe_seconds
from localstt.audio.quiet import split_at_quiet_points
from localstt.audio.samples import TARGET_RATE, DecodedAudio, silence
from localstt.errors import AudioError

__all__ = [
    "PYAV_EXTENSIONS",
    "TARGET_RATE",
    "AudioError",
    "DecodedAudio",
    "decode_audio",
    "probe_seconds",
    "silence",
    "split_at_quiet_points",
]
