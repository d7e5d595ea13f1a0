"""What gets loaded: only bytes whose sha256 matches the manifest, and weights only as tensors.

Crafted archive members (absolute paths, "..", links) are refused in test_loader.py; here the archive
itself is hostile: its weights are a pickle that creates a folder when it is unpickled the unsafe way.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import pytest
import torch

import model_loader
from localstt.config import load_config
from localstt.manifest import ExportError
from testkit.store_env import NEMO_NAME, Project, publish_crafted_export
from testkit.tiny_models import TINY_PARAKEET_NEMO


class _Payload:
    """Unpickled by a plain unpickler, this calls os.mkdir(marker)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


def hostile_nemo(marker: Path, size: int | None = None) -> bytes:
    """The tiny Parakeet .nemo (real config and tokenizer) with its weights swapped for the payload,
    padded with zero blocks (still a valid tar) to `size` bytes."""
    weights = io.BytesIO()
    torch.save({"encoder.weight": _Payload(marker)}, weights)
    out = io.BytesIO()
    with tarfile.open(TINY_PARAKEET_NEMO, "r:") as source, tarfile.open(fileobj=out, mode="w:") as target:
        for member in source.getmembers():
            if member.name.endswith("model_weights.ckpt"):
                member.size = len(weights.getvalue())
                target.addfile(member, io.BytesIO(weights.getvalue()))
            else:
                target.addfile(member, source.extractfile(member) if member.isfile() else None)
    data = out.getvalue()
    if size is not None:
        assert len(data) <= size
        data += b"\0" * (size - len(data))
    return data


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every opening of a tar archive, torch.load and weights-only unpickling in this process."""
    from torch import _weights_only_unpickler

    calls: list[str] = []

    def spy(name: str, original):  # noqa: ANN001, ANN202
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            calls.append(name)
            return original(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(tarfile, "open", spy("tarfile.open", tarfile.open))
    monkeypatch.setattr(torch, "load", spy("torch.load", torch.load))
    unpickler = _weights_only_unpickler.Unpickler
    monkeypatch.setattr(unpickler, "load", spy("weights-only unpickle", unpickler.load))
    monkeypatch.setattr(pickle, "load", spy("pickle.load", pickle.load))
    monkeypatch.setattr(pickle, "loads", spy("pickle.loads", pickle.loads))
    return calls


def store_for(project: Project) -> model_loader.ModelStore:
    return model_loader.ModelStore(load_config(project.config))


@pytest.mark.parametrize("swap", ["replaced", "rewritten in place, mtime put back"])
def test_swapped_nemo_is_refused_before_anything_is_unpacked(project: Project, tmp_path, spies, swap):
    """Defence: check_export (localstt/manifest.py) runs before the loader touches the archive and
    re-hashes any file whose stamp changed; the stamp includes the ctime, which os.utime cannot put
    back, so even a same-size, same-inode, same-mtime rewrite is hashed and refused."""
    assert project.export("parakeet").returncode == 0
    nemo_path = project.models_dir / "parakeet" / NEMO_NAME
    before = nemo_path.stat()
    marker = tmp_path / "payload-ran"
    hostile = hostile_nemo(marker, size=before.st_size)
    if swap == "replaced":
        swapped = nemo_path.with_name("swap.tmp")
        swapped.write_bytes(hostile)
        os.replace(swapped, nemo_path)
    else:
        with nemo_path.open("r+b") as handle:
            handle.write(hostile)
        assert nemo_path.stat().st_ino == before.st_ino
    os.utime(nemo_path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert nemo_path.stat().st_size == before.st_size and nemo_path.stat().st_mtime_ns == before.st_mtime_ns

    spies.clear()
    with pytest.raises(ExportError, match=r"sha256 differs .*--repair parakeet"):
        store_for(project).load("parakeet")
    assert spies == []  # not opened as a tar, nothing unpickled
    assert not marker.exists()
    assert [p.name for p in nemo_path.parent.iterdir() if p.name.startswith(".unpacked")] == []


def published_hostile_export(project: Project, archive: bytes) -> None:
    publish_crafted_export(project, archive, "4" * 40)


@pytest.mark.parametrize("fast_load", ["1", "0"])
def test_weights_are_unpickled_only_as_tensors(project: Project, tmp_path, monkeypatch, fast_load):
    """Defence: the loader reads the weights with torch's weights-only unpickler
    (localstt/nemo_archive.py, mapped and plain paths alike), which refuses any callable, so a
    hostile checkpoint with a matching sha256 still runs no code."""
    monkeypatch.setenv("LOCALSTT_FAST_LOAD", fast_load)
    marker = tmp_path / "payload-ran"
    published_hostile_export(project, hostile_nemo(marker))
    with pytest.raises((model_loader.LoadError, pickle.UnpicklingError)) as caught:
        store_for(project).load("parakeet")
    assert "mkdir" in str(caught.value)  # refused for the forbidden global it names
    assert not marker.exists()
