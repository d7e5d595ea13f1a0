"""What soundfile cannot read (M4A, AAC, MP4, WebM, Opus, WMA, and anything whose header hides its
length), decoded in-process by PyAV: FFmpeg's libraries bundled in its wheel; no program is run.

PyAV is imported where a file needs it: most recordings never do, and FFmpeg's libraries are never
loaded for them.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from localstt.audio.samples import (
    BLOCK_SECONDS,
    TARGET_RATE,
    Collector,
    DecodedAudio,
    damaged,
    finish,
    is_text,
    not_audio,
    refuse_too_long,
    refuse_truncated,
    sniff,
    stop_past_limit,
)
from localstt.errors import AudioError

if TYPE_CHECKING:
    import av

_PADDING_TRIM_S = 0.1  # codec padding past the declared stream length that is cut off
# Raw codec streams with no length field: FFmpeg's length for them is a guess from the bit rate, so
# they are decoded as streams without a length (running limit, no truncation check or padding trim).
_GUESSED_LENGTH_FORMATS = frozenset({"aac", "ac3", "eac3", "dts"})
_MAX_ERROR_RATE = 2 / 3  # ffmpeg's own -max_error_rate: more packets than this failing = damaged


def decode_pyav(path: Path, head: bytes, max_seconds: float | None) -> DecodedAudio:
    import av  # PyAV loads FFmpeg's libraries: only for files that need it

    name, kind = path.name, sniff(head) or ""
    if not kind and is_text(head):  # text (a playlist, a list of files) is never a recording
        raise AudioError(not_audio(name, head))
    where, files_only = f"file:{path}", {"protocol_whitelist": "file"}  # a name like "a:b.m4a" is no protocol
    try:
        if int(av.__version__.split(".")[0]) < 19:
            container = av.open(where, metadata_errors="replace", container_options=files_only)
        else:  # PyAV 19 dropped metadata_errors: it decodes tags as UTF-8 with surrogateescape itself
            container = av.open(where, container_options=files_only)
    except av.FFmpegError as exc:
        raise AudioError(damaged(name, kind, _av_detail(exc)) if kind else not_audio(name, head)) from exc
    with container:
        if not container.streams.audio:
            raise AudioError(
                f"'{name}' contains no audio stream (it may be a video without sound or not a "
                "recording at all); choose a file that has sound."
            )
        stream = container.streams.audio[0]
        if stream.codec_context is None:  # FFmpeg has no decoder for it
            raise AudioError(
                f"'{name}' holds audio in a codec that cannot be decoded here; convert the recording "
                "to WAV, FLAC, MP3 or M4A."
            )
        rate, channels = int(stream.codec_context.sample_rate or 0), int(stream.codec_context.channels or 0)
        if rate <= 0 or channels <= 0:
            raise AudioError(damaged(name, kind, "its header gives no sample rate or channel count"))
        stream_duration = declared = None
        if container.format.name not in _GUESSED_LENGTH_FORMATS:
            stream_duration = declared = _seconds(stream.duration, stream.time_base)
            if declared is None and len(container.streams) == 1:  # the only stream: the file's length
                declared = _seconds(container.duration, Fraction(1, av.time_base))
        refuse_too_long(name, declared or 0.0, max_seconds)  # from the header, before decoding

        collector, block = Collector(name, rate), rate * BLOCK_SECONDS
        pending: list[np.ndarray] = []
        held = decoded = 0
        with closing(pyav_frames(name, kind, container, stream)) as frames:
            for frame in frames:
                decoded += len(frame)
                stop_past_limit(name, decoded, rate, max_seconds)
                pending.append(frame)
                held += len(frame)
                if held >= block:  # the soundfile path's whole blocks: the same resampling, sample for sample
                    data = np.concatenate(pending)
                    whole = held // block * block
                    for start in range(0, whole, block):
                        collector.add(data[start : start + block])
                    pending, held = [data[whole:]], held - whole
        if held:
            collector.add(np.concatenate(pending))
    if declared is not None:
        refuse_truncated(name, declared, collector.frames / rate)
    samples = collector.finish()
    if stream_duration is not None:
        keep = round(stream_duration * TARGET_RATE)
        if 0 < len(samples) - keep <= _PADDING_TRIM_S * TARGET_RATE:
            samples = samples[:keep]
    return finish(name, samples, rate, channels, "pyav", max_seconds)


def pyav_frames(
    name: str, kind: str, container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> Generator[np.ndarray]:
    """The stream decoded to float32 arrays of shape (frames, channels), one per codec frame.

    As in ffmpeg's own `-ac -ar -f f32le` output, libswresample keeps the stream's rate and channel
    layout even if a frame changes its format, rate or layout; a packet that fails to decode is
    skipped unless most do, and a demuxing error ends the stream (the truncation check follows).
    """
    import av  # PyAV loads FFmpeg's libraries: only for files that need it

    codec = stream.codec_context
    converter = _PackedFloat(codec.layout, codec.sample_rate, codec.channels)
    good = bad = 0
    first_error: av.FFmpegError | None = None
    packets = container.demux(stream)  # its last packets are empty ones that flush the decoder
    try:
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError:
                packet = None  # damaged from here on: keep what was decoded, flush the decoder
            try:
                frames = codec.decode(packet)
            except av.FFmpegError as exc:
                bad += 1
                first_error = first_error or exc
            else:
                good += 1
                for frame in frames:
                    yield from converter.convert(frame)
            if packet is None:
                break
        yield from converter.convert(None)
    except av.FFmpegError as exc:  # libswresample cannot convert a frame
        raise AudioError(damaged(name, kind, _av_detail(exc))) from exc
    if first_error is not None and bad > _MAX_ERROR_RATE * (good + bad):
        raise AudioError(damaged(name, kind, _av_detail(first_error)))


class _PackedFloat:
    """Turns decoded frames of any sample format into float32 (frames, channels) arrays at one rate
    and layout, through an av.AudioResampler made anew whenever the frames' own format changes."""

    def __init__(self, layout: av.AudioLayout, rate: int, channels: int) -> None:
        self._layout, self._rate, self._channels = layout, rate, channels
        self._resampler: av.AudioResampler | None = None
        self._source: tuple[str, str, int] | None = None

    def convert(self, frame: av.AudioFrame | None) -> Iterator[np.ndarray]:
        """Arrays for ``frame``; None flushes what the resampler still holds."""
        source = None if frame is None else (frame.format.name, frame.layout.name, frame.sample_rate)
        if source != self._source and self._resampler is not None:
            yield from self._arrays(self._resampler.resample(None))
            self._resampler = None
        if frame is None:
            return
        if self._resampler is None:
            import av  # PyAV loads FFmpeg's libraries: only for files that need it

            self._resampler, self._source = av.AudioResampler("flt", self._layout, self._rate), source
        yield from self._arrays(self._resampler.resample(frame))

    def _arrays(self, frames: Sequence[av.AudioFrame | None]) -> Iterator[np.ndarray]:
        for frame in frames:  # a pass-through resampler "flushes" to [None]
            if frame is not None and frame.samples:
                yield frame.to_ndarray().reshape(-1, self._channels)


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    """A length from PyAV's header fields (None where the header gives none)."""
    return None if value is None or time_base is None else float(value * time_base)


def _av_detail(exc: Exception) -> str:
    """FFmpeg's reason, without the file's path (PyAV puts it after the reason)."""
    return str(getattr(exc, "strerror", None) or exc).strip().rstrip(".")


def probe_pyav_seconds(path: Path) -> float | None:
    """The container's length from its header, or None."""
    import av  # PyAV loads FFmpeg's libraries: only for files that need it

    try:
        with av.open(f"file:{path}", container_options={"protocol_whitelist": "file"}) as container:
            if container.duration is not None and container.duration > 0:
                return float(container.duration) / av.time_base
    except (av.FFmpegError, OSError, ValueError):
        pass
    return None
