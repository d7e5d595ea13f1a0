"""What a family can do with a loaded model: one small protocol per capability.

    Transcriber   speech in, timed text out (listed in the app, the API and the CLI's --model)
    PhraseBooster its decoding pulled towards the user's phrases
    SpokenLanguage told the spoken language (it cannot hear it), and the text's (it translates)
    Streamer      the same while the recording is being made: many live streams, one model call a step
    Diarizer      who speaks when; loaded beside a transcription model, never instead of it
    Answerer      a language model that answers questions about a transcript

A family implements the ones it has, by subclassing them beside `ModelFamily`
(`class Parakeet(ModelFamily, Transcriber[ParakeetOptions])`), and everyone else asks the type:
`isinstance(family, Transcriber)`. A new capability (live streaming, say) is one more protocol here
and one more base class on the families that have it; nothing else changes for the others.
(`Streamer` came that way.)

Every method is called with `loaded.lock` held: one model never runs two requests at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np

from localstt.spec import FamilyOptions, LiveSettings, Vocabulary
from localstt.transcript import Word

if TYPE_CHECKING:
    from localstt.audio import DecodedAudio
    from localstt.models.family import LoadedModel
    from localstt.transcript import Segment, SpeakerTurn

Progress = Callable[[float, str], None]
# Called with segments as soon as they are final, in order (the API streams them); a family that
# only has them all at the end may leave it uncalled: the engine hands on whatever was not handed.
SegmentsDone = Callable[[list["Segment"]], None]
# (segments, notes on how it was done) of one recording
Transcribed = tuple[list["Segment"], list[str]]

OptionsT_contra = TypeVar("OptionsT_contra", bound=FamilyOptions, contravariant=True)


@runtime_checkable
class Transcriber(Protocol[OptionsT_contra]):
    """Turns one recording into segments; its options are the family's `options_type`."""

    has_word_times: ClassVar[bool]  # its segments carry timed words

    def transcribe(
        self,
        loaded: LoadedModel,
        audio: DecodedAudio,
        options: OptionsT_contra,
        progress: Progress,
        segments_done: SegmentsDone | None = None,
    ) -> Transcribed:
        """(segments, notes on how it was done) for one recording."""
        ...

    def transcribe_batch(
        self,
        loaded: LoadedModel,
        audios: Sequence[DecodedAudio],
        options: OptionsT_contra,
        progress: Progress,
    ) -> list[Transcribed]:
        """`transcribe` of each recording, in the order given; a family that can run several at once
        overrides this (localstt/runs/batch.py)."""
        return [self.transcribe(loaded, audio, options, progress) for audio in audios]


@dataclass(frozen=True)
class LiveChunk:
    """One step's audio of one live stream: exactly the decoder's `chunk_samples` (16 kHz mono
    float32), the last one zero-padded after its `valid` samples (-1: all of them are audio)."""

    stream_id: int
    samples: np.ndarray
    valid: int
    first: bool
    last: bool
    vocabulary: Vocabulary | None = None  # the first chunk's: phrases boosted for this stream alone


@dataclass(frozen=True)
class LiveUpdate:
    """What one step made of one stream."""

    stream_id: int
    final_text: str  # text that became final in this step ("" for none); it never changes again
    final_words: tuple[Word, ...]  # its words, timed in seconds from the stream's start
    partial_text: str  # the text after it, which may still change
    last: bool  # the stream's last chunk: everything it said is final now


class LiveDecoder(Protocol):
    """Many streams of one loaded model, stepped together."""

    chunk_samples: int  # the audio of one step of one stream
    latency_seconds: float  # how long after it is spoken a word is final, compute time aside

    def step(self, chunks: Sequence[LiveChunk]) -> list[LiveUpdate]:
        """One model call for `chunks`, at most one per stream, in order; their updates in the same
        order. A stream starts with its `first` chunk and ends with its `last`."""
        ...

    def drop(self, stream_id: int) -> None:
        """Forget a stream that ended without its last chunk (its client went away)."""
        ...


@runtime_checkable
class Streamer(Protocol):
    """Transcribes while the recording is being made (localstt/live/ runs the sessions)."""

    def live_decoder(self, loaded: LoadedModel, settings: LiveSettings) -> LiveDecoder:
        """A decoder over `loaded` (never a second copy of the model), which may be the one every
        session of `loaded` shares. Called with its lock held."""
        ...


@runtime_checkable
class PhraseBooster(Protocol):
    """Pulls its decoding towards the user's phrases (NeMo's GPU phrase boosting)."""

    def phrase_problem(self, loaded: LoadedModel, phrase: str) -> str:
        """Why the model cannot spell `phrase` (one sentence naming it), or ""."""
        ...

    def boosting(self, loaded: LoadedModel, vocabulary: Vocabulary) -> AbstractContextManager[None]:
        """Within the block, the model decodes with `vocabulary`'s phrases boosted (one decoding built
        per phrase list, kept); after it, as before."""
        ...


@runtime_checkable
class SpokenLanguage(Protocol):
    """Must be told the spoken language, and writes the text in the language it is told: the same
    one, or another where it translates (what it offers: `ModelFamily.languages`)."""

    def spoken(self, loaded: LoadedModel, language: str, written: str) -> AbstractContextManager[None]:
        """Within the block, the model hears `language` and writes `written` ("" for the same)."""
        ...


@runtime_checkable
class Diarizer(Protocol):
    """Says who speaks when; the engine merges its turns with a transcript's words."""

    # The config.toml table that adds one, for the sentence that says how: (key, repo).
    suggested_table: ClassVar[tuple[str, str]]

    def diarize(self, loaded: LoadedModel, audio: DecodedAudio, progress: Progress) -> list[SpeakerTurn]:
        """Who speaks when in one recording, speakers numbered in order of first appearance."""
        ...


@runtime_checkable
class Answerer(Protocol):
    """Has a language model to ask about a transcript."""

    def ask(self, loaded: LoadedModel, transcript_text: str, question: str, max_new_tokens: int) -> str:
        """The language model's reply (with any <think> part) to `question` about a transcript."""
        ...
