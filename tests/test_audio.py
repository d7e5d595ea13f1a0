"""decode_audio and split_at_quiet_points on real recordings made here with espeak-ng, sox and ffmpeg.

The tools are required: a missing one FAILS these tests (CI installs them), it does not skip them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from localstt.audio import AudioError, decode_audio, split_at_quiet_points

SENTENCE = "The quick brown fox jumps over the lazy dog. Local speech recognition needs clean audio."


def run(tool: str, *args: str) -> None:
    executable = shutil.which(tool)
    if executable is None:
        pytest.fail(f"{tool} is not installed (apt-get install espeak-ng sox ffmpeg)", pytrace=False)
    subprocess.run([executable, *args], check=True, capture_output=True, stdin=subprocess.DEVNULL)


def ffmpeg(*args: str) -> None:
    run("ffmpeg", "-nostdin", "-v", "error", "-y", *args)


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
    # ffmpeg's LAME writes the gapless (encoder delay/padding) tag; sox's mp3 has none (see below).
    "lame.mp3": (lambda ref, out: ffmpeg("-i", str(ref), "-c:a", "libmp3lame", "-q:a", "2", str(out)), 0),
    "aac.m4a": (
        lambda ref, out: ffmpeg("-i", str(ref), "-ar", "44100", "-b:a", "128k", "-c:a", "aac", str(out)),
        1,
    ),
    "opus.webm": (lambda ref, out: ffmpeg("-i", str(ref), "-c:a", "libopus", str(out)), 1),
    "opus.opus": (lambda ref, out: ffmpeg("-i", str(ref), "-ac", "2", "-c:a", "libopus", str(out)), 1),
}


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
    assert decoded.decoder == ("ffmpeg" if path.suffix in {".m4a", ".webm", ".opus"} else "soundfile")
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
    assert (b.source_sample_rate, b.source_channels, b.decoder) == (48000, 1, "ffmpeg")


def test_channels_are_averaged(speech: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    _, original = speech
    path = tmp_path / "left_only.wav"
    sf.write(path, np.stack([original, np.zeros_like(original)], axis=1), 16000, subtype="FLOAT")
    decoded = decode_audio(path, None)
    np.testing.assert_allclose(decoded.samples, original / 2, atol=1e-7)


def test_sox_mp3_without_gapless_tag_still_decodes(speech: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """sox writes no LAME delay/padding tag: the speech comes out 1105 samples (69 ms) late and the
    file 82 ms long, in every decoder; it is kept as decoded (no guessing), still the same speech."""
    reference, original = speech
    sox_variant(reference, tmp_path / "sox.mp3", "-C", "128")
    decoded = decode_audio(tmp_path / "sox.mp3", None)
    lag, correlation = aligned_correlation(decoded.samples, original)
    assert lag == 1105 and correlation > 0.99
    assert 0 < decoded.duration - len(original) / 16000 < 0.2


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
    expect_error(tmp_path / "half-aac.m4a", "damaged or truncated MP4/M4A", "moov atom not found")
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
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=32x32:rate=5:duration=2", "-c:v", "mpeg4", str(tmp_path / "v.mp4")
    )
    expect_error(tmp_path / "v.mp4", "contains no audio stream")


def test_too_long_names_length_limit_and_config_key(speech: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    reference, _ = speech
    message = expect_error(reference, "0.1 minutes long", "limit of 0.05 minutes", max_seconds=3)
    assert "`max_audio_minutes` in the [transcription] section of config.toml" in message


def test_two_hour_file_is_refused_from_its_header_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "two_hours.flac"
    minute = np.zeros(8000 * 60, np.int16)
    with sf.SoundFile(path, "w", 8000, 1, "PCM_16") as out:
        for _ in range(120):
            out.write(minute)
    assert path.stat().st_size < 500_000  # 2 h of silence, 57.6 M samples, tiny on disk
    tracemalloc.start()
    started = time.perf_counter()
    message = expect_error(path, "120.0 minutes long", "limit of 60 minutes", max_seconds=3600)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "max_audio_minutes" in message
    assert elapsed < 0.5 and peak < 1_000_000  # decoding it would take 460 MB at 16 kHz


def test_ffmpeg_stops_reading_when_no_header_gives_the_length(tmp_path: Path) -> None:
    path = tmp_path / "streamed.webm"  # written to a pipe: no duration anywhere in the header
    with path.open("wb") as out:
        subprocess.run(
            [shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
             "sine=frequency=440:sample_rate=48000:duration=120", "-c:a", "libopus", "-f", "webm", "-"],
            stdout=out, check=True,
        )  # fmt: skip
    tracemalloc.start()
    started = time.perf_counter()
    expect_error(path, "longer than the limit of 0.17 minutes", "decoding stopped after", max_seconds=10)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 2 and peak < 30_000_000  # all 120 s at 48 kHz would be 23 MB of float32 alone
    assert len(decode_audio(path, None).samples) == 120 * 16000


def test_missing_ffmpeg_is_named_with_how_to_install(
    speech: tuple[Path, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, _ = speech
    VARIANTS["aac.m4a"][0](reference, tmp_path / "talk.m4a")
    monkeypatch.setattr("localstt.audio.shutil.which", lambda name: None)
    expect_error(tmp_path / "talk.m4a", "needs ffmpeg", "not found on PATH", "apt install ffmpeg", "WAV")
    assert decode_audio(reference, None).decoder == "soundfile"  # WAV needs no ffmpeg
    (tmp_path / "notes.m4a").write_text("Café notes: 東京.\n", encoding="utf-8")
    expect_error(tmp_path / "notes.m4a", "not an audio file", "contains text")


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
