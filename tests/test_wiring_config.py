"""[runtime] settings of config.toml reach the loader through the real `transcribe` command: `device =
"cuda"` where PyTorch sees no GPU, and `verify_on_load = "full"` (localstt/store.py, localstt/manifest.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from localstt.config import load_config
from localstt.errors import DeviceError
from localstt.manifest import STAMPS_NAME, ExportError, check_export
from localstt.store import ModelStore
from testkit.store_env import NEMO_NAME, REPO_ROOT, Project, config_on
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
NO_CUDA = (
    'error: config.toml asks for device = "cuda" but PyTorch sees no CUDA GPU; install a CUDA build of '
    'PyTorch (docs/install.md, "GPU installs") or set device = "auto".'
)


def transcribe(project: Project, config: Path, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localstt.cli", str(PHRASE_WAV), "--config", str(config), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=project.env(**env),
        cwd=REPO_ROOT,
    )


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.slow  # the command in its own process (NeMo's import alone takes most of it)
def test_device_cuda_without_a_gpu_stops_with_one_sentence(exported_project: Project, tmp_path: Path):
    """CUDA_VISIBLE_DEVICES="" hides any GPU this machine has: PyTorch there sees none, as on a laptop."""
    config = config_on(exported_project, "cuda")
    result = transcribe(exported_project, config, tmp_path / "out", CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 2, result.stdout + result.stderr
    assert errors(result) == [NO_CUDA], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "phrase.txt").exists()


def copy_of_the_export(exported_project: Project, root: Path) -> Path:
    """config.toml and local_models/parakeet of the session's export, copied: this one may be damaged."""
    root.mkdir()
    shutil.copy(exported_project.config, root / "config.toml")
    shutil.copytree(exported_project.models_dir / "parakeet", root / "local_models" / "parakeet")
    return root / "config.toml"


def with_verify(config: Path, mode: str) -> Path:
    text, changed = re.subn(r'(?m)^verify_on_load = "\w+"$', f'verify_on_load = "{mode}"', config.read_text())
    assert changed == 1
    path = config.with_name(f"verify-{mode}.toml")
    path.write_text(text, encoding="utf-8")
    return path


def stamp(path: Path) -> list[int]:
    """What the quick check compares (localstt/manifest.py, _stamp on POSIX)."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]


def rot_a_byte_unseen(export_dir: Path) -> Path:
    """A byte of the archive goes bad and nothing about the file says so (same size and mtime, and the
    stamps of the last check agree, as with a disk that rots a sector). Returns the archive."""
    nemo = export_dir / NEMO_NAME
    data = bytearray(nemo.read_bytes())
    assert data[-1] == 0  # the tar's end-of-archive padding: no reader of the archive looks at it
    data[-1] = 0xFF
    before = nemo.stat()
    with nemo.open("r+b") as handle:  # in place: the same inode
        handle.seek(len(data) - 1)
        handle.write(bytes(data[-1:]))
    os.utime(nemo, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert nemo.stat().st_size == before.st_size and nemo.stat().st_mtime_ns == before.st_mtime_ns
    (export_dir / STAMPS_NAME).write_text(json.dumps({NEMO_NAME: stamp(nemo)}), encoding="utf-8")
    return nemo


@pytest.mark.slow  # the command in its own process, twice
def test_verify_on_load_full_hashes_every_file_where_quick_trusts_the_stamps(
    exported_project: Project, tmp_path: Path
):
    """Quick loads the archive with the unseen bad byte; full refuses it with the export's sentence."""
    config = copy_of_the_export(exported_project, tmp_path / "project")
    export_dir = config.parent / "local_models" / "parakeet"
    rot_a_byte_unseen(export_dir)

    quick = transcribe(exported_project, with_verify(config, "quick"), tmp_path / "quick")
    assert quick.returncode == 0, quick.stderr
    assert (tmp_path / "quick" / "phrase.txt").read_text(encoding="utf-8").strip() == PHRASE

    full_config = with_verify(config, "full")
    full = transcribe(exported_project, full_config, tmp_path / "full")
    assert full.returncode == 2, full.stdout + full.stderr
    with pytest.raises(ExportError) as caught:  # the export's own sentence for it, from its full check
        check_export(load_config(full_config).model("parakeet"), export_dir, "full", full_config)
    sentence = str(caught.value)
    assert f"{NEMO_NAME}: sha256 differs" in sentence and "--repair parakeet" in sentence, sentence
    assert errors(full) == [f"error: {sentence}"], full.stderr
    assert "Traceback" not in full.stderr
    assert not (tmp_path / "full" / "phrase.txt").exists()


# The same two settings in this process, for the fast tier (the store reads them from the config).


def test_the_store_refuses_device_cuda_without_a_gpu(exported_project: Project, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    store = ModelStore(load_config(config_on(exported_project, "cuda")))
    with pytest.raises(DeviceError) as caught:
        store.load("parakeet")
    assert f"error: {caught.value}" == NO_CUDA
    assert store.loaded("parakeet") is None


def test_the_store_hashes_every_file_with_verify_on_load_full(exported_project: Project, tmp_path: Path):
    config = copy_of_the_export(exported_project, tmp_path / "project")
    export_dir = config.parent / "local_models" / "parakeet"
    rot_a_byte_unseen(export_dir)
    full_config = with_verify(config, "full")
    with pytest.raises(ExportError) as caught:
        ModelStore(load_config(full_config)).load("parakeet")
    assert f"{NEMO_NAME}: sha256 differs" in str(caught.value) and "--repair parakeet" in str(caught.value)
    loaded = ModelStore(load_config(with_verify(config, "quick"))).load("parakeet")  # quick trusts the stamps
    assert loaded.model is not None
