"""The engine on the exported tiny models: real audio in many formats, long audio, bad input, outputs."""

from __future__ import annotations

import math
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import srt
import webvtt

from localstt.audio import AudioError, decode_audio
from localstt.engine import EngineError, TranscribeOptions, ask_llm, split_thinking, transcribe
from localstt.formats import write_outputs
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
OPTIONS = TranscribeOptions()


def encode(out: Path, codec: str, rate: int, bit_rate: int) -> None:
    """PHRASE_WAV encoded in-process by PyAV (FFmpeg's libraries; no ffmpeg program)."""
    samples, source_rate = sf.read(PHRASE_WAV, dtype="float32", always_2d=True)
    layout = {1: "mono", 2: "stereo"}[samples.shape[1]]
    with av.open(str(out), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = source_rate, 0, Fraction(1, source_rate)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def convert(tmp_path: Path, name: str, *sox_args: str) -> Path:
    out = tmp_path / name
    if out.suffix == ".mp3":
        encode(out, "libmp3lame", 44100, 192_000)
    else:
        subprocess.run(["sox", str(PHRASE_WAV), *sox_args, str(out)], check=True)
    return out


VARIANTS = {
    "16k-mono.wav": ("-r", "16000", "-c", "1"),
    "44k1-stereo.wav": ("-r", "44100", "-c", "2"),
    "48k-stereo.wav": ("-r", "48000", "-c", "2"),
    "8bit.wav": ("-b", "8", "-e", "unsigned-integer"),
    "24bit.wav": ("-b", "24", "-r", "22050"),
    "float32.wav": ("-e", "floating-point", "-b", "32", "-r", "32000"),
    "phrase.mp3": (),
    "phrase.ogg": ("-r", "48000", "-c", "2"),
    "phrase.flac": ("-r", "44100"),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_parakeet_gives_the_phrase_from_every_format(model_store, tmp_path, name):
    path = convert(tmp_path, name, *VARIANTS[name])
    transcript = transcribe(path, "parakeet", OPTIONS, model_store)
    assert transcript.text == PHRASE
    assert transcript.source_name == name
    words = transcript.words
    assert " ".join(w.text for w in words) == PHRASE
    assert all(a.start <= b.start for a, b in zip(words, words[1:], strict=False))
    assert words[0].start >= 0 and words[-1].end <= transcript.duration
    assert transcript.revision == model_store.config.model("parakeet").revision


def long_recording(tmp_path: Path, repeats: int) -> Path:
    """The phrase `repeats` times with 1 s of silence after each: several minutes of real speech."""
    speech, rate = sf.read(PHRASE_WAV, dtype="float32")
    one = np.concatenate([speech, np.zeros(rate, dtype=np.float32)])
    path = tmp_path / "long.flac"
    sf.write(path, np.tile(one, repeats), rate)
    return path


def test_parakeet_long_audio_uses_local_attention_and_restores_the_model(model_store, tmp_path):
    path = long_recording(tmp_path, 40)
    messages: list[str] = []
    options = TranscribeOptions.build(full_attention_max_minutes=1.0)
    transcript = transcribe(path, "parakeet", options, model_store, lambda f, m: messages.append(m))
    assert transcript.duration == pytest.approx(sf.info(path).duration, abs=0.01)
    assert transcript.duration > 170
    assert "local attention for long audio" in messages
    assert len(transcript.segments) == 40
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    assert all(s.end > s.start for s in transcript.segments)
    assert all(a.end <= b.start for a, b in zip(transcript.segments, transcript.segments[1:], strict=False))
    one = sf.info(PHRASE_WAV).duration + 1.0
    for index, segment in enumerate(transcript.segments):  # each phrase found where it was spoken
        assert index * one - 0.5 <= segment.start <= index * one + 1.0
    assert transcript.segments[-1].end >= transcript.duration - 2.5
    assert transcript.text.count(PHRASE) >= 30

    model = model_store.load("parakeet").model
    assert model.encoder.self_attention_model == "rel_pos"
    assert list(model.encoder.att_context_size) == [-1, -1]
    assert model.cfg.encoder.self_attention_model == "rel_pos"
    assert transcribe(PHRASE_WAV, "parakeet", OPTIONS, model_store).text == PHRASE


def test_canary_long_audio_is_cut_into_windows_of_at_most_40_seconds(model_store, tmp_path):
    path = long_recording(tmp_path, 40)
    messages: list[str] = []
    # The tiny LLM's words are random; keep it short.
    options = TranscribeOptions.build(canary_max_new_tokens=12)
    transcript = transcribe(path, "canary-qwen", options, model_store, lambda f, m: messages.append(m))
    windows = math.ceil(transcript.duration / 40)
    assert f"window 1-{len(transcript.segments)} of {len(transcript.segments)}" in messages
    assert len(transcript.segments) >= windows
    assert transcript.segments[0].start == 0.0
    assert transcript.segments[-1].end == pytest.approx(transcript.duration, abs=0.01)
    for a, b in zip(transcript.segments, transcript.segments[1:], strict=False):
        assert a.end == b.start  # contiguous windows: nothing dropped, nothing read twice
    assert all(0 < s.end - s.start <= 40.0 for s in transcript.segments)
    assert transcript.model_key == "canary-qwen"


BAD_INPUTS = {
    "empty.wav": (b"", "is empty"),
    "notes.wav": (b"These are my meeting notes, not a recording.\n" * 20, "not an audio file"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gets_one_clear_sentence_and_the_next_request_works(model_store, tmp_path, name):
    data, expected = BAD_INPUTS[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(AudioError, match=expected) as caught:
        transcribe(path, "parakeet", OPTIONS, model_store)
    assert "\n" not in str(caught.value)
    assert transcribe(PHRASE_WAV, "parakeet", OPTIONS, model_store).text == PHRASE


def test_silence_and_nan_are_refused(model_store, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(32000, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="appears to be silent"):
        transcribe(silent, "parakeet", OPTIONS, model_store)
    broken = tmp_path / "nan.wav"
    samples = np.full(32000, 0.1, dtype=np.float32)
    samples[100] = np.nan
    sf.write(broken, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        transcribe(broken, "parakeet", OPTIONS, model_store)


def test_too_long_is_refused_with_the_setting_to_change(model_store, tmp_path):
    path = long_recording(tmp_path, 20)
    with pytest.raises(AudioError, match="max_audio_minutes"):
        transcribe(path, "parakeet", TranscribeOptions(max_audio_minutes=0.5), model_store)


def vtt_seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.split(":")
    return round(int(hours) * 3600 + int(minutes) * 60 + float(seconds), 3)


def test_srt_and_vtt_parse_back_to_the_same_cues(model_store, tmp_path):
    transcript = transcribe(long_recording(tmp_path, 3), "parakeet", OPTIONS, model_store)
    paths = {p.suffix: p for p in write_outputs(transcript, ["srt", "vtt", "txt", "json"], tmp_path, "out")}
    subtitles = list(srt.parse(paths[".srt"].read_text(encoding="utf-8")))
    captions = webvtt.read(str(paths[".vtt"]))
    assert [s.content for s in subtitles] == [c.text for c in captions]
    assert [(s.start.total_seconds(), s.end.total_seconds()) for s in subtitles] == [
        (vtt_seconds(c.start), vtt_seconds(c.end)) for c in captions
    ]
    assert " ".join(s.content.replace("\n", " ") for s in subtitles) == transcript.text
    assert subtitles[0].start.total_seconds() == transcript.words[0].start
    assert all(len(line) <= 42 for s in subtitles for line in s.content.splitlines())
    assert paths[".txt"].read_text(encoding="utf-8").split() == transcript.text.split()


def test_thinking_is_shown_apart_from_the_answer():
    answer = split_thinking("<think>The user wants a summary.</think>\n\nA fox jumps over a dog.")
    assert answer.answer == "A fox jumps over a dog."
    assert answer.thinking == "The user wants a summary."
    assert split_thinking("Plain answer.").thinking == ""


def test_m4a_is_decoded_by_pyav(model_store, tmp_path):
    path = tmp_path / "phone.m4a"
    encode(path, "aac", 44100, 128_000)
    assert decode_audio(path, None).decoder == "pyav"
    assert transcribe(path, "parakeet", OPTIONS, model_store).text == PHRASE


def test_llm_question_returns_only_the_reply(model_store):
    loaded = model_store.load("canary-qwen")
    model = loaded.model
    answer = ask_llm(model_store, "canary-qwen", PHRASE, "Summarise this transcript.", max_new_tokens=6)
    # The reply is what the LLM generates after the prompt, with the LoRA adapter disabled.
    import torch
    from nemo.collections.common.prompts import PromptFormatter

    turns = [{"role": "user", "content": f"Summarise this transcript.\n\nTranscript:\n{PHRASE}"}]
    prompt = torch.as_tensor(
        PromptFormatter.resolve(model.cfg.prompt_format)(model.tokenizer).encode_dialog(turns=turns)[
            "input_ids"
        ]
    )
    with torch.inference_mode(), model.llm.disable_adapter():
        full = model.generate(prompts=prompt.unsqueeze(0), max_new_tokens=6)[0].tolist()
    assert full[: len(prompt)] == prompt.tolist()
    new = full[len(prompt) :]
    if model.text_eos_id in new:
        new = new[: new.index(model.text_eos_id)]
    assert answer == split_thinking(model.tokenizer.ids_to_text(new))
    assert "Summarise this transcript" not in answer.answer
    with pytest.raises(EngineError, match="no language model"):
        ask_llm(model_store, "parakeet", PHRASE, "Summarise.")


def test_canary_windows_get_the_speaker_heard_most_in_them_and_say_so(model_store):
    import json

    from testkit.tiny_models import PHRASE_DIALOGUE_JSON, PHRASE_DIALOGUE_WAV

    truth = json.loads(PHRASE_DIALOGUE_JSON.read_text(encoding="utf-8"))
    result = transcribe(
        PHRASE_DIALOGUE_WAV, "canary-qwen", TranscribeOptions.build(speakers=True), model_store
    )
    assert result.has_speakers and result.segments
    assert all(not s.words and s.speaker is not None for s in result.segments)
    assert result.notes[-1] == (
        "Canary-Qwen gives no word times: each part is labelled with the speaker heard most in it"
    )

    def heard_most(start: float, end: float) -> int:
        spoken = [0.0, 0.0]
        for t in truth:
            spoken[t["speaker"]] += max(0.0, min(end, t["end"]) - max(start, t["start"]))
        return int(spoken[1] > spoken[0])

    # one speaker number per true voice, whichever number the first window gave it
    pairs = {(s.speaker, heard_most(s.start, s.end)) for s in result.segments}
    assert len(pairs) == len({speaker for speaker, _ in pairs}) == len({voice for _, voice in pairs})
    assert model_store.loaded("sortformer") is not None  # beside Canary-Qwen, not instead of it
    assert model_store.loaded("canary-qwen") is not None
