"""One recording's outcome, the same type wherever it ran (here, in a batch, on Ray)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localstt.transcript import Transcript


@dataclass(frozen=True)
class RayPlacement:
    """Where a recording ran on Ray, and what that actor's load cost."""

    node: str  # "hostname (ip)" of the actor's node
    actor_pid: int
    actor_loads: int  # how many times that actor loaded the model (1)
    load_s: float  # how long that actor's load took
    actor_ready_at: float  # time.time() when that actor had loaded its model
    torch_threads: int = 0  # the CPU threads that actor's torch runs on (at most its share of CPUs)


@dataclass(frozen=True)
class RecordingResult:
    index: int  # the recording's place in the input
    path: Path
    transcript: Transcript | None = None
    failure: str = ""  # why it could not be done, one sentence; "" when it was
    outputs: tuple[Path, ...] = ()  # the files written, in the order of the formats
    name: str = ""  # the recording as the user knows it, when not its file's name (an upload's)
    ray: RayPlacement | None = None  # set when it ran on Ray

    @property
    def label(self) -> str:
        return self.name or self.path.name
