"""decode_audio and split_at_quiet_points on real recordings made here with espeak-ng and sox, and
encoded to mp3, m4a, mp4, aac, webm and opus in-process with PyAV (no ffmpeg program anywhere).

The tools are required: a missing one FAILS these tests (CI installs them), it does not skip them.
"""

from __future__ import annotations

import shutil
import subprocess
import tracemalloc
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

import localstt.audio.pyav
import localstt.audio.samples
from localstt.audio import AudioError, decode_audio, split_at_quiet_points

SENTENCE = "The quick brown fox jumps over the lazy dog. Local speech recognition needs clean audio."


def run(tool: str, *args: str) -> None:
    executable = shutil.which(tool)
    if executable is None:
        pytest.fail(f"{tool} is not installed (apt-get install espeak-ng sox)", pytrace=False)
    subprocess.run([executable, *args], check=True, capture_output=True, stdin=subprocess.DEVNULL)


def encode(
    target: Path | BinaryIO,
    samples: np.ndarray,
    rate: int,
    codec: str,
    *,
    out_rate: int | None = None,
    channels: int | None = None,
    bit_rate: int | None = None,
    container: str | None = None,
) -> None:
    """Encode float32 ``samples`` (frames,) with PyAV; the format follows ``target``'s suffix unless
    ``container`` names one (a target without seek() is written as a stream: no length in its header)."""
    channels = channels or 1
    layout = {1: "mono", 2: "stereo"}[channels]
    interleaved = np.repeat(np.asarray(samples, np.float32)[:, None], channels, axis=1)
    with av.open(target if not isinstance(target, Path) else str(target), "w", format=container) as out:
        stream = out.add_stream(codec, rate=out_rate or rate, layout=layout)
        if bit_rate:
            stream.bit_rate = bit_rate
        for start in range(0, len(interleaved), 10 * rate):  # 10 s frames: PyAV cuts them to the codec's size
            frame = av.AudioFrame.from_ndarray(
                interleaved[start : start + 10 * rate].reshape(1, -1), format="flt", layout=layout
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def encode_file(reference: Path, target: Path, codec: str, **options: Any) -> None:
    samples, rate = sf.read(reference, dtype="float32")
    encode(target, samples, rate, codec, **options)


class Pipe:
    """A write-only file, as a pipe is: a muxer cannot seek back to write the length."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")

    def write(self, data: bytes) -> int:
        return self._file.write(data)

    def close(self) -> None:
        self._file.close()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """espeak-ng speech as a 16 kHz mono 16-bit WAV: the reference everything is compared with."""
    folder = tmp_path_factory.mktemp("speech")
    raw, reference = folder / "espeak.wav", folder / "reference.wav"
    run("espeak-ng", "-w", str(raw), SENTENCE)
    run("sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(reference))
    samples, rate = sf.read(reference, dtype="float32")
    assert rate == 16000 and samples.ndim == 1 and len(samples) > 3 * 16000
    return reference, samples


def sox_variant(reference: Path, target: Path, *options: str) -> None:
    run("sox", str(reference), *options, str(target))


VARIANTS = {  # name: (maker, largest allowed alignment lag in samples)
    "mono16k.wav": (lambda ref, out: shutil.copy(ref, out), 0),
    "stereo44k1.wav": (lambda ref, out: sox_variant(ref, out, "-r", "44100", "-c", "2"), 0),
    "stereo48k.wav": (lambda ref, out: sox_variant(ref, out, "-r", "48000", "-c", "2"), 0),
    "u8.wav": (lambda ref, out: sox_variant(ref, out, "-b", "8", "-e", "unsigned-integer"), 0),
    "s24.wav": (lambda ref, out: sox_variant(ref, out, "-r", "22050", "-b", "24"), 0),
    "s32.wav": (lambda ref, out: sox_variant(ref, out, "-b", "32", "-e", "signed-integer"), 0),
    "f32.wav": (lambda ref, out: sox_variant(ref, out, "-r", "32000", "-b", "32", "-e", "floating-point"), 0),
    "f64.wav": (lambda ref, out: sox_variant(ref, out, "-b", "64", "-e", "floating-point"), 0),
    "flac44k1.flac": (lambda ref, out: sox_variant(ref, out, "-r", "44100"), 0),
    "vorbis.ogg": (lambda ref, out: sox_variant(ref, out, "-r", "48000", "-c", "2"), 0),
    # FFmpeg's mp3 muxer writes LAME's gapless (encoder delay/padding) tag; sox's mp3 has none (see below).
    "lame.mp3": (lambda ref, out: encode_file(ref, out, "libmp3lame", bit_rate=192_000), 0),
    "aac.m4a": (lambda ref, out: encode_file(ref, out, "aac", out_rate=44100, bit_rate=128_000), 1),
    "aac.mp4": (lambda ref, out: encode_file(ref, out, "aac", out_rate=48000, channels=2), 1),
    "opus.webm": (lambda ref, out: encode_file(ref, out, "libopus"), 1),
    "opus.opus": (lambda ref, out: encode_file(ref, out, "libopus", channels=2), 1),
}
PYAV_SUFFIXES = {".m4a", ".mp4", ".aac", ".webm", ".opus", ".mka"}


def aligned_correlation(decoded: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """(lag of ``decoded`` behind ``reference`` in samples, correlation once aligned)."""
    size = len(decoded) + len(reference)
    spectrum = np.fft.rfft(decoded, size) * np.conj(np.fft.rfft(reference, size))
    lag = int(np.argmax(np.fft.irfft(spectrum, size)))
    lag = lag if lag < size // 2 else lag - size
    a, b = reference[max(0, -lag) :], decoded[max(0, lag) :]
    length = min(len(a), len(b))
    return lag, float(np.corrcoef(a[:length], b[:length])[0, 1])


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_format_decodes_to_16k_mono_matching_the_original(
    name: str, speech: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    reference, original = speech
    make, max_lag = VARIANTS[name]
    path = tmp_path / name
    make(reference, path)
    decoded = decode_audio(path, max_seconds=600)
    assert decoded.sample_rate == 16000
    assert decoded.samples.dtype == np.float32 and decoded.samples.ndim == 1
    assert decoded.decoder == ("pyav" if path.suffix in PYAV_SUFFIXES else "soundfile")
    assert abs(decoded.duration - len(original) / 16000) <= 0.010
    assert decoded.duration == len(decoded.samples) / 16000
    lag, correlation = aligned_correlation(decoded.samples, original)
    assert abs(lag) <= max_lag
    assert correlation > 0.99, f"{name}: correlation {correlation:.4f} at lag {lag}"


def test_sources_report_their_own_rate_and_channels(speech: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    reference, _ = speech
    VARIANTS["stereo44k1.wav"][0](reference, tmp_path / "a.wav")
    VARIANTS["opus.webm"][0](reference, tmp_path / "b.webm")
    a, b = decode_audio(tmp_path / "a.wav", None), decode_audio(tmp_path / "b.webm", None)
    assert (a.source_sample_rate, a.source_channels, a.decoder) == (44100, 2, "soundfile")
    assert (b.source_sample_rate, b.source_channels, b.decoder) == (48000, 1, "pyav")


def test_both_decoders_give_the_same_samples(speech: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """The same PCM through soundfile and through PyAV (a WAV named .mka; a FLAC whose header hides
    its length, which libsndfile reports as 2**62 frames) comes out identical, sample for sample."""
    reference, _ = speech
    VARIANTS["stereo44k1.wav"][0](reference, tmp_path / "a.wav")
    shutil.copy(tmp_path / "a.wav", tmp_path / "a.mka")
    VARIANTS["flac44k1.flac"][0](reference, tmp_path / "honest.flac")
    data = bytearray((tmp_path / "honest.flac").read_bytes())
    word = int.from_bytes(data[18:26], "big")  # STREAMINFO: its low 36 bits are the sample count
    data[18:26] = (word & ~(2**36 - 1)).to_bytes(8, "big")
    (tmp_path / "streamed.flac").write_bytes(bytes(data))
    assert sf.info(str(tmp_path / "streamed.flac")).frames >= 2**62
    for soundfile_path, pyav_path in (("a.wav", "a.mka"), ("honest.flac", "streamed.flac")):
        a, b = decode_audio(tmp_path / soundfile_path, None), decode_audio(tmp_path / pyav_path, None)
        assert (a.decoder, b.decoder) == ("soundfile", "pyav")
        assert (b.source_sample_rate, b.source_channels) == (a.source_sample_rate, a.source_channels)
        assert len(a.samples) > 3 * 16000
        np.testing.assert_array_equal(a.samples, b.samples)
    message = expect_error(tmp_path / "streamed.flac", "decoding stopped after 0.1 minutes", max_seconds=3)
    assert "longer than the limit of 0.05 minutes" in message


def test_adts_aac_keeps_its_encoder_delay(speech: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """A raw .aac (ADTS) has no edit list to drop the encoder's 1024 priming samples: they are kept
    as decoded, as in every player (encoded at 16 kHz so the delay is a whole number of samples).
    Nor has it a length (FFmpeg guesses one from the bit rate): the running limit applies."""
    reference, original = speech
    encode_file(reference, tmp_path / "raw.aac", "aac", bit_rate=96_000)
    decoded = decode_audio(tmp_path / "raw.aac", None)
    lag, correlation = aligned_correlation(decoded.samples, original)
    assert (decoded.decoder, decoded.source_sample_rate, decoded.source_channels) == ("pyav", 16000, 1)
    assert lag == 1024 and correlation > 0.99
    assert 1024 < len(decoded.samples) - len(original) <= 3 * 1024  # the delay, and the last frame's padding
    expect_error(
        tmp_path / "raw.aac", "longer than the limit of 0.05 minutes", "decoding stopped", max_seconds=3
    )


def test_a_stream_that_changes_rate_and_channels_midway_keeps_its_first(
    speech: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    """Two ADTS streams end to end (mono 16 kHz, then stereo 32 kHz): the second is converted to
    the first's rate and layout, as ffmpeg's `-ar -ac` output would, and nothing is lost."""
    reference, original = speech
    encode_file(reference, tmp_path / "first.aac", "aac", bit_rate=96_000)
    encode_file(reference, tmp_path / "second.aac", "aac", out_rate=32000, channels=2, bit_rate=128_000)
    first = decode_audio(tmp_path / "first.aac", None).samples
    (tmp_path / "both.aac").write_bytes(
        (tmp_path / "first.aac").read_bytes() + (tmp_path / "second.aac").read_bytes()
    )
    both = decode_audio(tmp_path / "both.aac", None)
    assert (both.source_sample_rate, both.source_channels) == (16000, 1)
    assert 2 * len(original) + 2 * 1024 < len(both.samples) <= 2 * len(original) + 6 * 1024
    np.testing.assert_array_equal(both.samples[: len(first) - 1024], first[: len(first) - 1024])
    lag, correlation = aligned_correlation(both.samples[len(first) :], original)
    assert lag == 512 and correlation > 0.99  # the second encoder's 1024 priming samples at 32 kHz


def expect_error(path: Path, *words: str, max_seconds: float | None = 600) -> str:
    with pytest.raises(AudioError) as caught:
        decode_audio(path, max_seconds)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert message.count("; ") == 1 and ". " not in message and message.endswith("."), message
    return message


def test_missing_empty_and_non_audio_files(tmp_path: Path) -> None:
    expect_error(tmp_path / "nowhere.wav", "not found", "nowhere.wav", "check the path")
    expect_error(tmp_path, "is a folder")
    (tmp_path / "empty.wav").write_bytes(b"")
    expect_error(tmp_path / "empty.wav", "empty (0 bytes)", "record or copy it again")
    (tmp_path / "notes.wav").write_text("Meeting notes: buy milk.\n")
    expect_error(tmp_path / "notes.wav", "not an audio file", "contains text", "WAV, FLAC")
    (tmp_path / "notes.m4a").write_text("Meeting notes: buy milk.\n")
    expect_error(tmp_path / "notes.m4a", "not an audio file", "contains text")
    (tmp_path / "cafe.m4a").write_text("Café notes: 東京.\n", encoding="utf-8")
    expect_error(tmp_path / "cafe.m4a", "not an audio file", "contains text")
    (tmp_path / "list.webm").write_text("#EXTM3U\n#EXTINF:10,\nhttp://127.0.0.1:9/a.aac\n")
    expect_error(tmp_path / "list.webm", "not an audio file", "contains text")  # never opened by FFmpeg
    (tmp_path / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(5000).replace(b"\xff", b"\x00"))
    expect_error(tmp_path / "noise.mp3", "not an audio file", "match no known audio format")


def test_truncated_and_corrupt_files(speech: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    reference, _ = speech
    for name in ("lame.mp3", "aac.m4a", "opus.webm", "flac44k1.flac"):
        VARIANTS[name][0](reference, tmp_path / name)
    shutil.copy(reference, tmp_path / "full.wav")
    for name in ("full.wav", "lame.mp3", "aac.m4a", "opus.webm", "flac44k1.flac"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"half-{name}").write_bytes(data[: len(data) // 2])
    expect_error(tmp_path / "half-full.wav", "truncated", "header promises", "copy or export")
    expect_error(tmp_path / "half-lame.mp3", "truncated", "header promises")
    expect_error(tmp_path / "half-opus.webm", "truncated", "header promises")
    expect_error(tmp_path / "half-flac44k1.flac", "damaged or truncated FLAC", "copy or export")
    expect_error(tmp_path / "half-aac.m4a", "damaged or truncated MP4/M4A", "copy or export")
    garbage = bytearray((tmp_path / "aac.m4a").read_bytes())  # moov (the index) after the audio
    mdat = garbage.index(b"mdat")  # the audio packets: all but the first few become noise
    start, end = mdat + 2000, mdat - 4 + int.from_bytes(garbage[mdat - 4 : mdat], "big")
    garbage[start:end] = np.random.default_rng(3).bytes(end - start)
    (tmp_path / "garbage.m4a").write_bytes(bytes(garbage))
    expect_error(tmp_path / "garbage.m4a", "damaged or truncated MP4/M4A", "copy or export")
    webm = (tmp_path / "opus.webm").read_bytes()
    assert webm.count(b"A_OPUS") == 1  # Matroska's codec ID: renamed, no decoder knows it
    (tmp_path / "unknown.webm").write_bytes(webm.replace(b"A_OPUS", b"A_QQQQ"))
    expect_error(tmp_path / "unknown.webm", "codec that cannot be decoded", "convert the recording")
    corrupt = bytearray((tmp_path / "flac44k1.flac").read_bytes())
    corrupt[len(corrupt) // 3 : len(corrupt) // 3 + 2000] = np.random.default_rng(1).bytes(2000)
    (tmp_path / "corrupt.flac").write_bytes(bytes(corrupt))
    expect_error(tmp_path / "corrupt.flac", "damaged or truncated FLAC", "copy or export")


def test_nan_inf_silence_and_no_samples(speech: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    _, original = speech
    for bad in (np.nan, np.inf):
        samples = original.copy()
        samples[1000] = bad
        sf.write(tmp_path / "bad.wav", samples, 16000, subtype="FLOAT")
        expect_error(tmp_path / "bad.wav", "NaN or infinite", "export the recording again")
    run("sox", "-n", "-r", "44100", "-c", "2", "-b", "16", str(tmp_path / "silence.wav"), "trim", "0", "3")
    expect_error(tmp_path / "silence.wav", "appears to be silent", "microphone")
    sf.write(tmp_path / "hiss.wav", original * 1e-4, 16000, subtype="FLOAT")  # -80 dBFS peak
    expect_error(tmp_path / "hiss.wav", "appears to be silent")
    sf.write(tmp_path / "nothing.wav", np.zeros(0, np.float32), 16000)
    expect_error(tmp_path / "nothing.wav", "contains no audio samples")
    sf.write(tmp_path / "blip.wav", original[:800], 16000)
    expect_error(tmp_path / "blip.wav", "50.0 ms long", "too short")
    with av.open(str(tmp_path / "v.mp4"), "w") as out:  # 2 s of 32x32 video, no sound
        video = out.add_stream("mpeg4", rate=5)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        for shade in range(10):
            picture = np.full((32, 32, 3), shade * 20, np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        out.mux(video.encode(None))
    expect_error(tmp_path / "v.mp4", "contains no audio stream")


def test_too_long_names_length_limit_and_config_key(speech: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    reference, _ = speech
    message = expect_error(reference, "0.1 minutes long", "limit of 0.05 minutes", max_seconds=3)
    assert "`max_audio_minutes` in the [transcription] section of config.toml" in message


class Spy:
    """Counts the frames decode_audio decodes: through soundfile reads, through PyAV's frame
    generator (localstt.audio.pyav.pyav_frames) and into the soxr resampler."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read = self.pyav = self.resampled = self.largest_pyav_frame = 0
        spy = self
        real_read, real_frames, real_stream = (
            sf.SoundFile.read,
            localstt.audio.pyav.pyav_frames,
            soxr.ResampleStream,
        )

        def read(handle: sf.SoundFile, *args: Any, **kwargs: Any) -> np.ndarray:
            block = real_read(handle, *args, **kwargs)
            self.read += len(block)
            return block

        def frames(*args: Any) -> Iterator[np.ndarray]:
            for frame in real_frames(*args):
                self.pyav += len(frame)
                self.largest_pyav_frame = max(self.largest_pyav_frame, len(frame))
                yield frame

        class ResampleStream(real_stream):
            def resample_chunk(self, x: np.ndarray, last: bool = False) -> np.ndarray:
                spy.resampled += len(x)
                return super().resample_chunk(x, last)

        monkeypatch.setattr(sf.SoundFile, "read", read)
        monkeypatch.setattr(localstt.audio.pyav, "pyav_frames", frames)
        monkeypatch.setattr(localstt.audio.samples.soxr, "ResampleStream", ResampleStream)


def test_two_hour_file_is_refused_from_its_header_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "two_hours.flac"
    minute = np.zeros(8000 * 60, np.int16)
    with sf.SoundFile(path, "w", 8000, 1, "PCM_16") as out:
        for _ in range(120):
            out.write(minute)
    assert path.stat().st_size < 500_000  # 2 h of silence, 57.6 M samples, tiny on disk
    spy = Spy(monkeypatch)
    tracemalloc.start()
    message = expect_error(path, "120.0 minutes long", "limit of 60 minutes", max_seconds=3600)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "max_audio_minutes" in message
    assert (spy.read, spy.pyav, spy.resampled) == (0, 0, 0)  # refused before a single sample was read
    assert peak < 1_000_000  # decoding it would take 460 MB at 16 kHz


def test_pyav_refuses_from_the_header_before_decoding(
    speech: tuple[Path, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, _ = speech
    for name in ("aac.m4a", "opus.webm"):  # the length in the stream header, and in the file's only
        VARIANTS[name][0](reference, tmp_path / name)
        spy = Spy(monkeypatch)
        message = expect_error(
            tmp_path / name, "0.1 minutes long", "over the limit of 0.05 minutes", max_seconds=3
        )
        assert "decoding stopped" not in message
        assert (spy.read, spy.pyav, spy.resampled) == (0, 0, 0)
        assert decode_audio(tmp_path / name, 6).decoder == "pyav"  # 5.5 s: within a 6 s limit
        assert spy.pyav > 5 * 48000 * 0.9 and spy.resampled == spy.pyav


def test_pyav_stops_decoding_when_no_header_gives_the_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "streamed.webm"  # written to a pipe: no duration anywhere in the header
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(120 * 48000) / 48000)).astype(np.float32)
    pipe = Pipe(path)
    encode(pipe, tone, 48000, "libopus", container="webm")
    pipe.close()
    del tone
    with av.open(str(path)) as container:
        assert container.duration is None and container.streams.audio[0].duration is None
    spy = Spy(monkeypatch)
    tracemalloc.start()
    expect_error(
        path, "longer than the limit of 0.17 minutes", "decoding stopped after 0.2 minutes", max_seconds=10
    )
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # It decoded up to one second past the limit, and at most one more codec frame: not the 120 s.
    assert 11 * 48000 < spy.pyav <= 11 * 48000 + spy.largest_pyav_frame and spy.largest_pyav_frame <= 5760
    assert spy.resampled <= spy.pyav and spy.read == 0
    assert peak < 30_000_000  # all 120 s at 48 kHz would be 23 MB of float32 alone
    assert len(decode_audio(path, None).samples) == 120 * 16000


def test_no_external_program_is_run(
    speech: tuple[Path, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """m4a and webm are decoded by PyAV inside this process: with an empty PATH and subprocess
    forbidden, the samples are the same as before (and still the speech)."""
    reference, original = speech
    expected = {}
    for name in ("aac.m4a", "opus.webm"):
        VARIANTS[name][0](reference, tmp_path / name)
        expected[name] = decode_audio(tmp_path / name, None).samples
    empty = tmp_path / "no-programs"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    def no_programs(*args: Any, **kwargs: Any) -> None:
        pytest.fail(f"decode_audio started a program: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_programs)
    assert shutil.which("ffmpeg") is None and shutil.which("ffprobe") is None
    for name, samples in expected.items():
        decoded = decode_audio(tmp_path / name, None)
        assert decoded.decoder == "pyav"
        np.testing.assert_array_equal(decoded.samples, samples)
        lag, correlation = aligned_correlation(decoded.samples, original)
        assert abs(lag) <= 1 and correlation > 0.99
        assert abs(decoded.duration - len(original) / 16000) <= 0.010


def test_split_cuts_inside_the_silences_placed_on_purpose(speech: tuple[Path, np.ndarray]) -> None:
    _, original = speech
    loud = np.flatnonzero(np.abs(original) > 1e-3)
    voice = original[loud[0] : loud[-1] + 1]  # the speech with its leading/trailing silence cut off
    gap = np.zeros(16000, np.float32)  # 1 s
    parts, gaps = [], []
    for _ in range(3):
        parts += [voice, voice]
        start = sum(map(len, parts))
        gaps.append((start, start + len(gap)))
        parts.append(gap)
    parts += [voice, voice]
    signal = np.concatenate(parts)
    signal += np.random.default_rng(2).normal(0, 3e-4, len(signal)).astype(np.float32)  # room noise
    max_window = (2 * len(voice) + len(gap)) / 16000 + 2.0
    windows = split_at_quiet_points(signal, 16000, max_window)
    assert windows[0][0] == 0 and windows[-1][1] == len(signal)
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))
    assert all(0 < end - start <= max_window * 16000 for start, end in windows)
    cuts = [end for _, end in windows[:-1]]
    assert len(cuts) == len(gaps)
    for cut, (gap_start, gap_end) in zip(cuts, gaps, strict=True):
        assert gap_start + 400 <= cut <= gap_end - 400, (cut, gap_start, gap_end)
        assert abs(cut - (gap_start + gap_end) / 2) < 1600  # near the middle of the gap


@pytest.mark.parametrize("length", [0, 1, 159_999, 160_000, 160_001, 1_234_567])
def test_split_covers_any_signal_exactly(length: int) -> None:
    signal = np.random.default_rng(length).normal(0, 0.1, length).astype(np.float32)
    windows = split_at_quiet_points(signal, 16000, 10.0, search_s=3.0)
    covered = np.concatenate([np.arange(s, e) for s, e in windows]) if windows else np.zeros(0)
    np.testing.assert_array_equal(covered, np.arange(length))
    assert all(0 < e - s <= 160_000 for s, e in windows)
    assert all(e - s >= 80_000 for s, e in windows[:-1])  # a cut is never in a window's first half
    if length <= 160_000:
        assert len(windows) == (1 if length else 0)
