"""A job that can be stopped at any moment and run again: its record (OUT/job.jsonl), what is left to
do, and how each recording ends. The command line and Ray run every job through `Job`, so the resume
sequence (hash each input, skip what the record has done, write each one's files and then its line)
is written once.

    OUT/
    ├── job.jsonl          one line per recording, appended (and flushed to the disk) as each ends
    ├── meeting.txt        a recording's outputs, each written atomically before its line
    ├── meeting.srt
    └── ...

Each line of job.jsonl is one `JobEntry`: the input as given, its sha256, the model key and pinned
commit, whether speakers were identified (and their names), "done" or "failed", the error sentence,
and the output files (names inside OUT). A run that is given the same OUT skips every recording whose
latest line says "done" with the same sha256, model, commit and speakers setting and whose outputs
are all still there; it does the others again. A line cut short by
a kill is ignored, so a kill (Ctrl-C or SIGKILL) loses at most the recordings in flight.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from localstt import formats as writers
from localstt.hashing import sha256_file
from localstt.logfile import report_unexpected
from localstt.options import TranscribeOptions
from localstt.runs.result import RayPlacement, RecordingResult
from localstt.transcript import Transcript

logger = logging.getLogger(__name__)

JOB_FILE = "job.jsonl"
Status = Literal["done", "failed"]


@dataclass(frozen=True)
class JobEntry:
    input: str
    sha256: str
    model: str
    revision: str
    status: Status
    error: str = ""
    outputs: tuple[str, ...] = ()
    duration_s: float = 0.0
    finished_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    speakers: str = ""  # speakers_setting(): "" when none were identified

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["outputs"] = list(self.outputs)
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> JobEntry | None:
        """The entry of one line, or None for a line that is not one (e.g. cut short by a kill)."""
        try:
            data = json.loads(line)
            return cls(**{**data, "outputs": tuple(data.get("outputs", ()))})
        except (ValueError, TypeError):
            return None


def speakers_setting(options: TranscribeOptions) -> str:
    """What a job line records of the speaker options: "" (off), "on", or "on: Ana, Ben"."""
    if not options.speakers:
        return ""
    names = [name.strip() for name in options.speaker_names]
    return f"on: {', '.join(names)}" if any(names) else "on"


class JobLog:
    """OUT/job.jsonl: read once when the job starts, appended to as recordings end (thread-safe)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = out_dir / JOB_FILE
        self._lock = threading.Lock()
        self.entries: list[JobEntry] = []
        if self.path.exists():
            for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                entry = JobEntry.from_json(line)
                if entry is None:
                    logger.warning("%s line %d is not a complete entry; ignored", self.path, number)
                else:
                    self.entries.append(entry)

    def done(self, sha256: str, model: str, revision: str, speakers: str = "") -> JobEntry | None:
        """The latest "done" entry of this recording by this model at this commit with this
        speakers setting, if its outputs are all still in OUT (else it is to be done again)."""
        for entry in reversed(self.entries):
            if (entry.sha256, entry.model, entry.revision, entry.speakers) != (
                sha256,
                model,
                revision,
                speakers,
            ):
                continue
            if entry.status != "done":
                return None
            if all((self.out_dir / name).is_file() for name in entry.outputs):
                return entry
            return None
        return None

    def append(self, entry: JobEntry) -> None:
        """Add `entry` as one line, on the disk before this returns."""
        with self._lock:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8", newline="\n") as handle:
                if handle.tell() > 0 and not self._ends_with_newline():
                    handle.write("\n")  # after a line cut short by a kill: start a new one
                handle.write(entry.to_json() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self.entries.append(entry)

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"


class Job:
    """The recordings of one run into `log.out_dir`: those its record has not done yet (`todo`),
    and `finish`, which writes one's outputs, then its line."""

    def __init__(
        self,
        files: Sequence[Path],
        model_key: str,
        revision: str,
        formats: Sequence[str],
        out_dir: Path,
        options: TranscribeOptions,
        config_path: Path,
        *,
        skip_done: bool = True,
    ) -> None:
        """Hash every input (an unreadable one gets "": transcribing it says why) and, with
        `skip_done`, leave out each one the record has done with this model, commit and speakers."""
        self.model_key = model_key
        self.revision = revision
        self.formats = tuple(formats)
        self.options = options
        self.config_path = config_path
        self.speakers = speakers_setting(options)
        self.log = JobLog(out_dir)
        self.hashes: dict[Path, str] = {}
        self.todo: list[Path] = []
        for path in files:
            try:
                self.hashes[path] = sha256_file(path)
            except OSError:
                self.hashes[path] = ""
            done = self.hashes[path] and self.log.done(self.hashes[path], model_key, revision, self.speakers)
            if skip_done and done:
                continue
            self.todo.append(path)
        self.skipped = len(files) - len(self.todo)

    @property
    def out_dir(self) -> Path:
        return self.log.out_dir

    def finish(
        self,
        index: int,
        transcript: Transcript | None,
        failure: str,
        ray: RayPlacement | None = None,
    ) -> RecordingResult:
        """`todo[index]` ended: write its outputs into the job's folder (when it was transcribed),
        then its line. The result's failure is the given one, or why the files could not be written
        (one sentence, the details in the log file)."""
        path = self.todo[index]
        written: list[Path] = []
        if transcript is not None and not failure:
            try:
                written = writers.write_outputs(transcript, self.formats, self.out_dir, path.stem)
            except Exception as error:  # e.g. the disk is full: this file only, the details to the log
                doing = f"transcribing {path} with {self.model_key}"
                failure = report_unexpected(error, doing, self.config_path)
        self.log.append(
            JobEntry(
                input=str(path),
                sha256=self.hashes.get(path, ""),
                model=self.model_key,
                revision=self.revision,
                status="failed" if failure else "done",
                error=failure,
                outputs=tuple(p.name for p in written),
                duration_s=transcript.duration if transcript is not None else 0.0,
                speakers=self.speakers,
            )
        )
        return RecordingResult(index, path, None if failure else transcript, failure, tuple(written), ray=ray)
