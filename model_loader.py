"""Load exported models from local_models/ only. This module never downloads anything.

The hub libraries are told they are offline before any of them is imported, so nothing in this
process can reach a hub, even by accident.
"""

from __future__ import annotations

import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("NEMO_TELEMETRY", "0")

from localstt.compat import tarfile_with_extraction_filters  # noqa: E402

tarfile_with_extraction_filters()  # before NeMo: its restore_from needs tarfile's filters (PEP 706)

import gc  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from localstt.config import AppConfig, ModelSpec, load_config  # noqa: E402
from localstt.manifest import (  # noqa: E402
    ExportError,
    Manifest,
    VerifyMode,
    check_export,
    export_command,
    human_size,
    read_manifest,
)
from localstt.nemo_archive import (  # noqa: E402
    LoadError,
    NemoLayout,
    connector,
    fast_path_problem,
    read_layout,
    unpacked_folder,
)
from localstt.precision import (  # noqa: E402
    Precision,
    autocast_forward,
    choose_precision,
    native_bf16_in_nemo_attention,
    whole,
)
from localstt.salm_loading import load_salm  # noqa: E402

if "huggingface_hub" in sys.modules:  # imported before us (e.g. by a test harness): force offline too
    sys.modules["huggingface_hub"].constants.HF_HUB_OFFLINE = True


@dataclass
class LoadedModel:
    spec: ModelSpec
    manifest: Manifest
    model: Any
    device: str
    seconds: float
    export_dir: Path
    method: str = ""  # how the weights were read: "mapped" or "plain" (.nemo), "mapped" or "safetensors"
    precision: Precision = whole("float32", "nemo-asr")  # what runs in which dtype (localstt/precision.py)

    @property
    def dtype(self) -> str:
        """The engine's autocast dtype, else the weights' ("bfloat16", "float16" or "float32")."""
        return self.precision.dtype


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


def _pick_device_and_dtype(config: AppConfig, kind: str) -> tuple[str, Precision]:
    """(device, how a `kind` model runs there: see localstt/precision.py); prints its note, if any."""
    import torch

    wanted = config.runtime.device
    has_cuda = torch.cuda.is_available()
    if wanted == "cuda" and not has_cuda:
        raise LoadError(
            'config.toml asks for device = "cuda" but PyTorch sees no CUDA GPU; install a CUDA build '
            'of PyTorch (see README) or set device = "auto".'
        )
    device = "cuda" if has_cuda and wanted != "cpu" else "cpu"
    if device == "cpu" and wanted == "auto":
        message = "No CUDA GPU found: running on the CPU, which is many times slower."
        warnings.warn(message, stacklevel=3)
        print(f"WARNING: {message}", file=sys.stderr, flush=True)
    # Not torch.cuda.is_bf16_supported(): it also counts the bfloat16 that older GPUs only emulate.
    capability = None
    if device == "cuda":
        major, minor = torch.cuda.get_device_capability()
        capability = (major, minor)
    precision = choose_precision(device, capability, config.runtime.dtype, kind)
    if precision.note:
        print(precision.note, file=sys.stderr, flush=True)
    return device, precision


def _restore(layout: NemoLayout, folder: Path, fast: bool, device: str) -> Any:
    from nemo.collections.asr.models import ASRModel
    from nemo.utils import logging as nemo_logging

    nemo_logging.setLevel(nemo_logging.ERROR)
    model = ASRModel.restore_from(
        str(layout.path), map_location=device, save_restore_connector=connector(layout, folder, fast)
    )
    if device != "cpu":
        model = model.to(device)
    # Weights stay float32; the engine runs inference under autocast in `dtype` on a GPU.
    return model.eval()


def _load_nemo_asr(export_dir: Path, manifest: Manifest, device: str) -> tuple[Any, str]:
    """Parakeet's .nemo, read in place: (model, "mapped" or "plain"). See localstt/nemo_archive.py."""
    record = next(r for r in manifest.files if r.path.endswith(".nemo"))
    layout = read_layout(export_dir / record.path)  # refuses links, absolute paths and ".."
    problem = fast_path_problem(layout)
    with unpacked_folder(layout, record.sha256) as folder:
        if problem is None:
            try:
                return _restore(layout, folder, fast=True, device=device), "mapped"
            except LoadError:
                raise
            except Exception as error:  # internals moved: the plain load gives the same model
                problem = f"{type(error).__name__}: {error}"
                gc.collect()
        print(f"note: reading {layout.path.name} into memory ({problem})", file=sys.stderr, flush=True)
        return _restore(layout, folder, fast=False, device=device), "plain"


class ModelStore:
    """Loads models on demand and keeps them for the life of the process."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.RLock()

    def export_dir(self, key: str) -> Path:
        return self.config.models_dir / key

    def loaded(self, key: str) -> LoadedModel | None:
        return self._loaded.get(key)

    def load(self, key: str, verify: VerifyMode | None = None) -> LoadedModel:
        spec = self.config.model(key)
        with self._lock:
            if (cached := self._loaded.get(key)) is not None:
                return cached
            export_dir = self.export_dir(key)
            manifest = check_export(
                spec, export_dir, verify or self.config.runtime.verify_on_load, self.config.path
            )
            if not self.config.runtime.keep_all_loaded:
                self.unload_all()
            device, precision = _pick_device_and_dtype(self.config, spec.kind)
            started = time.perf_counter()
            if device == "cuda":
                native_bf16_in_nemo_attention()  # not emulated bfloat16 under float16 autocast
            if spec.kind == "nemo-asr":
                model, method = _load_nemo_asr(export_dir, manifest, device)
                if precision.encoder_autocast:  # weights stay float32; the decoder runs float32
                    autocast_forward(model.encoder, precision.encoder_autocast, precision.weights)
            else:
                model, method = load_salm(export_dir, device, precision)
            seconds = time.perf_counter() - started
            loaded = LoadedModel(spec, manifest, model, device, seconds, export_dir, method, precision)
            self._loaded[key] = loaded
            print(
                f"{spec.display_name} @ {spec.short_revision} loaded from {export_dir} in {seconds:.1f} s "
                f"on {device} ({precision.describe()})",
                flush=True,
            )
            return loaded

    def unload(self, key: str) -> None:
        with self._lock:
            if self._loaded.pop(key, None) is None:
                return
            gc.collect()
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            print(f"{key}: unloaded", flush=True)

    def unload_all(self) -> None:
        for key in list(self._loaded):
            self.unload(key)

    def status(self) -> list[ModelStatus]:
        rows = []
        for key, spec in self.config.models.items():
            manifest = read_manifest(self.export_dir(key))
            exported = manifest is not None and manifest.matches(spec)
            loaded = self._loaded.get(key)
            if exported:
                assert manifest is not None
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
                )
            )
        return rows


_default_store: ModelStore | None = None


def default_store(config_path: str | os.PathLike[str] | None = None) -> ModelStore:
    global _default_store
    if _default_store is None or (
        config_path is not None and Path(config_path).resolve() != _default_store.config.path
    ):
        _default_store = ModelStore(load_config(config_path))
    return _default_store


def load_model(
    key: str, config_path: str | os.PathLike[str] | None = None, verify: VerifyMode | None = None
) -> Any:
    """The ready model for `key` ("parakeet" or "canary-qwen"), loaded once per process."""
    return default_store(config_path).load(key, verify).model


__all__ = [
    "ExportError",
    "LoadError",
    "LoadedModel",
    "ModelStatus",
    "ModelStore",
    "default_store",
    "load_model",
]
