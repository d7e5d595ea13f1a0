"""A spy on the model's forward passes inside a process the tests start (the app): how many ran at
once at most, and how many ran.

Every Parakeet run, Canary-Qwen's speech encoder and Sortformer's frontend go through NeMo's
`ConformerEncoder.forward`, so the spy wraps that. A runner script installs it before it runs the app
(`RUNNER`, or `install()` at the top of another runner); the spy then writes its counts, after every
call's start and end, to the file that `FILE_ENV` names, and the test reads them with `read()`.

The spy does not import NeMo itself: it waits for the app to import the encoder's module and wraps
the class then, so that the app imports what it imports in its own order. `HOLD_ENV` (seconds) keeps
each call inside the spied forward that much longer: the app's guards make that a wait in line, but
two runs that nothing keeps apart then overlap for certain instead of only on a slow machine.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

FILE_ENV = "LOCALSTT_OVERLAP_FILE"
HOLD_ENV = "LOCALSTT_OVERLAP_HOLD_S"
MODULE = "nemo.collections.asr.modules.conformer_encoder"
CLASS = "ConformerEncoder"

# Installs the spy, then runs the script named by the first argument (the app) as __main__.
RUNNER = """
import runpy, sys
from testkit import overlap
overlap.install()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@dataclass(frozen=True)
class Overlap:
    calls: int  # forward passes started
    most_at_once: int  # the most that were running at the same moment
    running: int  # running now


def read(path: Path) -> Overlap:
    """The spy's counts so far (all zero before the first call)."""
    if not path.exists():
        return Overlap(0, 0, 0)
    return Overlap(**json.loads(path.read_text(encoding="utf-8")))


def app_env(path: Path, hold_s: float = 0.2) -> dict[str, str]:
    """The environment variables for an app started with `RUNNER`."""
    return {FILE_ENV: str(path), HOLD_ENV: str(hold_s)}


class _Spy:
    def __init__(self, path: Path, hold_s: float) -> None:
        self.path = path
        self.hold_s = hold_s
        self._lock = threading.Lock()
        self._thread = threading.local()  # .depth: spied calls this thread is inside
        self._counts = Overlap(0, 0, 0)

    def _write(self, counts: Overlap) -> None:
        self._counts = counts
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(counts.__dict__), encoding="utf-8")
        os.replace(partial, self.path)  # a reader never sees half a file

    @contextmanager
    def call(self) -> Iterator[None]:
        depth = getattr(self._thread, "depth", 0)
        outermost = depth == 0  # a forward that calls another of its kind is still one run
        self._thread.depth = depth + 1
        if outermost:
            with self._lock:
                c = self._counts
                self._write(Overlap(c.calls + 1, max(c.most_at_once, c.running + 1), c.running + 1))
        try:
            if outermost and self.hold_s:
                time.sleep(self.hold_s)
            yield
        finally:
            self._thread.depth = depth
            if outermost:
                with self._lock:
                    c = self._counts
                    self._write(Overlap(c.calls, c.most_at_once, c.running - 1))

    def wrap(self, module: ModuleType) -> None:
        cls = getattr(module, CLASS)
        if getattr(cls.forward, "_overlap_spy", False):
            return
        inner = cls.forward

        @functools.wraps(inner)
        def forward(encoder: Any, *args: Any, **kwargs: Any) -> Any:
            with self.call():
                return inner(encoder, *args, **kwargs)

        forward._overlap_spy = True  # type: ignore[attr-defined]
        cls.forward = forward


class _WrapOnImport(importlib.abc.MetaPathFinder):
    """Finds the encoder's module as the path finder would, and wraps its class once it has run."""

    def __init__(self, spy: _Spy) -> None:
        self.spy = spy

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader: Any = spec.loader
        exec_module = loader.exec_module

        def exec_and_wrap(module: ModuleType) -> None:
            exec_module(module)
            self.spy.wrap(module)

        loader.exec_module = exec_and_wrap
        return spec


def install(path: Path | None = None, hold_s: float | None = None) -> None:
    """Spy on every forward pass of this process from now on (`path`: else `FILE_ENV`'s file)."""
    target = path or Path(os.environ[FILE_ENV])
    hold = hold_s if hold_s is not None else float(os.environ.get(HOLD_ENV, "0"))
    spy = _Spy(target, hold)
    spy._write(Overlap(0, 0, 0))
    if MODULE in sys.modules:
        spy.wrap(sys.modules[MODULE])
    else:
        sys.meta_path.insert(0, _WrapOnImport(spy))
