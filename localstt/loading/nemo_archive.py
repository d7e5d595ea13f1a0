"""Loading a `.nemo` (an uncompressed tar) in place, without NeMo's per-load untar.

NeMo's `restore_from` untars the whole archive (2.5 GB for a 0.6 B ASR model) into a temp folder on every
load, builds the model with random weights, then reads a second full copy of the weights into memory.
Here instead:

* The small members (config yaml, tokenizer files; a few hundred KB) are unpacked **once** into a
  hidden folder beside the archive (`.unpacked-<sha256>`), written under a temp name and renamed, with
  each file's sha256 in `unpacked.json`. Later loads check those hashes and write nothing.
* The model is built with its *parameters* on the `meta` device (no memory, no random init).
* The weights are mapped straight out of the archive: the tar member's data is a torch zip at a
  512-byte aligned offset, so the whole file is mmapped (private, copy-on-write: the archive is never
  modified) and torch's weights-only unpickler is pointed at that window. The tensors are assigned
  into the model (`load_state_dict(assign=True)`), so nothing is copied: pages are read on first use.

An archive may also carry a second model inside it, its weights as another `*_model_weights.ckpt`
member beside its own `*_model_config.yaml` (a multitask model's 2.5 GB timestamps aligner:
`timestamps_asr_model_weights.ckpt`). Those weights are never unpacked either: the family restores the
nested model from the same archive, mapped in place the same way (`restore_nested`).

That mapping uses torch internals (`torch.serialization._load`), so it only runs on torch versions
whose internals were read (`TESTED_TORCH`); anything unexpected falls back to `plain` loading (the
same unpacked folder, a normally built model and `torch.load(weights_only=True)` from the tar), which
gives the same model, only slower.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
import os
import secrets
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from localstt.environment import fast_load_problem
from localstt.errors import FastPathUnavailable, HubError, LoadError
from localstt.hashing import sha256_file
from localstt.portability import move_folder

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from localstt.hub import RemoteFile
    from localstt.spec import ModelSpec

logger = logging.getLogger(__name__)

WEIGHTS_MEMBER = "model_weights.ckpt"
NESTED_WEIGHTS_SUFFIX = "_" + WEIGHTS_MEMBER  # a nested model's weights: "<prefix>_model_weights.ckpt"
UNPACKED_PREFIX = ".unpacked-"
# Room, beyond the export's own files, for what this loader unpacks beside a .nemo:
# ".unpacked-<16 hex>/" and NeMo's "<32 hex>_tokenizer.model"-like member names.
UNPACKED_PATH_MARGIN = 80
SIDECAR_NAME = "unpacked.json"
TESTED_TORCH = ((2, 6), (2, 15))  # torch.serialization._load(overall_storage=..., weights_only=...)


def _name(tar: tarfile.TarFile) -> str:
    return os.fsdecode(tar.name) if tar.name is not None else "the archive"


def safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Members of a .nemo, refusing anything that could land outside the folder it is unpacked into."""
    members = tar.getmembers()
    for member in members:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise LoadError(f"Refusing {_name(tar)}: member '{member.name}' points outside the archive.")
        if not (member.isfile() or member.isdir()):
            raise LoadError(f"Refusing {_name(tar)}: member '{member.name}' is a link or device, not a file.")
    return members


@dataclass(frozen=True)
class NemoLayout:
    """Where things are inside one .nemo archive."""

    path: Path
    size: int
    small: tuple[tarfile.TarInfo, ...]
    weights: tarfile.TarInfo
    nested: tuple[tarfile.TarInfo, ...] = ()  # the weights of models nested in it, never unpacked

    def nested_model(self, prefix: str) -> NemoLayout | None:
        """The layout of the model nested under `prefix` (its weights member in place of the main
        one), or None when the archive has none."""
        for member in self.nested:
            if PurePosixPath(member.name).name == prefix + NESTED_WEIGHTS_SUFFIX:
                return dataclasses.replace(self, weights=member, nested=())
        return None


def read_layout(nemo_path: Path) -> NemoLayout:
    try:
        with tarfile.open(nemo_path, "r:") as tar:
            members = safe_members(tar)
    except tarfile.TarError as error:
        raise LoadError(f"{nemo_path} is not a readable .nemo archive ({error}).") from None
    weights = [m for m in members if m.isfile() and PurePosixPath(m.name).name == WEIGHTS_MEMBER]
    if len(weights) != 1:
        raise LoadError(f"{nemo_path} holds {len(weights)} weight files; expected one.")
    nested = tuple(
        m
        for m in members
        if m.isfile() and m is not weights[0] and PurePosixPath(m.name).name.endswith(NESTED_WEIGHTS_SUFFIX)
    )
    small = tuple(m for m in members if m.isfile() and m is not weights[0] and m not in nested)
    return NemoLayout(nemo_path, nemo_path.stat().st_size, small, weights[0], nested)


def _relative(member: tarfile.TarInfo) -> str:
    return PurePosixPath(*[p for p in PurePosixPath(member.name).parts if p != "."]).as_posix()


def _is_valid_unpacked(folder: Path, layout: NemoLayout, nemo_sha256: str) -> bool:
    try:
        record = json.loads((folder / SIDECAR_NAME).read_text(encoding="utf-8"))
        files: dict[str, dict[str, Any]] = record["files"]
        if record["source_sha256"] != nemo_sha256 or set(files) != {_relative(m) for m in layout.small}:
            return False
        return all(
            (folder / name).stat().st_size == meta["size"] and sha256_file(folder / name) == meta["sha256"]
            for name, meta in files.items()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _unpack(layout: NemoLayout, nemo_sha256: str, folder: Path) -> None:
    # Each member's bytes are copied out by hand rather than by extractall: read_layout already
    # refused links, devices, absolute paths and "..", and no mode or owner comes from the archive.
    # (extractall's filter="data" would do the same, but Python 3.11 gained it only in 3.11.4, and
    # Debian 12's system Python is 3.11.2.)
    with tarfile.open(layout.path, "r:") as tar:
        for member in layout.small:
            target = folder / _relative(member)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:  # not a regular file: read_layout refuses those
                raise LoadError(f"Refusing {layout.path}: member '{member.name}' is not a regular file.")
            with source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
    files = {
        _relative(m): {"size": m.size, "sha256": sha256_file(folder / _relative(m))} for m in layout.small
    }
    record = {"source": layout.path.name, "source_sha256": nemo_sha256, "files": files}
    (folder / SIDECAR_NAME).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


@contextlib.contextmanager
def unpacked_folder(layout: NemoLayout, nemo_sha256: str) -> Iterator[Path]:
    """The archive's small members on disk: a verified folder beside the archive, unpacked once.

    Only where that folder cannot be written (read-only export) are they unpacked into a temp folder
    for the duration of the load.
    """
    folder = layout.path.parent / f"{UNPACKED_PREFIX}{nemo_sha256[:16]}"
    if _is_valid_unpacked(folder, layout, nemo_sha256):
        yield folder
        return
    staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        _unpack(layout, nemo_sha256, staging)
        if folder.exists():  # damaged or stale: move it aside first, never rewrite it in place
            # A fresh name: a folder is never renamed over another (Windows refuses, POSIX unless empty).
            trash = folder.with_name(f"{folder.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
            move_folder(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)
        move_folder(staging, folder)
    except OSError:  # read-only export, or (Windows) another running app has files of `folder` open
        shutil.rmtree(staging, ignore_errors=True)
        if _is_valid_unpacked(folder, layout, nemo_sha256):  # another process won the race
            yield folder
            return
        # ignore_cleanup_errors: on Windows a file still open in it must not fail a finished load
        with tempfile.TemporaryDirectory(prefix="localstt-nemo-", ignore_cleanup_errors=True) as temporary:
            _unpack(layout, nemo_sha256, Path(temporary))
            yield Path(temporary)
        return
    yield folder


def _torch_version() -> tuple[int, int]:
    import torch  # with the model, not before

    major, minor = torch.__version__.split("+", 1)[0].split(".")[:2]
    return int(major), int(minor)


def fast_path_problem(layout: NemoLayout) -> str | None:
    """Why the mapped load cannot be used for this archive with this torch, or None if it can."""
    if (problem := fast_load_problem()) is not None:
        return problem
    try:
        import torch.serialization as serialization  # with the model, not before
        from torch import _weights_only_unpickler  # noqa: F401
    except ImportError as error:
        return f"torch internals missing ({error})"
    low, high = TESTED_TORCH
    if not low <= _torch_version() <= high:
        return f"torch {_torch_version()} is outside the versions whose loader internals were checked"
    if "overall_storage" not in inspect.signature(serialization._load).parameters:
        return "torch.serialization._load has another signature"
    member = layout.weights
    if not member.isreg() or member.sparse is not None:
        return "the weights are not a plain tar member"
    if member.offset_data % 64 or member.offset_data + member.size > layout.size:
        return "the weights are not aligned inside the archive"
    return None


def mapped_state_dict(layout: NemoLayout) -> dict[str, Any]:
    """The state dict, its tensors mapped (read-only file, private mapping) out of the archive."""
    import pickle  # only for the mapped load

    import torch  # with the model, not before
    from torch import _weights_only_unpickler  # with the model, not before
    from torch.serialization import _is_zipfile, _load, _open_zipfile_reader  # with the model, not before

    whole = torch.UntypedStorage.from_file(str(layout.path), False, layout.size)
    start = layout.weights.offset_data
    window = whole[start : start + layout.weights.size]
    with tarfile.open(layout.path, "r:") as tar:
        handle = tar.extractfile(layout.weights)
        if handle is None or not _is_zipfile(handle):
            raise FastPathUnavailable("the weights are not a torch zip checkpoint")
        # As torch.load(weights_only=True) calls it: the restricted unpickler, and the flag where this
        # torch's _load takes one (2.11 has no such parameter; the unpickler alone restricts there).
        flags = {"weights_only": True} if "weights_only" in inspect.signature(_load).parameters else {}
        try:
            with _open_zipfile_reader(handle) as zip_file:
                state: dict[str, Any] = _load(  # type: ignore[no-untyped-call]  # torch's private loader
                    zip_file,
                    "cpu",
                    _weights_only_unpickler,
                    overall_storage=window,
                    encoding="utf-8",
                    **flags,
                )
                return state
        except pickle.UnpicklingError as error:
            raise LoadError(f"{layout.path}: the weights hold more than tensors ({error}).") from None


def read_state_dict(layout: NemoLayout, map_location: Any) -> dict[str, Any]:
    """The state dict read into memory from the archive (the plain way), weights only."""
    import torch  # with the model, not before

    with tarfile.open(layout.path, "r:") as tar:
        handle = tar.extractfile(layout.weights)
        assert handle is not None
        state: dict[str, Any] = torch.load(handle, map_location=map_location, weights_only=True)
        return state


def meta_tensors(model: Any) -> list[str]:
    named = [*model.named_parameters(), *model.named_buffers()]
    return [name for name, tensor in named if tensor.is_meta]


def rebuild_positional_encodings(model: Any) -> None:
    """The encoders' positional tables are not in the checkpoint: build them again for real."""
    for module in model.modules():
        pos_enc = getattr(module, "pos_enc", None)
        if pos_enc is None or not hasattr(module, "set_max_audio_length"):
            continue
        if getattr(pos_enc, "pe", None) is not None and pos_enc.pe.is_meta:
            delattr(pos_enc, "pe")
        module.set_max_audio_length(module.max_audio_length)


def connector(
    layout: NemoLayout,
    folder: Path,
    fast: bool,
    config_yaml: str = "model_config.yaml",
    config_changes: dict[str, Any] | None = None,
) -> Any:
    """A SaveRestoreConnector for `restore_from` that reads `layout` from `folder` and the archive:
    the config `config_yaml` (with `config_changes` set in it) and the weights `layout.weights`."""
    from accelerate import init_empty_weights  # with the model, not before
    from nemo.core.connectors.save_restore_connector import (
        SaveRestoreConnector,
    )  # NeMo: ~10 s to import, so not before
    from omegaconf import OmegaConf  # NeMo's config library: with the model, not before

    class InPlaceNemoConnector(SaveRestoreConnector):  # type: ignore[misc]  # NeMo has no type information
        def load_config_and_state_dict(
            self, calling_cls: Any, restore_path: str, *args: Any, **kwargs: Any
        ) -> tuple[Any, Any, Any]:
            conf: Any = OmegaConf.load(folder / self.model_config_yaml)
            conf = conf.model if "model" in conf else conf
            for key, value in (config_changes or {}).items():
                conf[key] = value
            OmegaConf.set_struct(conf, True)
            calling_cls._set_model_restore_state(is_being_restored=True, folder=str(folder))
            try:
                if fast:
                    state_dict = mapped_state_dict(layout)
                    with init_empty_weights(include_buffers=False):
                        instance = calling_cls.from_config_dict(config=conf)
                else:
                    instance = calling_cls.from_config_dict(config=conf)
                    state_dict = read_state_dict(layout, "cpu")
            except BaseException:
                calling_cls._set_model_restore_state(is_being_restored=False)
                raise
            return conf, instance, state_dict

        def load_instance_with_state_dict(self, instance: Any, state_dict: Any, strict: bool) -> None:
            try:
                instance.load_state_dict(state_dict, strict=True, assign=fast)
                if fast:
                    rebuild_positional_encodings(instance)
                    if left := meta_tensors(instance):
                        raise FastPathUnavailable(f"left on the meta device: {', '.join(left[:5])}")
            finally:
                instance._set_model_restore_state(is_being_restored=False)

    restorer = InPlaceNemoConnector()
    restorer.model_config_yaml = config_yaml
    return restorer


def plan_one_nemo(api: HfApi, spec: ModelSpec) -> list[RemoteFile]:
    """The export of a repo that publishes its model as one top-level `.nemo` file (the ASR and
    diarizer families): that file, unchanged. HubError when there is not exactly one."""
    from localstt.hub import list_files  # huggingface_hub: only the export needs it

    files = list_files(api, spec.repo, spec.revision, {"*.nemo": "{name}"})
    nemo_files = [f for f in files if "/" not in f.path]
    if len(nemo_files) != 1:
        raise HubError(
            f"{spec.repo}@{spec.short_revision} should hold one .nemo file; found {len(nemo_files)}."
        )
    return nemo_files
