"""Decode any user recording to 16 kHz mono float32, or refuse it with one clear sentence.

WAV, FLAC, OGG/Vorbis, MP3 (and whatever else libsndfile opens) are read with soundfile;
M4A, AAC, MP4, WebM, Opus and anything libsndfile cannot open (or whose header hides its length)
are decoded in-process by PyAV, FFmpeg's libraries bundled in its wheel: no program is run. Either
way the decoder's native-rate float32 output is averaged to mono and resampled to 16 kHz by soxr
("HQ") in Python, in the same 10 s blocks, so both paths give the same result and a long recording
never sits in memory at its source rate. The length is checked from the header before decoding, and
decoding stops one second past the limit, so a tiny file claiming (or hiding) hours is refused.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr

from localstt.errors import AudioError

if TYPE_CHECKING:  # PyAV is imported where a file needs it: most recordings never do
    import av

TARGET_RATE = 16_000
SILENCE_PEAK = 10 ** (-60 / 20)  # a recording whose loudest sample is below -60 dBFS is "silent"
MIN_SECONDS = 0.1
PYAV_EXTENSIONS = frozenset(
    {".m4a", ".m4b", ".aac", ".mp4", ".mov", ".3gp", ".webm", ".mkv", ".mka", ".opus", ".wma"}
)
_BLOCK_SECONDS = 10
_UNKNOWN_FRAMES = 2**62  # libsndfile's frame count for a stream whose header gives no length
_PADDING_TRIM_S = 0.1  # codec padding past the declared stream length that is cut off
# Raw codec streams with no length field: FFmpeg's length for them is a guess from the bit rate, so
# they are decoded as streams without a length (running limit, no truncation check or padding trim).
_GUESSED_LENGTH_FORMATS = frozenset({"aac", "ac3", "eac3", "dts"})
_MAX_ERROR_RATE = 2 / 3  # ffmpeg's own -max_error_rate: more packets than this failing = damaged
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


def decode_audio(path: Path, max_seconds: float | None) -> DecodedAudio:
    """Decode ``path`` to 16 kHz mono float32; raise AudioError for anything unusable."""
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, not {max_seconds}")
    path = Path(path)
    head = _read_head(path)
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
    return _decode_pyav(path, head, max_seconds)


def probe_seconds(path: Path) -> float | None:
    """The recording's length from its header alone (no decoding), or None when it does not say (or
    is no recording: decode_audio then says what is wrong)."""
    try:
        info = sf.info(str(path))
        if 0 < info.frames < _UNKNOWN_FRAMES and info.samplerate > 0:
            return float(info.frames) / float(info.samplerate)
    except (sf.SoundFileError, OSError, RuntimeError):
        pass
    import av

    try:
        with av.open(f"file:{path}", container_options={"protocol_whitelist": "file"}) as container:
            if container.duration is not None and container.duration > 0:
                return float(container.duration) / av.time_base
    except (av.FFmpegError, OSError, ValueError):
        pass
    return None


def split_at_quiet_points(
    samples: np.ndarray, sample_rate: int, max_window_s: float, search_s: float = 5.0
) -> list[tuple[int, int]]:
    """Cut ``samples`` into contiguous (start, end) windows of at most ``max_window_s`` seconds.

    Each cut is placed in the quietest 50 ms (RMS) of the last ``search_s`` seconds of its window
    (never in the first half), in the middle of the quiet run, so words are not cut in two. The
    windows cover every sample exactly once: the first starts at 0, each starts where the
    previous ends, the last ends at ``len(samples)``.
    """
    if samples.ndim != 1:
        raise ValueError(f"samples must be one-dimensional (mono), not shape {samples.shape}")
    max_len = int(max_window_s * sample_rate)
    if max_len < 1:
        raise ValueError(f"max_window_s={max_window_s} is shorter than one sample")
    total = len(samples)
    frame = max(1, round(0.05 * sample_rate))
    hop = max(1, frame // 4)
    search_len = max(frame, int(search_s * sample_rate))
    windows: list[tuple[int, int]] = []
    start = 0
    while total - start > max_len:
        limit = start + max_len
        low = max(limit - search_len, start + max_len // 2)
        cut = _quietest_cut(samples[low:limit], frame, hop)
        cut = limit if cut is None else low + cut
        windows.append((start, cut))
        start = cut
    if total > start:
        windows.append((start, total))
    return windows


def _quietest_cut(region: np.ndarray, frame: int, hop: int) -> int | None:
    """Offset in ``region`` of the middle of its quietest run of frames (None: region < frame)."""
    if len(region) < frame:
        return None
    power = np.concatenate(([0.0], np.cumsum(np.square(region, dtype=np.float64))))
    starts = np.arange(0, len(region) - frame + 1, hop)
    energy = (power[starts + frame] - power[starts]) / frame
    quiet = energy <= energy.min() * 2.0 + 1e-12  # within 3 dB of the quietest frame
    best_from, best_len, run_from = 0, 0, -1
    for index, is_quiet in enumerate([*quiet.tolist(), False]):
        if is_quiet and run_from < 0:
            run_from = index
        elif not is_quiet and run_from >= 0:
            if index - run_from >= best_len:  # ties go to the later run: longer windows
                best_from, best_len = run_from, index - run_from
            run_from = -1
    first, last = starts[best_from], starts[best_from + best_len - 1] + frame
    return max(1, int((first + last) // 2))


class _Collector:
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


def _decode_soundfile(
    path: Path, shape: tuple[int, int, int], container: str, max_seconds: float | None
) -> DecodedAudio:
    rate, channels, frames = shape
    _refuse_too_long(path.name, frames / rate if rate else 0.0, max_seconds)
    collector = _Collector(path.name, rate)
    try:  # not sf.blocks(): it pads a short read with stale data instead of stopping
        with sf.SoundFile(str(path)) as handle:
            declared = _declared_wav_frames(handle.extra_info, frames)
            while collector.frames < frames:
                wanted = min(rate * _BLOCK_SECONDS, frames - collector.frames)
                block = handle.read(wanted, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                collector.add(block)
    except sf.SoundFileError as exc:
        detail = str(exc).removeprefix("Error : ").strip().rstrip(".")
        raise AudioError(_damaged(path.name, container, detail)) from exc
    _refuse_truncated(path.name, declared / rate, collector.frames / rate)
    return _finish(path.name, collector.finish(), rate, channels, "soundfile", max_seconds)


def _decode_pyav(path: Path, head: bytes, max_seconds: float | None) -> DecodedAudio:
    import av

    name, kind = path.name, _sniff(head) or ""
    if not kind and _is_text(head):  # text (a playlist, a list of files) is never a recording
        raise AudioError(_not_audio(name, head))
    where, files_only = f"file:{path}", {"protocol_whitelist": "file"}  # a name like "a:b.m4a" is no protocol
    try:
        if int(av.__version__.split(".")[0]) < 19:
            container = av.open(where, metadata_errors="replace", container_options=files_only)
        else:  # PyAV 19 dropped metadata_errors: it decodes tags as UTF-8 with surrogateescape itself
            container = av.open(where, container_options=files_only)
    except av.FFmpegError as exc:
        raise AudioError(_damaged(name, kind, _av_detail(exc)) if kind else _not_audio(name, head)) from exc
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
            raise AudioError(_damaged(name, kind, "its header gives no sample rate or channel count"))
        stream_duration = declared = None
        if container.format.name not in _GUESSED_LENGTH_FORMATS:
            stream_duration = declared = _seconds(stream.duration, stream.time_base)
            if declared is None and len(container.streams) == 1:  # the only stream: the file's length
                declared = _seconds(container.duration, Fraction(1, av.time_base))
        _refuse_too_long(name, declared or 0.0, max_seconds)  # from the header, before decoding

        collector, block = _Collector(name, rate), rate * _BLOCK_SECONDS
        pending: list[np.ndarray] = []
        held = decoded = 0
        with closing(_pyav_frames(name, kind, container, stream)) as frames:
            for frame in frames:
                decoded += len(frame)
                _stop_past_limit(name, decoded, rate, max_seconds)
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
        _refuse_truncated(name, declared, collector.frames / rate)
    samples = collector.finish()
    if stream_duration is not None:
        keep = round(stream_duration * TARGET_RATE)
        if 0 < len(samples) - keep <= _PADDING_TRIM_S * TARGET_RATE:
            samples = samples[:keep]
    return _finish(name, samples, rate, channels, "pyav", max_seconds)


def _pyav_frames(
    name: str, kind: str, container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> Generator[np.ndarray]:
    """The stream decoded to float32 arrays of shape (frames, channels), one per codec frame.

    As in ffmpeg's own `-ac -ar -f f32le` output, libswresample keeps the stream's rate and channel
    layout even if a frame changes its format, rate or layout; a packet that fails to decode is
    skipped unless most do, and a demuxing error ends the stream (the truncation check follows).
    """
    import av

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
        raise AudioError(_damaged(name, kind, _av_detail(exc))) from exc
    if first_error is not None and bad > _MAX_ERROR_RATE * (good + bad):
        raise AudioError(_damaged(name, kind, _av_detail(first_error)))


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
            import av

            self._resampler, self._source = av.AudioResampler("flt", self._layout, self._rate), source
        yield from self._arrays(self._resampler.resample(frame))

    def _arrays(self, frames: Sequence[av.AudioFrame | None]) -> Iterator[np.ndarray]:
        for frame in frames:  # a pass-through resampler "flushes" to [None]
            if frame is not None and frame.samples:
                yield frame.to_ndarray().reshape(-1, self._channels)


def _finish(
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
    _refuse_too_long(name, duration, max_seconds)
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise AudioError(
            f"'{name}' appears to be silent (its loudest sample is below -60 dBFS); check that "
            "the microphone was on and unmuted, or that you chose the right file."
        )
    return DecodedAudio(
        samples=samples, duration=duration, source_sample_rate=rate, source_channels=channels, decoder=decoder
    )


def _read_head(path: Path) -> bytes:
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


def _sniff(head: bytes) -> str | None:
    """The audio container ``head`` starts like, or None."""
    if head[4:8] == b"ftyp":
        return "MP4/M4A"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MPEG audio"
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)


def _is_text(head: bytes) -> bool:
    try:  # incremental: a character cut in two at the end of ``head`` is not an error
        return b"\0" not in head and bool(codecs.getincrementaldecoder("utf-8")().decode(head).strip())
    except UnicodeDecodeError:
        return False


def _not_audio(name: str, head: bytes) -> str:
    found = "it contains text" if _is_text(head) else "its contents match no known audio format"
    advice = "choose a real recording such as WAV, FLAC, MP3, OGG or M4A"
    return f"'{name}' is not an audio file ({found}); {advice}."


def _damaged(name: str, container: str, detail: str) -> str:
    kind = f"{container} " if container else ""
    why = f" ({detail})" if detail else ""
    return f"'{name}' is a damaged or truncated {kind}audio file{why}; copy or export the recording again."


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


def _refuse_truncated(name: str, declared_s: float, decoded_s: float) -> None:
    if decoded_s < declared_s - max(0.25, 0.02 * declared_s):
        raise AudioError(
            f"'{name}' is truncated or damaged: its header promises {declared_s:.1f} s but only "
            f"{decoded_s:.1f} s could be decoded; copy or export the recording again."
        )


def _refuse_too_long(name: str, seconds: float, max_seconds: float | None) -> None:
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(
            f"'{name}' is {seconds / 60:.1f} minutes long, over the limit of "
            f"{_minutes(max_seconds)} minutes; split it into shorter parts or raise {_LIMIT_KEY}."
        )


def _stop_past_limit(name: str, frames: int, rate: int, max_seconds: float | None) -> None:
    """Decoding stops one second past the limit, whatever the header said (or did not say)."""
    if max_seconds is not None and frames > (max_seconds + 1) * rate:
        raise AudioError(
            f"'{name}' is longer than the limit of {_minutes(max_seconds)} minutes "
            f"(decoding stopped after {frames / rate / 60:.1f} minutes); "
            f"split it into shorter parts or raise {_LIMIT_KEY}."
        )


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.2f}".rstrip("0").rstrip(".")


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    """A length from PyAV's header fields (None where the header gives none)."""
    return None if value is None or time_base is None else float(value * time_base)


def _av_detail(exc: Exception) -> str:
    """FFmpeg's reason, without the file's path (PyAV puts it after the reason)."""
    return str(getattr(exc, "strerror", None) or exc).strip().rstrip(".")
