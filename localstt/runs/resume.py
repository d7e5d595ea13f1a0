"""A job that can be stopped at any moment and run again: its record (OUT/job.jsonl), what is left to
do, and how each recording ends. The command line and Ray run every job through `Job`, so the resume
sequence (hash each input, skip what the record has done, write each one's files and then its line)
is written once.

    OUT/
    ├── job.jsonl          one line per recording, appended (and flushed to the disk) as each ends
    ├── meeting.txt        a recording's outputs, each written atomically before its line
    ├── meeting.srt
    ├── .writing-<token>.json   only while a recording's files are being written (see below)
    └── ...

Each line of job.jsonl is one `JobEntry`: the input as given, its sha256, the model key and pinned
commit, whether speakers were identified (and their names), the fingerprint of the vocabulary (its
phrases, strength and rules: localstt/vocabulary.py), the subtitles' line controls when they are not
the defaults and the job writes SRT or WebVTT, "done" or "failed", the error sentence,
and the output files (names inside OUT). A run that is given the same OUT skips every recording whose
latest line says "done" with the same sha256, model, commit, speakers, vocabulary and line controls
and whose outputs
are all still there; it does the others again. A line cut short by
a kill is ignored, so a kill (Ctrl-C or SIGKILL) loses at most the recordings in flight.

A kill can also land between two of a recording's files. So before its files are published, a
marker `.writing-<random token>.json` records each file's sha256; the marker goes once the line is
written. The next run over the same OUT removes each file that a marker names by content and no line
claims (the killed run's, byte for byte), then the marker; so the recording, done again, gets its own
names back instead of `meeting-1.json` beside a stale `meeting.json`. A file of anyone else's never
matches and stays.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from localstt import formats as writers
from localstt.hashing import sha256_bytes, sha256_file
from localstt.logfile import report_unexpected
from localstt.options import TranscribeOptions
from localstt.portability import atomic_write_text, safe_file_stem
from localstt.runs.result import RayPlacement, RecordingResult
from localstt.subtitles import DEFAULT_LAYOUT, SubtitleLayout
from localstt.transcript import Transcript

logger = logging.getLogger(__name__)

JOB_FILE = "job.jsonl"
WRITING_MARKER = ".writing-{token}.json"
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
    vocabulary: str = ""  # Vocabulary.fingerprint: "" when there was none
    subtitles: str = ""  # subtitles_setting(): "" for the default line controls
    # The transcript's language (Transcript.language: "auto" where the model heard it without saying
    # which) and the one it was translated into; "" in lines written before languages were recorded.
    language: str = ""
    translated_to: str = ""

    @property
    def made_with(self) -> tuple[str, ...]:
        """What a rerun must match to skip it: input, model, commit, speakers, vocabulary, lines,
        language and translation."""
        return (
            self.sha256,
            self.model,
            self.revision,
            self.speakers,
            self.vocabulary,
            self.subtitles,
            self.language,
            self.translated_to,
        )

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["outputs"] = list(self.outputs)
        # only written when set: lines without keep their keys
        for key in ("vocabulary", "subtitles", "language", "translated_to"):
            if not data[key]:
                del data[key]
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


def subtitles_setting(layout: SubtitleLayout, formats: Sequence[str]) -> str:
    """What a job line records of the line controls: "" for the defaults or a job without subtitles,
    else e.g. "max_chars=32 max_lines=1 max_duration=7.0 min_gap=0.0"."""
    if layout.is_default or not {"srt", "vtt"} & set(formats):
        return ""
    return " ".join(f"{key}={value}" for key, value in asdict(layout).items())


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

    def done(
        self,
        sha256: str,
        model: str,
        revision: str,
        speakers: str = "",
        vocabulary: str = "",
        subtitles: str = "",
        spoken: tuple[str, str] = ("", ""),
        language_chosen: bool = False,
    ) -> JobEntry | None:
        """The latest "done" entry of this recording by this model at this commit with these
        speakers, vocabulary, line controls and (language, translation), if its outputs are all still
        in OUT (else it is to be done again). A line from before languages were recorded stands for
        the model's own language when none is `language_chosen`."""
        wanted = (sha256, model, revision, speakers, vocabulary, subtitles, *spoken)
        for entry in reversed(self.entries):
            made = entry.made_with
            if not entry.language and not language_chosen and not spoken[1]:
                made = (*made[:6], *spoken)
            if made != wanted:
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
        layout: SubtitleLayout = DEFAULT_LAYOUT,
        spoken: tuple[str, str] = ("", ""),
    ) -> None:
        """Hash every input (an unreadable one gets "": transcribing it says why) and, with
        `skip_done`, leave out each one the record has done with this model, commit and speakers.
        `layout`: the subtitles' line controls. `spoken`: the language its transcripts record and the
        one they are translated into (localstt.language_choice.checked_languages)."""
        self.model_key = model_key
        self.revision = revision
        self.formats = tuple(formats)
        self.layout = layout
        self.options = options
        self.config_path = config_path
        self.speakers = speakers_setting(options)
        self.vocabulary = options.vocabulary.fingerprint
        self.subtitles = subtitles_setting(layout, formats)
        self.spoken = spoken
        self.log = JobLog(out_dir)
        remove_unfinished_outputs(self.log)
        self.hashes: dict[Path, str] = {}
        self.todo: list[Path] = []
        for path in files:
            try:
                self.hashes[path] = sha256_file(path)
            except OSError:
                self.hashes[path] = ""
            done = self.hashes[path] and self.log.done(
                self.hashes[path],
                model_key,
                revision,
                self.speakers,
                self.vocabulary,
                self.subtitles,
                spoken,
                language_chosen=bool(options.language),
            )
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
        sha256 = self.hashes.get(path, "")
        written: list[Path] = []
        marker: Path | None = None
        if transcript is not None and not failure:
            try:
                rendered = writers.render_outputs(transcript, self.formats, self.layout)
                self.out_dir.mkdir(parents=True, exist_ok=True)
                marker = self.out_dir / WRITING_MARKER.format(token=secrets.token_hex(8))
                digests = {key: sha256_bytes(data) for key, data in rendered}
                atomic_write_text(marker, json.dumps({"stem": path.stem, "files": digests}))
                written = writers.publish_outputs(rendered, self.out_dir, path.stem)
            except Exception as error:  # e.g. the disk is full: this file only, the details to the log
                doing = f"transcribing {path} with {self.model_key}"
                failure = report_unexpected(error, doing, self.config_path)
        self.log.append(
            JobEntry(
                input=str(path),
                sha256=sha256,
                model=self.model_key,
                revision=self.revision,
                status="failed" if failure else "done",
                error=failure,
                outputs=tuple(p.name for p in written),
                duration_s=transcript.duration if transcript is not None else 0.0,
                speakers=self.speakers,
                vocabulary=self.vocabulary,
                subtitles=self.subtitles,
                language=self.spoken[0],
                translated_to=self.spoken[1],
            )
        )
        if marker is not None:
            marker.unlink(missing_ok=True)
        return RecordingResult(index, path, None if failure else transcript, failure, tuple(written), ray=ray)


def remove_unfinished_outputs(log: JobLog) -> None:
    """Remove what a killed run published of a recording without writing its line: each file that a
    `.writing-*.json` marker names by content and no line of `log` claims; then the marker."""
    claimed = {name for entry in log.entries for name in entry.outputs}
    for marker in sorted(log.out_dir.glob(WRITING_MARKER.format(token="*"))):
        try:
            record = json.loads(marker.read_text(encoding="utf-8"))
            stem, digests = safe_file_stem(str(record["stem"])), dict(record["files"])
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("%s is not a complete marker; only it is removed", marker)
            marker.unlink(missing_ok=True)
            continue
        for extension, digest in digests.items():
            own_name = re.compile(rf"{re.escape(stem)}(-\d+)?\.{re.escape(extension)}")
            for candidate in log.out_dir.iterdir():
                if candidate.name in claimed or not own_name.fullmatch(candidate.name):
                    continue
                if candidate.is_file() and sha256_file(candidate) == digest:
                    logger.info("removing %s: written by a run killed before the job recorded it", candidate)
                    candidate.unlink()
        marker.unlink(missing_ok=True)
