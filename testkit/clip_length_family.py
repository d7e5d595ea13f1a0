"""A throwaway model family, defined only for the tests: proof that a family is one module.

Its "model" is a word list in the export (`words.txt`, from the hub like any other file). It
"transcribes" a recording as its first word followed by the recording's length, computed from the
decoded samples and rounded to `clip_length_digits` (a [transcription] setting in config.toml).
Importing this module registers it (kind "test-clip-length"); `unregister()` takes it out again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from localstt.errors import HubError
from localstt.models import ModelFamily, Transcriber, register
from localstt.models import unregister as _unregister
from localstt.precision import ModelMakeup
from localstt.spec import FamilyOptions, Limit, setting
from localstt.transcript import Segment

KIND = "test-clip-length"
WORDS = "words.txt"


@dataclass(frozen=True)
class ClipLengthOptions(FamilyOptions):
    clip_length_digits: int = setting(1, Limit(0, True, 3, True, "a whole number from 0 to 3"))
    clip_length_pause_s: float = setting(0.0, Limit(0, True, 5, False, "a number of seconds from 0 to 5"))


class ClipLength(ModelFamily, Transcriber[ClipLengthOptions]):
    kind: ClassVar[str] = KIND
    has_word_times: ClassVar[bool] = False
    makeup: ClassVar[ModelMakeup] = ModelMakeup("Clip length")
    options_type: ClassVar[type[FamilyOptions]] = ClipLengthOptions

    def __init__(self) -> None:
        self.events: list[str] = []  # what happened, in order: "load KEY", "start KEY", "end KEY"
        self.running = 0
        self.most_running = 0
        self._guard = threading.Lock()

    def plan(self, api: Any, spec: Any) -> list[Any]:
        from localstt.hub import list_files

        files = list_files(api, spec.repo, spec.revision, {WORDS: "{name}"})
        if not files:
            raise HubError(f"{spec.repo}@{spec.short_revision} has no {WORDS}.")
        return files

    def load(self, export_dir: Path, manifest: Any, device: str, precision: Any) -> tuple[Any, str]:
        self.events.append(f"load {manifest.key}")
        return (export_dir / WORDS).read_text(encoding="utf-8").split(), "text"

    def transcribe(
        self, loaded: Any, audio: Any, options: ClipLengthOptions, progress: Any, segments_done: Any = None
    ) -> tuple[list[Segment], list[str]]:
        with self._guard:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.events.append(f"start {loaded.spec.key}")
        time.sleep(options.clip_length_pause_s)
        seconds = round(audio.duration, options.clip_length_digits)
        with self._guard:
            self.running -= 1
            self.events.append(f"end {loaded.spec.key}")
        text = f"{loaded.model[0]} {seconds:.{options.clip_length_digits}f} seconds"
        return [Segment(0.0, round(audio.duration, 3), text)], [f"counted {audio.samples.size} samples"]


CLIP_LENGTH = register(ClipLength())


def unregister() -> None:
    _unregister(KIND)
