"""The model store: exported models loaded on demand from local_models/, offline, and kept while used.

    with store.use(key) as loaded:          # loads it once (checking the export first)
        ...                                  # loaded.model, loaded.device, loaded.precision
                                             # hold loaded.lock while running the model

Each model's load has a state (`load_state`: idle, loading with its stage, ready, or failed with its
sentence) for the app's status panel. Loads run one at a time under the store's lock: a caller that
comes while a model loads waits for that load (`progress` says so) and never starts a second one;
when the load it waited for failed, it gets the same error. `warm_up` loads in the background, then
runs the model once on a second of quiet before calling it ready (its family's `first_run`), so that
what only a first run costs (weights paged in, kernels chosen, CUDA graphs captured) is not the first
job's to pay; a job that comes meanwhile waits for it like for the load.

A model in use is never unloaded under its user. With `keep_all_loaded = false` in config.toml only
one transcription model stays loaded (a speaker diarizer stays beside it): loading another waits
until every other thread's use of the old one has ended, then drops it (a thread that itself still
uses the old one does not wait: the old one is dropped from the store and freed when that use ends).

This module imports localstt.offline first: a process that loads models never reaches a hub.
"""

from __future__ import annotations

import copy
import importlib
import logging
import os
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import localstt.offline  # noqa: F401,I001  # before anything that may import huggingface_hub or NeMo
from localstt import memory
from localstt.config import AppConfig, load_config
from localstt.cpu_threads import apply_cpu_threads
from localstt.errors import DeviceError, LocalSttError
from localstt.logfile import report_unexpected
from localstt.manifest import VerifyMode, check_export, export_command, human_size, read_manifest
from localstt.models import LoadedModel, ModelFamily, Transcriber, family_for
from localstt.precision import Precision, choose_precision, native_bf16_in_nemo_attention

logger = logging.getLogger(__name__)

WAIT_REPORT_S = 0.5  # how often a caller waiting for a load reports it
StageReport = Callable[[str], None]


LoadPhase = Literal["idle", "loading", "ready", "failed"]


@dataclass(frozen=True)
class LoadState:
    """How far a model's load is: what the status panel shows."""

    phase: LoadPhase = "idle"
    stage: str = ""  # loading: "checking the export", "importing NeMo", "loading weights"
    error: str = ""  # failed: the one sentence the user sees
    attempt: int = 0  # loads begun so far; tells a waiter whether the load it waited for ended
    since: float = 0.0  # time.monotonic() when this phase began


@dataclass(frozen=True)
class ModelStatus:
    key: str
    repo: str
    revision: str
    exported: bool
    size_on_disk: int
    loaded: bool
    device: str
    message: str
    phase: LoadPhase = "idle"
    stage: str = ""
    error: str = ""
    dtype: str = ""  # loaded: LoadedModel.dtype
    seconds: float = 0.0  # loading: for how long so far; ready: how long the load took


def pick_device_and_precision(config: AppConfig, family: ModelFamily) -> tuple[str, Precision]:
    """(device, how a `family` model runs there: see localstt/precision.py); logs its note, if any."""
    import torch  # with the model, not before

    wanted = config.runtime.device
    has_cuda = torch.cuda.is_available()
    if wanted == "cuda" and not has_cuda:
        raise DeviceError(
            'config.toml asks for device = "cuda" but PyTorch sees no CUDA GPU; install a CUDA build '
            'of PyTorch (docs/install.md, "GPU installs") or set device = "auto".'
        )
    device = "cuda" if has_cuda and wanted != "cpu" else "cpu"
    if device == "cpu" and wanted == "auto":
        message = "No CUDA GPU found: running on the CPU, which is many times slower."
        warnings.warn(message, stacklevel=3)
        logger.warning("WARNING: %s", message)
    # Not torch.cuda.is_bf16_supported(): it also counts the bfloat16 that older GPUs only emulate.
    capability = None
    if device == "cuda":
        major, minor = torch.cuda.get_device_capability()
        capability = (major, minor)
    precision = choose_precision(device, capability, config.runtime.dtype, family.makeup)
    if precision.note:
        logger.warning("%s", precision.note)
    return device, precision


class ModelStore:
    """Loads models on demand and keeps them for the life of the process (see the module docstring)."""

    def __init__(self, config: AppConfig, cpu_share: float | None = None) -> None:
        self.config = config
        self.cpu_share = cpu_share  # a Ray actor's share of its node's CPUs: torch threads at most that
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.RLock()
        self._released = threading.Condition(self._lock)  # notified whenever a use ends
        self._held = threading.local()  # .keys: Counter of the models this thread uses now
        # Written under _lock, read without it (the status panel never waits for a load).
        self._states: dict[str, LoadState] = {}
        self._errors: dict[str, LocalSttError] = {}  # the error of each model's last failed load

    def export_dir(self, key: str) -> Path:
        return self.config.models_dir / key

    def loaded(self, key: str) -> LoadedModel | None:
        return self._loaded.get(key)

    def load_state(self, key: str) -> LoadState:
        return self._states.get(key, LoadState())

    def loading(self) -> str | None:
        """The key of the model being loaded now, if any."""
        return next((key for key, state in list(self._states.items()) if state.phase == "loading"), None)

    @contextmanager
    def use(
        self, key: str, verify: VerifyMode | None = None, progress: StageReport | None = None
    ) -> Iterator[LoadedModel]:
        """The loaded model `key`, kept loaded until the block ends (hold `loaded.lock` to run it).

        `progress` is told what the load is doing, or that this caller waits for another's load.

        Raises:
            ExportError: not exported, not at the pin, or damaged (the message names the command).
            LoadError: the export cannot be loaded (DeviceError: the GPU config.toml asks for is absent).
            ConfigError: `key` is not in config.toml.
        """
        with self._locked(key, progress) as waited_for:
            loaded = self._load_locked(key, verify, progress, waited_for)
            loaded.users += 1
        held = self._held_keys()
        held[key] += 1
        try:
            yield loaded
        finally:
            held[key] -= 1
            with self._lock:
                loaded.users -= 1
                if loaded.retired and loaded.users == 0:
                    self._free(loaded)
                self._released.notify_all()

    def load(
        self,
        key: str,
        verify: VerifyMode | None = None,
        progress: StageReport | None = None,
        first_run: bool = False,
    ) -> LoadedModel:
        """The loaded model `key`, for a caller that takes care of its own use (prefer `use`).
        `first_run`: a load made now runs the model once before it counts as ready (`warm_up`)."""
        with self._locked(key, progress) as waited_for:
            return self._load_locked(key, verify, progress, waited_for, first_run)

    def warm_up(self, key: str) -> LoadedModel | None:
        """Load `key` now and run it once (meant for a background thread): the model, or None when it
        failed, the failure's sentence being in its load state (and an unexpected error's traceback in
        the log file)."""
        try:
            return self.load(key, first_run=True)
        except LocalSttError as error:
            logger.error("%s could not be loaded: %s", key, error)
        except Exception as error:
            sentence = report_unexpected(error, f"loading {key}", self.config.path)
            with self._lock:
                state = self.load_state(key)
                self._states[key] = LoadState("failed", "", sentence, state.attempt, time.monotonic())
        return None

    @contextmanager
    def _locked(self, key: str, progress: StageReport | None) -> Iterator[int | None]:
        """Hold the store's lock; yields the attempt of `key`'s load that was under way when this
        caller came (it waited for that one), else None. While waiting, `progress` hears why."""
        state = self.load_state(key)
        waited_for = state.attempt if state.phase == "loading" else None
        while not self._lock.acquire(timeout=WAIT_REPORT_S):
            if progress is not None and (other := self.loading()) is not None:
                stage = self.load_state(other).stage
                progress(f"waiting for the model: {other} is loading ({stage})")
        try:
            yield waited_for
        finally:
            self._lock.release()

    def _held_keys(self) -> Counter[str]:
        if not hasattr(self._held, "keys"):
            self._held.keys = Counter()
        keys: Counter[str] = self._held.keys
        return keys

    def _make_room(self, key: str) -> None:
        """With keep_all_loaded = false: drop every other transcription model, once no other thread
        uses it. A diarizer is loaded beside the transcription model and drops nothing."""
        if self.config.runtime.keep_all_loaded or not isinstance(
            family_for(self.config.model(key).kind), Transcriber
        ):
            return
        while True:
            others = [
                loaded
                for other, loaded in self._loaded.items()
                if other != key and isinstance(loaded.family, Transcriber)
            ]
            mine = any(count > 0 for count in self._held_keys().values())
            # A thread that holds a model never waits (two such threads would wait on each other).
            if mine or not any(loaded.users for loaded in others):
                for loaded in others:
                    self._drop(loaded)
                return
            self._released.wait()

    def _load_locked(
        self,
        key: str,
        verify: VerifyMode | None,
        progress: StageReport | None = None,
        waited_for: int | None = None,
        first_run: bool = False,
    ) -> LoadedModel:
        """`first_run`: before it counts as ready, run the model once (its family's `first_run`)."""
        spec = self.config.model(key)
        if (cached := self._loaded.get(key)) is not None:
            return cached
        state = self.load_state(key)
        error = self._errors.get(key)
        if waited_for is not None and state.attempt == waited_for and error is not None:
            raise copy.copy(error).with_traceback(None) from None  # the load this caller waited for failed
        attempt, since = state.attempt + 1, time.monotonic()

        def stage(text: str) -> None:
            self._states[key] = LoadState("loading", text, "", attempt, since)
            if progress is not None:
                progress(f"loading {key}: {text}")

        try:
            stage("checking the export")
            export_dir = self.export_dir(key)
            manifest = check_export(
                spec, export_dir, verify or self.config.runtime.verify_on_load, self.config.path
            )
            self._make_room(key)
            if (cached := self._loaded.get(key)) is not None:  # loaded by another thread while we waited
                self._states[key] = LoadState("ready", "", "", attempt, time.monotonic())
                return cached
            family = family_for(spec.kind)
            if family.runtime_module:  # the slow part of a first load, as a stage of its own
                stage(f"importing {family.runtime_name}")
                importlib.import_module(family.runtime_module)
            device, precision = pick_device_and_precision(self.config, family)
            apply_cpu_threads(self.config.runtime.cpu_threads, self.cpu_share)
            stage("loading weights")
            started = time.perf_counter()
            if device == "cuda":
                native_bf16_in_nemo_attention()  # not emulated bfloat16 under float16 autocast
            model, method = family.load(export_dir, manifest, device, precision)
            seconds = time.perf_counter() - started
        except LocalSttError as failure:
            self._errors[key] = failure
            self._states[key] = LoadState("failed", "", str(failure), attempt, time.monotonic())
            raise
        except BaseException as failure:
            self._errors.pop(key, None)  # unexpected: a caller that waited tries again itself
            sentence = f"unexpected {type(failure).__name__} while loading {key}"
            self._states[key] = LoadState("failed", "", sentence, attempt, time.monotonic())
            raise
        loaded = LoadedModel(spec, manifest, model, device, seconds, export_dir, method, precision)
        if first_run:
            self._first_run(loaded, stage)
        self._loaded[key] = loaded
        self._errors.pop(key, None)
        self._states[key] = LoadState("ready", "", "", attempt, time.monotonic())
        logger.info(
            "%s @ %s loaded from %s in %.1f s on %s (%s)",
            spec.display_name,
            spec.short_revision,
            export_dir,
            seconds,
            device,
            precision.describe(),
        )
        return loaded

    def _first_run(self, loaded: LoadedModel, stage: StageReport) -> None:
        """The family's `first_run`, as a load stage of its own. A first run that fails is only
        logged: the model is loaded, and a job on it will say what is wrong with its own sentence."""
        stage("a first run, on a second of quiet")
        started = time.perf_counter()
        try:
            with loaded.lock:
                loaded.family.first_run(loaded)
        except Exception as error:
            logger.warning("%s: its first run failed (%s: %s)", loaded.spec.key, type(error).__name__, error)
            memory.release_memory(loaded.device)
            return
        logger.info("%s: first run done in %.1f s", loaded.spec.key, time.perf_counter() - started)

    def _drop(self, loaded: LoadedModel) -> None:
        """Take `loaded` out of the store; free it now, or when its last use ends."""
        key = loaded.spec.key
        if self._loaded.get(key) is loaded:
            del self._loaded[key]
            self._states[key] = LoadState("idle", "", "", self.load_state(key).attempt, time.monotonic())
        loaded.retired = True
        if loaded.users == 0:
            self._free(loaded)

    def _free(self, loaded: LoadedModel) -> None:
        """Let go of the model's memory: the store's reference, and the LoadedModel's own (a caller
        may still hold the LoadedModel, e.g. in a variable left from a `use` block)."""
        loaded.model = None
        memory.release_memory(loaded.device)
        logger.info("%s: unloaded", loaded.spec.key)

    def unload(self, key: str) -> None:
        with self._lock:
            if (loaded := self._loaded.get(key)) is not None:
                self._drop(loaded)

    def status(self) -> list[ModelStatus]:
        rows = []
        for key, spec in self.config.models.items():
            manifest = read_manifest(self.export_dir(key))
            exported = manifest is not None and manifest.matches(spec)
            loaded = self._loaded.get(key)
            state = self.load_state(key)
            so_far = time.monotonic() - state.since if state.phase == "loading" else 0.0
            if manifest is not None and exported:
                message = f"exported at {spec.short_revision}, {human_size(manifest.total_size)}"
            else:
                message = f"not exported: run `{export_command(key, self.config.path)}`"
            rows.append(
                ModelStatus(
                    key=key,
                    repo=spec.repo,
                    revision=spec.revision,
                    exported=exported,
                    size_on_disk=manifest.total_size if manifest else 0,
                    loaded=loaded is not None,
                    device=loaded.device if loaded else "",
                    message=message,
                    phase="ready" if loaded else ("idle" if state.phase == "ready" else state.phase),
                    stage=state.stage,
                    error=state.error,
                    dtype=loaded.dtype if loaded else "",
                    seconds=loaded.seconds if loaded else so_far,
                )
            )
        return rows


_default_store: ModelStore | None = None
_default_lock = threading.Lock()


def default_store(config_path: str | os.PathLike[str] | None = None) -> ModelStore:
    """The process's store for `config_path` (default: see localstt.spec.find_config_path)."""
    global _default_store
    with _default_lock:
        if _default_store is None or (
            config_path is not None and Path(config_path).resolve() != _default_store.config.path
        ):
            _default_store = ModelStore(load_config(config_path))
        return _default_store


def load_model(
    key: str, config_path: str | os.PathLike[str] | None = None, verify: VerifyMode | None = None
) -> Any:
    """The ready model for `key` (a [models.KEY] table of config.toml), loaded once per process."""
    return default_store(config_path).load(key, verify).model
