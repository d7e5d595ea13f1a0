"""Decode any user recording to 16 kHz mono float32, or refuse it with one clear sentence.

WAV, FLAC, OGG/Vorbis, MP3 (and whatever else libsndfile opens) are read with soundfile;
M4A, AAC, MP4, WebM, Opus and anything libsndfile cannot open go through ffmpeg. Either way
the decoder's native-rate float32 output is averaged to mono and resampled to 16 kHz by soxr
("HQ") in Python, block by block, so both paths give the same result and a long recording never
sits in memory at its source rate. The length is checked from the header before decoding, and
decoding stops one second past the limit, so a tiny file claiming (or hiding) hours is refused.
"""

from __future__ import annotations

import codecs
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

TARGET_RATE = 16_000
SILENCE_PEAK = 10 ** (-60 / 20)  # a recording whose loudest sample is below -60 dBFS is "silent"
MIN_SECONDS = 0.1
FFMPEG_EXTENSIONS = frozenset(
    {".m4a", ".m4b", ".aac", ".mp4", ".mov", ".3gp", ".webm", ".mkv", ".mka", ".opus", ".wma"}
)
_BLOCK_SECONDS = 10
_UNKNOWN_FRAMES = 2**62  # libsndfile's frame count for a stream whose header gives no length
_PADDING_TRIM_S = 0.1  # codec padding past the declared stream length that is cut off
_LIMIT_KEY = "`max_audio_minutes` in the [transcription] section of config.toml"
# First bytes of containers that hold audio: failing to decode one of these means damage.
_MAGIC = {b"RIFF": "WAV", b"RF64": "WAV", b"FORM": "AIFF", b"fLaC": "FLAC", b"OggS": "Ogg", b"ID3": "MP3"}
_MAGIC |= {b"\x1aE\xdf\xa3": "WebM/Matroska", b"caff": "CAF", b"0&\xb2u": "WMA", b"#!AMR": "AMR"}


class AudioError(ValueError):
    """A recording that cannot be transcribed; the message says why and what to do."""


@dataclass(frozen=True, kw_only=True)
class DecodedAudio:
    samples: np.ndarray  # float32, mono, TARGET_RATE
    sample_rate: int = TARGET_RATE
    duration: float
    source_sample_rate: int
    source_channels: int
    decoder: str  # "soundfile" or "ffmpeg"


def decode_audio(path: Path, max_seconds: float | None) -> DecodedAudio:
    """Decode ``path`` to 16 kHz mono float32; raise AudioError for anything unusable."""
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, not {max_seconds}")
    path = Path(path)
    head, name, needs_ffmpeg = _read_head(path), path.name, path.suffix.lower() in FFMPEG_EXTENSIONS
    headerless = False
    if not needs_ffmpeg:
        try:
            info = sf.info(str(path))
        except sf.SoundFileError:
            pass  # not for libsndfile: ffmpeg may know it
        else:
            shape = (int(info.samplerate), int(info.channels), int(info.frames))
            # A streamed FLAC (no length in its header) reads as SF_COUNT_MAX frames; ffmpeg decodes
            # it with the running limit instead, as it does every headerless stream.
            if shape[2] < _UNKNOWN_FRAMES:
                return _decode_soundfile(path, shape, str(info.format), max_seconds)
            headerless = True
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if ffmpeg is None or ffprobe is None:
        container = _sniff(head)
        if headerless:
            raise AudioError(
                f"'{name}' does not give its length in its header (a streamed recording), which only "
                "ffmpeg reads safely; install ffmpeg or convert the file to WAV."
            )
        if container in {"WAV", "AIFF", "FLAC", "Ogg", "MP3"} and not needs_ffmpeg:
            raise AudioError(_damaged(name, container, "libsndfile cannot open it"))
        if container is None and (not needs_ffmpeg or _is_text(head)):
            raise AudioError(_not_audio(name, head, ffmpeg_missing=True))
        raise AudioError(
            f"'{name}' is in a format ({path.suffix or 'unknown'}) that needs ffmpeg, which was "
            "not found on PATH; install ffmpeg (for example `sudo apt install ffmpeg`, "
            "`brew install ffmpeg` or `winget install ffmpeg`) or convert the file to WAV or FLAC."
        )
    return _decode_ffmpeg(path, head, ffmpeg, ffprobe, max_seconds)


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


def _decode_ffmpeg(
    path: Path, head: bytes, ffmpeg: str, ffprobe: str, max_seconds: float | None
) -> DecodedAudio:
    name, target = path.name, f"file:{path}"
    probe = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "a:0", "-of", "json", "-show_entries",
         "stream=sample_rate,channels,duration:format=duration,nb_streams", target],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        if _sniff(head) is None:
            raise AudioError(_not_audio(name, head, ffmpeg_missing=False))
        raise AudioError(_damaged(name, _sniff(head) or "", _ffmpeg_detail(probe.stderr, path)))
    meta = json.loads(probe.stdout or "{}")
    streams = meta.get("streams") or []
    if not streams:
        raise AudioError(
            f"'{name}' contains no audio stream (it may be a video without sound or not a "
            "recording at all); choose a file that has sound."
        )
    rate, channels = int(streams[0].get("sample_rate") or 0), int(streams[0].get("channels") or 0)
    if rate <= 0 or channels <= 0:
        raise AudioError(_damaged(name, "", "ffprobe finds no sample rate or channel count"))
    stream_duration = declared = _to_float(streams[0].get("duration"))
    if declared is None and int(meta.get("format", {}).get("nb_streams") or 0) == 1:
        declared = _to_float(meta["format"].get("duration"))  # the only stream: the file's length
    _refuse_too_long(name, declared or 0.0, max_seconds)

    frame_bytes = 4 * channels
    collector = _Collector(name, rate)
    command = [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-i", target, "-map", "0:a:0",
               "-ac", str(channels), "-ar", str(rate), "-f", "f32le", "pipe:1"]  # fmt: skip
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
        assert process.stdout is not None
        pending = b""
        try:
            while data := process.stdout.read(frame_bytes * rate * _BLOCK_SECONDS):
                data, usable = pending + data, (len(pending) + len(data)) // frame_bytes
                pending = data[usable * frame_bytes :]
                block = np.frombuffer(data, dtype="<f4", count=usable * channels)
                collector.add(block.reshape(-1, channels))
                _stop_past_limit(name, collector.frames, rate, max_seconds)
            returncode = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
        errors.seek(0)
        stderr = errors.read().decode("utf-8", "replace")
    if returncode != 0:
        raise AudioError(_damaged(name, _sniff(head) or "", _ffmpeg_detail(stderr, path)))
    if declared is not None:
        _refuse_truncated(name, declared, collector.frames / rate)
    samples = collector.finish()
    if stream_duration is not None:
        keep = round(stream_duration * TARGET_RATE)
        if 0 < len(samples) - keep <= _PADDING_TRIM_S * TARGET_RATE:
            samples = samples[:keep]
    return _finish(name, samples, rate, channels, "ffmpeg", max_seconds)


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


def _not_audio(name: str, head: bytes, *, ffmpeg_missing: bool) -> str:
    is_text = _is_text(head)
    found = "it contains text" if is_text else "its contents match no known audio format"
    advice = "choose a real recording such as WAV, FLAC, MP3, OGG or M4A"
    if ffmpeg_missing and not is_text:
        advice += " (or install ffmpeg if it is audio in a rarer format)"
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


def _to_float(value: object) -> float | None:
    """A duration from ffprobe's JSON ("12.345", "N/A" or absent)."""
    return float(value) if isinstance(value, str) and re.fullmatch(r"\d+(\.\d*)?", value) else None


def _ffmpeg_detail(stderr: str, path: Path) -> str:
    """ffmpeg's first complaint, without its "[demuxer @ 0x...]" prefix or the file's path."""
    for line in stderr.splitlines():
        line = re.sub(r"^\[[^\]]*\]\s*", "", line.replace(f"file:{path}: ", "")).strip()
        if line:
            return "ffmpeg: " + line.rstrip(".")
    return ""
