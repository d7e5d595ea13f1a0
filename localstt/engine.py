"""The transcription engine: audio in, Transcript out. The CLI and the web app both call `transcribe`.

decode the audio -> store.use(model) -> its family's transcribe (localstt/models/) -> Transcript

With `options.speakers`, the speaker diarizer of config.toml then runs over the same audio, and its
turns are merged with the words (localstt/speakers.py).
"""

from __future__ import annotations

import dataclasses
import re
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localstt import memory
from localstt.audio import DecodedAudio, decode_audio
from localstt.errors import ConfigError, EngineError, VocabularyError
from localstt.language_choice import checked_languages, told
from localstt.models import (
    Answerer,
    Diarizer,
    LoadedModel,
    ModelFamily,
    PhraseBooster,
    Progress,
    SegmentsDone,
    Transcriber,
    families,
)
from localstt.options import TranscribeOptions
from localstt.speakers import label_speakers
from localstt.spec import Vocabulary
from localstt.store import ModelStore
from localstt.transcript import Segment, SpeakerTurn, Transcript, display_names
from localstt.vocabulary import apply_rules

__all__ = [
    "EngineError",
    "LlmAnswer",
    "Progress",
    "TranscribeOptions",
    "ask_llm",
    "split_thinking",
    "transcribe",
    "transcribe_together",
]


@dataclass(frozen=True)
class LlmAnswer:
    answer: str
    thinking: str


def transcribe(
    audio: Path | DecodedAudio,
    model_key: str,
    options: TranscribeOptions,
    store: ModelStore,
    progress: Progress | None = None,
    segments_done: SegmentsDone | None = None,
) -> Transcript:
    """Transcribe one recording with the model `model_key` from `store`.

    Args:
        audio: a file (decoded here, refused past `options.max_audio_minutes`) or decoded samples.
        model_key: a model of config.toml (its key).
        options: how (`store.config.transcription` is config.toml's); the Transcript records them.
            With `options.speakers`, config.toml's speaker diarizer says who spoke each word.
        store: where the model is loaded from and kept.
        progress: called with (fraction done, what is happening).
        segments_done: called with segments as they become final, in order, each segment once (all
            of them at the end, for a model that reads the recording in one pass, or with speakers).

    Returns:
        The Transcript, with its segments, timings, notes and the options used (and the speakers).

    Raises:
        AudioError: the recording cannot be read (this file only).
        EngineError: it failed in a way the user can act on, e.g. out of memory (this file only).
        ExportError, LoadError, ConfigError: the model (or the diarizer) cannot be used (the whole run).
    """
    report: Progress = progress or (lambda fraction, message: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    spoken = checked_languages(store.config.model(model_key), options)
    if isinstance(audio, Path):
        report(0.0, "reading audio")
        decoded = decode_audio(audio, max_seconds=options.max_audio_minutes * 60)
        source_name = audio.name
    else:
        decoded, source_name = audio, ""
    timings["decode_s"] = time.perf_counter() - started
    report(0.05, f"loading {model_key}")
    mark = time.perf_counter()
    with store.use(model_key, progress=lambda message: report(0.05, message)) as loaded:
        timings["load_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        family, transcriber = loaded.family, transcriber_of(loaded)
        handed_on = 0

        def hand_on(done: list[Segment]) -> None:
            nonlocal handed_on
            handed_on += len(done)
            if segments_done is not None:
                segments_done(done)

        # With speakers, segments are split where the speaker changes, and rules rewrite them at the
        # end: none is final before that.
        streaming = None if options.speakers or options.vocabulary.replacements else hand_on
        with (
            _out_of_memory_as_engine_error(loaded),
            loaded.lock,
            boosted(loaded, options.vocabulary),
            told(loaded, options),
        ):
            segments, notes = transcriber.transcribe(
                loaded, decoded, options.of(family.options_type), report, streaming
            )
        revision = loaded.spec.revision
    timings["transcribe_s"] = time.perf_counter() - mark
    turns: list[SpeakerTurn] | None = None
    if options.speakers:
        mark = time.perf_counter()
        turns = diarize(decoded, store, report)
        timings["speakers_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started
    if decoded.duration > 0:
        timings["rtfx"] = decoded.duration / max(timings["transcribe_s"], 1e-9)
    transcript = _transcript(
        segments, notes, decoded, source_name, model_key, revision, timings, options, family, turns, spoken
    )
    if segments_done is not None and transcript.segments[handed_on:]:
        segments_done(transcript.segments[handed_on:])
    report(1.0, "done")
    return transcript


def transcribe_together(
    recordings: Sequence[tuple[DecodedAudio, str]],
    model_key: str,
    options: TranscribeOptions,
    store: ModelStore,
    progress: Progress | None = None,
) -> list[Transcript]:
    """Several decoded recordings (with their names) in one use of the model; its family runs together
    what it can (localstt/batch.py batches a job this way). The transcripts are in the order given.

    Raises:
        EngineError: out of memory even one recording at a time.
        Any error of one recording fails the call: batch.py then does them one by one.
        ExportError, LoadError, ConfigError: the model cannot be used (the whole run).
    """
    report: Progress = progress or (lambda fraction, message: None)
    spoken = checked_languages(store.config.model(model_key), options)
    with store.use(model_key, progress=lambda message: report(0.0, message)) as loaded:
        family, transcriber = loaded.family, transcriber_of(loaded)
        started = time.perf_counter()
        with (
            _out_of_memory_as_engine_error(loaded),
            loaded.lock,
            boosted(loaded, options.vocabulary),
            told(loaded, options),
        ):
            results = transcriber.transcribe_batch(
                loaded, [audio for audio, _ in recordings], options.of(family.options_type), report
            )
        seconds = time.perf_counter() - started
        revision = loaded.spec.revision
    audio_s = sum(audio.duration for audio, _ in recordings)
    timings: dict[str, float] = {"batch_s": seconds, "batch_recordings": len(recordings)}
    if audio_s > 0:
        timings["batch_rtfx"] = audio_s / max(seconds, 1e-9)
    transcripts = []
    for (audio, name), (segments, notes) in zip(recordings, results, strict=True):
        own = dict(timings)
        turns: list[SpeakerTurn] | None = None
        if options.speakers:  # the diarizer runs one recording at a time
            mark = time.perf_counter()
            turns = diarize(audio, store, report)
            own["speakers_s"] = time.perf_counter() - mark
        transcripts.append(
            _transcript(
                segments, notes, audio, name, model_key, revision, own, options, family, turns, spoken
            )
        )
    return transcripts


def boosted(loaded: LoadedModel, vocabulary: Vocabulary) -> AbstractContextManager[None]:
    """The model decoding with `vocabulary`'s phrases boosted, where its family can; its phrases
    checked against the model's tokenizer first (VocabularyError naming the first it cannot spell)."""
    family = loaded.family
    if not vocabulary.phrases or not isinstance(family, PhraseBooster):
        return nullcontext()
    checked = f"phrases checked {vocabulary.phrases_key}"
    if checked not in loaded.cache:
        for phrase in vocabulary.phrases:
            if problem := family.phrase_problem(loaded, phrase):
                raise VocabularyError(problem)
        loaded.cache[checked] = True
    return family.boosting(loaded, vocabulary)


def vocabulary_notes(family: ModelFamily, vocabulary: Vocabulary) -> list[str]:
    """What a transcript says of its vocabulary: where a family cannot boost, that its phrases were
    not applied, and why."""
    if not vocabulary.phrases or isinstance(family, PhraseBooster):
        return []
    rules = "; its replacement rules were" if vocabulary.replacements else ""
    return [
        f"the vocabulary's phrases were not applied: {family.name} models cannot be boosted (NeMo's "
        f"phrase boosting does not reach their decoding){rules}"
    ]


def transcriber_of(loaded: LoadedModel) -> Transcriber[Any]:
    """The loaded model's family as a Transcriber, or EngineError for a family that is none."""
    family = loaded.family
    if not isinstance(family, Transcriber):
        raise EngineError(
            f"{loaded.spec.key} is a {family.name} model, which does not transcribe; pick another "
            "model and tick 'Identify speakers'."
        )
    return family


def diarizer_key(store: ModelStore) -> str:
    """The speaker diarizer of config.toml, or ConfigError saying how to add one."""
    key = store.config.diarizer
    if key is None:
        suggestions = [
            f'the [models.{table}] table of the shipped config.toml (repo = "{repo}", kind = "{family.kind}")'
            for family in families()
            if isinstance(family, Diarizer)
            for table, repo in [family.suggested_table]
        ]
        raise ConfigError(
            f"Identifying speakers needs a speaker diarizer in {store.config.path}; add "
            f"{' or '.join(suggestions) or 'one'} and export it."
        )
    return key


def diarize(audio: DecodedAudio, store: ModelStore, progress: Progress | None = None) -> list[SpeakerTurn]:
    """Who speaks when in `audio`, by config.toml's speaker diarizer (loaded beside the
    transcription model and kept).

    Raises:
        EngineError: out of memory (this file only).
        ConfigError: config.toml has no diarizer; ExportError, LoadError: it cannot be used.
    """
    report: Progress = progress or (lambda fraction, message: None)
    key = diarizer_key(store)
    report(0.9, "identifying speakers")
    with (
        store.use(key, progress=lambda message: report(0.9, message)) as loaded,
        _out_of_memory_as_engine_error(loaded),
        loaded.lock,
    ):
        family = loaded.family
        if not isinstance(family, Diarizer):
            raise ConfigError(f"{key} ({family.name}) tells no speakers apart.")
        return family.diarize(loaded, audio, lambda fraction, message: report(0.9, message))


def with_speakers(
    transcript: Transcript, audio: DecodedAudio, store: ModelStore, names: Sequence[str] = ()
) -> Transcript:
    """`transcript` (made from `audio` already, e.g. live) with who said each word: config.toml's
    diarizer runs over `audio` and its turns are merged with the words, as `transcribe` does with
    `options.speakers`. The errors are `diarize`'s."""
    turns = diarize(audio, store)
    segments, turns, count = label_speakers(transcript.segments, turns)
    notes = [*transcript.notes] + (["no speech was heard by the speaker diarizer"] if count == 0 else [])
    return dataclasses.replace(
        transcript,
        text=" ".join(segment.text for segment in segments).strip(),
        segments=segments,
        notes=notes,
        options={**transcript.options, "speakers": True, "speaker_names": list(names)},
        speaker_turns=turns,
        speaker_names=display_names(count, names),
    )


@contextmanager
def _out_of_memory_as_engine_error(loaded: LoadedModel) -> Iterator[None]:
    """A model run that runs out of memory becomes an EngineError saying what to do, its memory freed."""
    try:
        yield
    except Exception as error:
        ran_out = memory.out_of_memory(error)
        if not ran_out:
            raise
        traceback.clear_frames(error.__traceback__)  # let go of the failed run's tensors
        memory.release_memory(loaded.device)
        raise EngineError(memory.OUT_OF_MEMORY[ran_out]) from error


def _transcript(
    segments: list[Segment],
    notes: list[str],
    audio: DecodedAudio,
    source_name: str,
    model_key: str,
    revision: str,
    timings: dict[str, float],
    options: TranscribeOptions,
    family: ModelFamily,
    turns: list[SpeakerTurn] | None = None,
    spoken: tuple[str, str] = ("", ""),
) -> Transcript:
    """The Transcript; with `turns` (speakers were asked for), its segments split by speaker and
    every speaker named."""
    names: list[str] = []
    if turns is not None:
        segments, turns, count = label_speakers(segments, turns)
        names = display_names(count, options.speaker_names)
        if not (isinstance(family, Transcriber) and family.has_word_times):
            notes = [
                *notes,
                f"{family.makeup.name} gives no word times: each part is labelled with the speaker "
                "heard most in it",
            ]
        if count == 0:
            notes = [*notes, "no speech was heard by the speaker diarizer"]
    transcript = Transcript(
        text=" ".join(segment.text for segment in segments).strip(),
        segments=segments,
        duration=round(audio.duration, 3),
        model_key=model_key,
        revision=revision,
        timings={name: round(value, 4) for name, value in timings.items()},
        source_name=source_name,
        notes=[*notes, *vocabulary_notes(family, options.vocabulary)],
        options=options.used_by(family.options_type),
        speaker_turns=turns or [],
        speaker_names=names,
        language=spoken[0],
        translated_to=spoken[1],
    )
    return with_rules(transcript, options.vocabulary.replacements)


def with_rules(transcript: Transcript, rules: Sequence[tuple[str, str]]) -> Transcript:
    """`transcript` with the replacement rules applied; its options record the ones that fired."""
    replaced, fired = apply_rules(transcript, rules)
    if not fired:
        return replaced
    return dataclasses.replace(replaced, options={**replaced.options, "replacements_fired": fired})


def split_thinking(reply: str) -> LlmAnswer:
    thinking = "\n".join(
        part.strip() for part in re.findall(r"<think>(.*?)(?:</think>|$)", reply, flags=re.S)
    )
    answer = re.sub(r"<think>.*?(?:</think>|$)", "", reply, flags=re.S).strip()
    return LlmAnswer(answer=answer, thinking=thinking.strip())


def ask_llm(
    store: ModelStore, model_key: str, transcript_text: str, question: str, max_new_tokens: int = 512
) -> LlmAnswer:
    """Ask a model's language model (a speech-LLM's, its speech adapter turned off) about a transcript.

    Raises:
        EngineError: the model has no language model, or the question is empty.
    """
    with store.use(model_key) as loaded:
        family = loaded.family
        if not isinstance(family, Answerer):
            askable = ", ".join(f.name for f in families() if isinstance(f, Answerer)) or "none here"
            raise EngineError(
                f"{model_key} has no language model to ask; pick a model that has one ({askable})."
            )
        if not question.strip():
            raise EngineError("Type a question first, for example: Summarise this transcript.")
        with loaded.lock:
            reply = family.ask(loaded, transcript_text, question, max_new_tokens)
    return split_thinking(reply)
