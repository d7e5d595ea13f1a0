"""The fast Parakeet load (parameters on meta, weights mapped out of the .nemo) gives NeMo's model.

Checked on the tiny model against `ASRModel.restore_from`: every weight and buffer bit-identical, the
same transcript and timestamps, nothing left on the meta device, no temp file written, the .nemo
untouched, and the plain fallback giving the same model whenever the mapped path cannot be used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localstt.config import load_config
from localstt.environment import FAST_LOAD_ENV
from localstt.loading import nemo_archive
from localstt.models import LoadedModel
from localstt.store import ModelStore
from testkit.hubserver import run_hub
from testkit.store_env import (
    NEMO_NAME,
    OFFLINE_RUNNER,
    Project,
    config_on,
    console_as_an_entry_point,
    make_project,
    seed_hub,
)
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()

LOAD_AND_COMPARE = """
import hashlib, json, os, sys, tempfile
from pathlib import Path

tmp = Path(tempfile.gettempdir())
import torch
import model_loader

store = model_loader.default_store()
export_dir = store.export_dir("parakeet")
nemo = export_dir / "parakeet-tdt-0.6b-v2.nemo"

def snapshot():
    return {str(p.relative_to(export_dir)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in export_dir.rglob("*")}

before = snapshot()
tmp_before = sorted(os.listdir(tmp))
loaded = store.load("parakeet")
model = loaded.model
after = snapshot()
result = {
    "method": loaded.method,
    "tmp_before": tmp_before,
    "tmp_after_load": sorted(os.listdir(tmp)),
    "export_changes": sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)),
    "meta": [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta],
    "training": model.training,
}

def transcribe(m):
    hyp = m.transcribe([sys.argv[1]], batch_size=1, timestamps=True, verbose=False)[0]
    return {"text": hyp.text, "words": json.loads(json.dumps(hyp.timestamp["word"], default=float))}

result["ours"] = transcribe(model)
from nemo.collections.asr.models import ASRModel
reference = ASRModel.restore_from(str(nemo), map_location="cpu").eval()
result["theirs"] = transcribe(reference)
ours = dict([*model.named_parameters(), *model.named_buffers()])
theirs = dict([*reference.named_parameters(), *reference.named_buffers()])
result["same_names"] = sorted(ours) == sorted(theirs)
result["different"] = sorted(
    k for k in theirs if k not in ours or ours[k].dtype != theirs[k].dtype
    or not torch.equal(ours[k], theirs[k])
)
result["compared"] = len(theirs)
result["nemo_sha256"] = hashlib.sha256(nemo.read_bytes()).hexdigest()
print("RESULT " + json.dumps(result))
"""


@pytest.fixture(scope="module")
def fast_project(tiny_repo_files, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The tiny Parakeet exported through the real export script (once for this module), loaded on
    the CPU (its config.toml says so), where the reference `restore_from` puts it."""
    with run_hub() as server:
        seed_hub(
            server, tiny_repo_files["parakeet"][NEMO_NAME], tiny_repo_files["canary"], tiny_repo_files["llm"]
        )
        project = make_project(tmp_path_factory.mktemp("fast") / "project", server)
        result = project.export("parakeet")
        assert result.returncode == 0, result.stderr
        config_on(project, "cpu", in_place=True)
        yield project


def _run(project: Project, tmpdir: Path) -> dict:
    script = project.root / "fast_load_snippet.py"
    script.write_text(LOAD_AND_COMPARE, encoding="utf-8")
    env = project.env(TMPDIR=str(tmpdir), LOCALSTT_CONFIG=str(project.config))
    result = subprocess.run(
        [sys.executable, str(OFFLINE_RUNNER), str(script), str(PHRASE_WAV)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=project.root,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.split("RESULT ", 1)[1])


def _unpacked(project: Project) -> Path:
    (folder,) = (project.models_dir / "parakeet").glob(f"{nemo_archive.UNPACKED_PREFIX}*")
    return folder


@pytest.mark.slow
def test_mapped_load_is_restore_from_bit_for_bit_with_no_temp_files(fast_project: Project, tmp_path):
    nemo = fast_project.models_dir / "parakeet" / NEMO_NAME
    sha_before = hashlib.sha256(nemo.read_bytes()).hexdigest()
    for run in ("first", "second"):
        tmpdir = tmp_path / f"tmp-{run}"
        tmpdir.mkdir()
        values = _run(fast_project, tmpdir)
        assert values["method"] == "mapped"
        assert values["tmp_before"] == [] and values["tmp_after_load"] == []
        assert values["meta"] == [] and values["training"] is False
        assert values["same_names"] and values["different"] == [] and values["compared"] > 50
        assert values["ours"] == values["theirs"]
        assert values["ours"]["text"] == PHRASE and values["ours"]["words"]
        assert values["nemo_sha256"] == sha_before
        if run == "first":  # the config and tokenizer are unpacked once, beside the archive
            folder = _unpacked(fast_project).name
            assert values["export_changes"] and all(c.startswith(folder) for c in values["export_changes"])
        else:  # from then on a load writes nothing at all
            assert values["export_changes"] == []
    assert hashlib.sha256(nemo.read_bytes()).hexdigest() == sha_before


@pytest.fixture
def console() -> Iterator[None]:
    """The console lines the loader's user sees (the test reads them from stderr)."""
    with console_as_an_entry_point():
        yield


def _reference_state(project: Project) -> dict:
    import tarfile

    import torch

    with tarfile.open(project.models_dir / "parakeet" / NEMO_NAME) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("model_weights.ckpt"))
        return torch.load(tar.extractfile(member), map_location="cpu", weights_only=True)


def _load_in_process(project: Project) -> LoadedModel:
    return ModelStore(load_config(project.config)).load("parakeet")


def _assert_same_model(project: Project, loaded: LoadedModel) -> None:
    import torch

    reference = _reference_state(project)
    state = loaded.model.state_dict()
    assert sorted(state) == sorted(reference)
    assert all(torch.equal(state[k], reference[k]) for k in reference)
    assert nemo_archive.meta_tensors(loaded.model) == []
    hypothesis = loaded.model.transcribe([str(PHRASE_WAV)], timestamps=True, verbose=False)[0]
    assert hypothesis.text == PHRASE


def test_a_loader_without_weights_only_as_in_torch_2_11_still_maps(fast_project: Project, monkeypatch):
    """torch 2.11's private `_load` takes no `weights_only` (torch.load restricts through the unpickler
    it passes alone); the mapped load must work with that signature, not fall back."""
    import torch.serialization

    real = torch.serialization._load
    calls: list[dict[str, object]] = []

    def load_as_in_2_11(
        zip_file,
        map_location,
        pickle_module,
        pickle_file="data.pkl",
        overall_storage=None,
        **pickle_load_args,
    ):
        calls.append({"pickle_module": pickle_module, **pickle_load_args})
        return real(
            zip_file,
            map_location,
            pickle_module,
            pickle_file=pickle_file,
            overall_storage=overall_storage,
            **pickle_load_args,
        )

    monkeypatch.setattr(torch.serialization, "_load", load_as_in_2_11)
    loaded = _load_in_process(fast_project)
    assert loaded.method == "mapped"
    (call,) = calls
    assert call["pickle_module"] is torch._weights_only_unpickler and "weights_only" not in call
    _assert_same_model(fast_project, loaded)


def test_untested_torch_falls_back_to_the_plain_load(fast_project: Project, monkeypatch, capfd, console):
    monkeypatch.setattr(nemo_archive, "TESTED_TORCH", ((1, 0), (1, 0)))
    loaded = _load_in_process(fast_project)
    assert loaded.method == "plain"
    assert "outside the versions whose loader internals were checked" in capfd.readouterr().err
    _assert_same_model(fast_project, loaded)


def test_failing_internals_fall_back_to_the_plain_load(fast_project: Project, monkeypatch, capfd, console):
    def moved(layout: object) -> None:
        raise AttributeError("module 'torch.serialization' has no attribute '_load'")

    monkeypatch.setattr(nemo_archive, "mapped_state_dict", moved)
    loaded = _load_in_process(fast_project)
    assert loaded.method == "plain"
    assert "AttributeError" in capfd.readouterr().err
    _assert_same_model(fast_project, loaded)


def test_environment_switch_forces_the_plain_load(fast_project: Project, monkeypatch):
    monkeypatch.setenv(FAST_LOAD_ENV, "0")
    loaded = _load_in_process(fast_project)
    assert loaded.method == "plain"
    _assert_same_model(fast_project, loaded)


def test_damaged_unpacked_folder_is_unpacked_again(fast_project: Project):
    _load_in_process(fast_project)  # make sure the folder exists
    folder = _unpacked(fast_project)
    tokenizer = next(folder.glob("*tokenizer.model"))
    good = tokenizer.read_bytes()
    tokenizer.write_bytes(good[:-10] + b"x" * 10)
    loaded = _load_in_process(fast_project)
    assert loaded.method == "mapped"
    assert _unpacked(fast_project).name == folder.name
    assert tokenizer.read_bytes() == good
    _assert_same_model(fast_project, loaded)


def test_unwritable_export_unpacks_into_a_temp_folder(fast_project: Project, monkeypatch):
    for folder in (fast_project.models_dir / "parakeet").glob(f"{nemo_archive.UNPACKED_PREFIX}*"):
        shutil.rmtree(folder)
    real_replace = os.replace

    def read_only(source: object, target: object) -> None:
        if nemo_archive.UNPACKED_PREFIX in str(target):
            raise PermissionError(13, "Read-only file system", str(target))
        real_replace(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(nemo_archive.os, "replace", read_only)
    loaded = _load_in_process(fast_project)
    assert loaded.method == "mapped"
    assert not list((fast_project.models_dir / "parakeet").glob(".unpacked-*"))
    _assert_same_model(fast_project, loaded)


def test_unpacks_on_a_python_whose_tarfile_has_no_extraction_filter(fast_project: Project, monkeypatch):
    """Debian 12's system Python is 3.11.2: its TarFile.extractall has no `filter` argument (added in
    3.11.4). The unpack must not depend on it; here extractall itself is made unusable."""
    import tarfile

    for folder in (fast_project.models_dir / "parakeet").glob(f"{nemo_archive.UNPACKED_PREFIX}*"):
        shutil.rmtree(folder)

    def no_filter(self: tarfile.TarFile, *args: object, **kwargs: object) -> None:
        raise TypeError("TarFile.extractall() got an unexpected keyword argument 'filter'")

    monkeypatch.setattr(tarfile.TarFile, "extractall", no_filter)
    monkeypatch.delattr(tarfile, "data_filter", raising=False)  # absent before Python 3.11.4
    loaded = _load_in_process(fast_project)
    assert loaded.method == "mapped"
    folder = _unpacked(fast_project)
    with tarfile.open(next((fast_project.models_dir / "parakeet").glob("*.nemo"))) as tar:
        small = [m for m in tar.getmembers() if m.isfile() and not m.name.endswith("model_weights.ckpt")]
        for member in small:
            unpacked = folder / nemo_archive._relative(member)
            assert unpacked.read_bytes() == tar.extractfile(member).read(), member.name
    _assert_same_model(fast_project, loaded)
