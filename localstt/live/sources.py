"""Where a live session's audio comes from on the command line: standard input (raw 16 kHz PCM16, or a
container PyAV reads as a stream: `ffmpeg -f pulse -i default -f wav - | transcribe --live -`), or a
file, as fast as it decodes or at real-time pace. Each yields 16 kHz mono float32 blocks of 100 ms.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from localstt.audio import decode_audio
from localstt.errors import AudioError

SAMPLE_RATE = 16000
BLOCK = SAMPLE_RATE // 10  # 100 ms
# First bytes of the containers a pipe may carry; anything else is raw 16 kHz PCM16.
CONTAINERS = (b"RIFF", b"RF64", b"fLaC", b"OggS", b"ID3", b"\x1aE\xdf\xa3", b"caff")


def from_stdin(stream: BinaryIO) -> Iterator[np.ndarray]:
    """Standard input as it comes: a container when its first bytes say so, else raw PCM16."""
    head = stream.read(4)
    if head.startswith(CONTAINERS) or head[4:8] == b"ftyp":
        yield from _container(_Prefixed(head, stream))
        return
    yield from _raw_pcm16(head, stream)


def from_file(path: Path, max_seconds: float, realtime: bool) -> Iterator[np.ndarray]:
    """A recording, decoded, in 100 ms blocks; with `realtime`, each when it would be heard."""
    audio = decode_audio(path, max_seconds)
    started = time.monotonic()
    for number, start in enumerate(range(0, len(audio.samples), BLOCK)):
        if realtime:
            time.sleep(max(0.0, started + number * BLOCK / SAMPLE_RATE - time.monotonic()))
        yield audio.samples[start : start + BLOCK]


def _raw_pcm16(head: bytes, stream: BinaryIO) -> Iterator[np.ndarray]:
    pending = head
    while True:
        data = stream.read(BLOCK * 2)
        if not data:
            break
        pending += data
        usable = len(pending) - len(pending) % 2
        if usable:
            yield np.frombuffer(pending[:usable], dtype="<i2").astype(np.float32) / 32768.0
        pending = pending[usable:]


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _container(stream: Readable) -> Iterator[np.ndarray]:
    """A container read as a stream by PyAV, its first audio stream mixed to mono and resampled."""
    import av  # PyAV loads FFmpeg's libraries: only for a container on standard input

    try:
        container = av.open(stream, mode="r")
    except av.FFmpegError as error:
        raise AudioError(
            f"Standard input is not audio PyAV can read as a stream ({error}); send raw 16 kHz 16-bit "
            "PCM, or a WAV, FLAC or Ogg stream."
        ) from None
    with container:
        if not container.streams.audio:
            raise AudioError("Standard input holds no audio stream; send raw 16 kHz 16-bit PCM or a WAV.")
        audio = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(audio):
            for converted in resampler.resample(frame):
                yield converted.to_ndarray().reshape(-1).astype(np.float32)
        for converted in resampler.resample(None):
            yield converted.to_ndarray().reshape(-1).astype(np.float32)


class _Prefixed:
    """A stream with some bytes already read from it put back in front (for PyAV's reads)."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._stream.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            if len(data) < size:
                data += self._stream.read(size - len(data))
            return data
        return self._stream.read(size)
