"""`transcribe --live -` (or `--live FILE [--realtime]`): a live session from the command line.

Each final line is printed as it settles; on a terminal the partial text after it is shown greyed on
the line below and rewritten in place. When the input ends, or on Ctrl-C, the tail is flushed (the last
words are kept) and the files are written like any job's: `<name>.<format>` and `<name>-recording.wav`
in the output folder, never over a different file. The session runs in this process.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import soundfile as sf

from localstt.formats import write_outputs
from localstt.library.keeper import Keeper
from localstt.live.service import LiveService
from localstt.live.session import LiveEvent
from localstt.live.sources import from_file, from_stdin
from localstt.spec import Vocabulary
from localstt.store import ModelStore

GREY, CLEAR_LINE = "\x1b[90m", "\r\x1b[K"
RESET = "\x1b[0m"


class Printer:
    """Final text as lines; on a terminal the partial text too, greyed, rewritten in place."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.terminal = out.isatty()
        self.partial = ""

    def __call__(self, event: LiveEvent) -> None:
        if event.kind == "final":
            self._clear()
            print(event.text, file=self.out, flush=True)
        elif event.kind == "partial":
            self.partial = event.text
        elif event.kind == "status" and event.waiting:
            self.partial = f"[behind by {event.behind_s:.1f} s: {event.waiting}]"
        if self.terminal and self.partial and event.kind in ("final", "partial", "status"):
            self.out.write(f"{CLEAR_LINE}{GREY}{self.partial}{RESET}")
            self.out.flush()

    def _clear(self) -> None:
        if self.terminal and self.partial:
            self.out.write(CLEAR_LINE)
        self.partial = ""

    def done(self) -> None:
        self._clear()
        self.out.flush()


def run_live(
    source: str,
    model_key: str,
    formats: Sequence[str],
    out_dir: Path,
    store: ModelStore,
    realtime: bool = False,
    vocabulary: Vocabulary | None = None,
    keeper: Keeper | None = None,
) -> int:
    """Transcribe `source` ("-" for standard input, else a file) live; exit status 0, or 130 after
    Ctrl-C (what was heard is kept and written either way, and put in the library by `keeper`).

    Raises:
        LocalSttError: the model cannot go live or be loaded, the input cannot be read.
    """
    live = LiveService(store, store.config.live)
    printer = Printer(sys.stdout)
    session = live.open(model_key, printer, vocabulary)
    status = 0
    try:
        for block in _blocks(source, store, realtime):
            live.feed(session, block)
    except KeyboardInterrupt:
        status = 130
    try:
        transcript = live.close(session)
    finally:
        printer.done()
        live.stop()
    stem = "live" if source == "-" else Path(source).stem
    written = write_outputs(transcript, formats, out_dir, stem, store.config.subtitles)
    recording = _free_name(out_dir / f"{stem}-recording.wav")
    sf.write(str(recording), session.recording(), 16000, subtype="PCM_16")
    for path in [*written, recording]:
        print(f"-> {path}", file=sys.stderr)
    if keeper is not None and (note := keeper.keep(transcript, "cli", samples=session.recording())):
        print(f"warning: {note}", file=sys.stderr)
    return status


def _blocks(source: str, store: ModelStore, realtime: bool) -> Iterator[np.ndarray]:
    if source == "-":
        return from_stdin(sys.stdin.buffer)
    return from_file(Path(source), store.config.live.max_session_minutes * 60, realtime)


def _free_name(path: Path) -> Path:
    number = 0
    candidate = path
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate
