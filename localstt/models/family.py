"""What a model family is: the one place that knows how models of one `kind` are exported and loaded,
and the registry that maps config.toml's `kind` to it. What a family can do with a loaded model is a
capability it implements (localstt/models/capabilities.py): `Transcriber`, `Diarizer`, `Answerer`.
The store, the export, the engine and the app ask the family; none of them switches on `kind`.

Adding a family is one module in this package that subclasses `ModelFamily` (and the capabilities it
has), registers an instance (`register`) and is imported by `localstt/models/__init__.py`; config.toml
then names its `kind`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from localstt.errors import ConfigError
from localstt.languages import ENGLISH_ONLY, Languages
from localstt.manifest import Manifest
from localstt.precision import ModelMakeup, Precision
from localstt.spec import FamilyOptions, ModelSpec, field_names

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from localstt.hub import RemoteFile


class ModelLock:
    """Held while a model runs: one model never runs two calls at once.

    `with lock:` waits its turn like a file job. `acquire_first` goes ahead of every such waiter (a
    live step, which must not lag behind a long job); a holder that runs many calls in a row (the
    windows of one recording, the groups of a batch) calls `yield_to_first` between them, so that a
    live step waits at most for the one call in progress."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._held = False
        self._first_waiting = 0
        self._resuming = 0  # holders that let a first caller in and wait to carry on, before others

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._acquire(first=False, timeout=timeout if blocking else 0)

    def acquire_first(self, timeout: float = -1) -> bool:
        return self._acquire(first=True, timeout=timeout)

    def _acquire(self, first: bool, timeout: float) -> bool:
        deadline = None if timeout < 0 else time.monotonic() + timeout
        with self._changed:
            if first:
                self._first_waiting += 1
            try:
                while self._held or (not first and (self._first_waiting or self._resuming)):
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._changed.wait(left)
                self._held = True
                return True
            finally:
                if first:
                    self._first_waiting -= 1
                    self._changed.notify_all()  # a holder waiting to carry on may now

    def release(self) -> None:
        with self._changed:
            if not self._held:
                raise RuntimeError("release of a ModelLock that is not held")
            self._held = False
            self._changed.notify_all()

    def locked(self) -> bool:
        return self._held

    def yield_to_first(self) -> None:
        """Called by the holder between two calls: if a caller waits to go first, let it run now; the
        holder then carries on before anyone who waits its turn."""
        with self._changed:
            if not self._first_waiting:
                return
            self._held = False
            self._resuming += 1
            self._changed.notify_all()
            try:
                while self._held or self._first_waiting:
                    self._changed.wait()
                self._held = True
            finally:
                self._resuming -= 1

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(eq=False)
class LoadedModel:
    """A model the store has loaded (localstt/store.py), as its family's methods receive it."""

    spec: ModelSpec
    manifest: Manifest
    model: Any  # the NeMo model object
    device: str
    seconds: float
    export_dir: Path
    method: str  # how the weights were read, e.g. "mapped" or "plain" (its family's loader says)
    precision: Precision  # what runs in which dtype (localstt/precision.py)
    # Held while the model runs: one model never runs two calls at once.
    lock: ModelLock = field(default_factory=lambda: ModelLock(), repr=False)
    users: int = field(default=0, repr=False)  # store.use() blocks that hold it now
    retired: bool = field(default=False, repr=False)  # dropped from the store; freed once unused
    # What its family keeps for this loaded model (e.g. one boosted decoding per phrase list).
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def family(self) -> ModelFamily:
        return family_for(self.spec.kind)

    @property
    def dtype(self) -> str:
        """The engine's autocast dtype, else the weights' ("bfloat16", "float16" or "float32")."""
        return self.precision.dtype


class ModelFamily(ABC):
    """How models of one `kind` are exported and loaded. Stateless: one instance per family."""

    kind: ClassVar[str]  # config.toml's `kind = "..."` and the manifest's
    makeup: ClassVar[ModelMakeup]  # what the precision choice needs to know (localstt/precision.py)
    options_type: ClassVar[type[FamilyOptions]] = FamilyOptions
    # What its load imports first (e.g. "nemo.collections.asr", ~10 s on a CPU): the store imports it
    # as a stage of the load of its own, so that the status can say so ("importing NeMo").
    runtime_module: ClassVar[str] = ""
    runtime_name: ClassVar[str] = ""
    # Longest path the loader writes inside an export beyond the exported files (the export refuses
    # paths Windows cannot open before downloading anything).
    loader_path_margin: ClassVar[int] = 0

    @property
    def name(self) -> str:
        """What the user calls models of this family, e.g. in the page's labels."""
        return self.makeup.name

    def languages(self, spec: ModelSpec) -> Languages:
        """What the model of `spec` does with languages (localstt/languages.py): English only unless
        its family says more."""
        return ENGLISH_ONLY

    def check_spec(self, spec: ModelSpec) -> str | None:
        """What config.toml's table for this model lacks for this family (one sentence), or None."""
        return None

    # The export (localstt/export.py)

    @abstractmethod
    def plan(self, api: HfApi, spec: ModelSpec) -> list[RemoteFile]:
        """The hub files at the pinned commit(s) that make up the export, each with its place in it.
        Raises HubError when the repo does not hold what this family needs."""

    def check_downloaded(self, staging: Path, spec: ModelSpec, destination: str) -> None:
        """Called after each file lands in the staging folder, to stop early when it shows the
        export cannot work. Raises HubError."""
        return None

    def check_staged(self, staging: Path, spec: ModelSpec) -> None:
        """Called once every file is in the staging folder. Raises HubError."""
        return None

    # The store (localstt/store.py)

    @abstractmethod
    def load(
        self, export_dir: Path, manifest: Manifest, device: str, precision: Precision
    ) -> tuple[Any, str]:
        """(the model in eval mode on `device` in `precision`, how its weights were read), from a
        verified export. Raises LoadError."""

    def first_run(self, loaded: LoadedModel) -> None:
        """Run the model once on a second of quiet, so that what only a first run costs (weights paged
        in from a mapped file, kernels chosen, the decoder's CUDA graphs captured) is paid by the app's
        background warm-up instead of the first job. Called with `loaded.lock` held; by default nothing."""
        return None


_families: dict[str, ModelFamily] = {}


def register(family: ModelFamily) -> ModelFamily:
    """Make `family` the one for its kind; its option names must not clash with another family's
    (nor with the options of every family: localstt/options.py checks those)."""
    taken: set[str] = set()
    for other in _families.values():
        if other.kind != family.kind:
            taken |= field_names(other.options_type)
    if clash := taken & {f.name for f in dataclasses.fields(family.options_type)}:
        raise ValueError(f"{type(family).__name__}: option names already taken: {', '.join(sorted(clash))}")
    _families[family.kind] = family
    return family


def unregister(kind: str) -> None:
    _families.pop(kind, None)


def families() -> tuple[ModelFamily, ...]:
    return tuple(_families.values())


def family_for(kind: str) -> ModelFamily:
    """The family of `kind`, or ConfigError naming the kinds there are."""
    try:
        return _families[kind]
    except KeyError:
        known = ", ".join(_families)
        raise ConfigError(f"model kind must be one of {known}, not {kind!r}") from None
