"""One live stream: the audio as it comes, cut into the decoder's chunks; the text as it settles;
and, when it ends, an ordinary Transcript of what was said (with the recording, for the WAV).

    session.feed(samples)        16 kHz mono float32, any length (100 ms from a microphone, say)
    session.chunks(size, ...)    the whole chunks ready for the next step (the service takes them)
    session.apply(update)        what a step made final, and the partial text after it
    session.transcript()         once it ended: segments from the final words, sentence by sentence

Final text never changes again; partial text may. Every event goes to the session's listener
(`LiveEvent`), in order, from the service's worker thread.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from localstt.errors import LiveError
from localstt.models import LiveChunk, LiveUpdate
from localstt.spec import Vocabulary
from localstt.transcript import Segment, Transcript, Word

SAMPLE_RATE = 16000
SENTENCE_ENDS = (".", "?", "!")
SEGMENT_PAUSE_S = 1.0  # a pause this long between final words starts a new segment

EventKind = Literal["final", "partial", "status", "ended"]
_ids = itertools.count(1)


@dataclass(frozen=True)
class LiveEvent:
    kind: EventKind
    text: str = ""  # final: the text that became final; partial: the whole partial text now
    words: tuple[Word, ...] = ()  # final: its words, on the recording's clock
    behind_s: float = 0.0  # audio received but not yet stepped
    waiting: str = ""  # status: why steps are not running now (e.g. a file job holds the model)


Listener = Callable[[LiveEvent], None]


@dataclass(eq=False)
class LiveSession:
    model_key: str
    listener: Listener
    max_seconds: float
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    stream_id: int = field(default_factory=lambda: next(_ids))
    started: float = field(default_factory=time.monotonic)
    final_words: list[Word] = field(default_factory=list)
    final_parts: list[str] = field(default_factory=list)
    partial: str = ""
    received: int = 0  # samples fed
    stepped: int = 0  # samples the decoder has had (whole chunks, then the tail)
    ending: bool = False  # no more audio: the tail goes out as the last chunk
    recorded: list[np.ndarray] = field(default_factory=list, repr=False)
    ended: threading.Event = field(default_factory=threading.Event, repr=False)
    error: str = ""  # why it ended early, if it did
    _pending: list[np.ndarray] = field(default_factory=list, repr=False)
    _pending_samples: int = 0
    _sent_first: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def final_text(self) -> str:
        return " ".join(part for part in self.final_parts if part).strip()

    @property
    def received_s(self) -> float:
        return self.received / SAMPLE_RATE

    @property
    def behind_s(self) -> float:
        return max(0.0, (self.received - self.stepped) / SAMPLE_RATE)

    def feed(self, samples: np.ndarray) -> None:
        """Add audio (16 kHz mono float32). LiveError past the session's length limit or once ended."""
        if samples.ndim != 1:
            raise LiveError("Send mono audio: one channel of 16-bit samples.")
        with self._lock:
            if self.ending or self.ended.is_set():
                raise LiveError("This live session has ended; start a new one.")
            if (self.received + len(samples)) / SAMPLE_RATE > self.max_seconds:
                raise LiveError(
                    f"A live session lasts at most {self.max_seconds / 60:g} minutes "
                    "(max_session_minutes in config.toml's [live]); start a new one."
                )
            block = np.ascontiguousarray(samples, dtype=np.float32)
            self._pending.append(block)
            self._pending_samples += len(block)
            self.recorded.append(block)
            self.received += len(block)

    def end(self) -> None:
        """No more audio: what is left goes out as the last chunk, so the last words are kept."""
        with self._lock:
            self.ending = True

    def chunks(self, size: int, at_most: int) -> list[LiveChunk]:
        """Up to `at_most` whole chunks of `size` samples, and the zero-padded tail as the last chunk
        once the session is ending."""
        with self._lock:
            if self.ended.is_set():
                return []
            ready: list[LiveChunk] = []
            data = np.concatenate(self._pending) if len(self._pending) > 1 else None
            buffer = (
                data if data is not None else (self._pending[0] if self._pending else np.zeros(0, np.float32))
            )
            offset = 0
            while len(ready) < at_most and len(buffer) - offset >= size:
                last = self.ending and len(buffer) - offset == size
                ready.append(self._chunk(buffer[offset : offset + size], size, last))
                offset += size
            if self.ending and len(ready) < at_most and not (ready and ready[-1].last):
                tail = buffer[offset:]
                padded = np.zeros(size, np.float32)
                padded[: len(tail)] = tail
                ready.append(self._chunk(padded, len(tail), True))
                offset = len(buffer)
            rest = buffer[offset:]
            self._pending = [rest] if len(rest) else []
            self._pending_samples = len(rest)
            return ready

    def _chunk(self, samples: np.ndarray, valid: int, last: bool) -> LiveChunk:
        first = not self._sent_first
        self._sent_first = True
        self.stepped += valid
        valid_or_all = valid if valid < len(samples) else -1
        vocabulary = self.vocabulary if first and self.vocabulary.phrases else None
        return LiveChunk(self.stream_id, samples, valid_or_all, first, last, vocabulary)

    def apply(self, update: LiveUpdate) -> None:
        """What one step made final (never to change again) and the partial text after it."""
        if update.final_text:
            self.final_parts.append(update.final_text)
            self.final_words.extend(update.final_words)
            self.listener(LiveEvent("final", update.final_text, update.final_words, self.behind_s))
        if update.partial_text != self.partial:
            self.partial = update.partial_text
            self.listener(LiveEvent("partial", update.partial_text, behind_s=self.behind_s))
        if update.last:
            self.finish()

    def finish(self, error: str = "") -> None:
        with self._lock:
            if self.ended.is_set():
                return
            self.error = error
            self.partial = ""
            self.ended.set()
        self.listener(LiveEvent("ended", self.final_text, behind_s=0.0, waiting=error))

    def status(self, waiting: str) -> None:
        self.listener(LiveEvent("status", behind_s=self.behind_s, waiting=waiting))

    def recording(self) -> np.ndarray:
        return np.concatenate(self.recorded) if self.recorded else np.zeros(0, np.float32)

    def transcript(
        self, revision: str, notes: list[str], options: Mapping[str, Any] | None = None
    ) -> Transcript:
        """What was said, as any transcript: its final words in segments that end at a sentence's end
        or a pause."""
        segments: list[Segment] = []
        current: list[Word] = []
        for word in self.final_words:
            if current and (
                current[-1].text.endswith(SENTENCE_ENDS) or word.start - current[-1].end >= SEGMENT_PAUSE_S
            ):
                segments.append(_segment(current))
                current = []
            current.append(word)
        if current:
            segments.append(_segment(current))
        if not segments and self.final_text:
            segments = [Segment(0.0, round(self.received_s, 3), self.final_text)]
        return Transcript(
            text=" ".join(segment.text for segment in segments).strip(),
            segments=segments,
            duration=round(self.received_s, 3),
            model_key=self.model_key,
            revision=revision,
            timings={"live_s": round(time.monotonic() - self.started, 3)},
            source_name="live",
            notes=notes,
            options=dict(options or {}),
        )


def _segment(words: list[Word]) -> Segment:
    return Segment(words[0].start, words[-1].end, " ".join(word.text for word in words), tuple(words))
