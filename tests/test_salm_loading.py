"""The fast Canary-Qwen load (parameters on meta, safetensors mapped and assigned) gives NeMo's model.

Checked on the tiny SALM of the exported test project against `SALM.from_pretrained` on the same
folder: every weight identical, tied embeddings one tensor again, nothing left on meta, the same tokens
generated, the file untouched; the fallback to `from_pretrained` when the fast path cannot be used.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import localstt.offline  # noqa: F401  (offline switches before NeMo and the hub client are imported)
from localstt.errors import LoadError
from localstt.loading import speechlm as salm_loading
from localstt.loading.nemo_archive import meta_tensors
from testkit.store_env import console_as_an_entry_point
from testkit.tiny_models import PHRASE_WAV, transcribe_prompt


@pytest.fixture(scope="module")
def export_dir(exported_project: Any) -> Path:
    return exported_project.root / "local_models" / "canary-qwen"


@pytest.fixture(scope="module")
def reference(export_dir: Path) -> Any:
    from nemo.collections.speechlm2.models import SALM

    return SALM.from_pretrained(str(export_dir), local_files_only=True).eval()


@pytest.fixture
def console() -> Iterator[None]:
    """The console lines the loader's user sees (the test reads them from stderr)."""
    with console_as_an_entry_point():
        yield


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generated(model: Any) -> torch.Tensor:
    with torch.inference_mode():
        return model.generate(prompts=transcribe_prompt(model, PHRASE_WAV), max_new_tokens=8)


def tied_groups(model: Any) -> list[list[str]]:
    groups: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(parameter), []).append(name)
    return sorted(sorted(names) for names in groups.values() if len(names) > 1)


def test_mapped_load_is_from_pretrained_weight_for_weight(export_dir: Path, reference: Any):
    weights = export_dir / "model.safetensors"
    before = sha256(weights)
    model, method = salm_loading.load_salm(export_dir, "cpu", torch.float32)

    assert method == "mapped" and not model.training and meta_tensors(model) == []
    ours, theirs = model.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    assert [key for key in ours if not torch.equal(ours[key], theirs[key])] == []
    assert {tensor.dtype for tensor in ours.values() if tensor.is_floating_point()} == {torch.float32}
    # Qwen3's output layer is its input embedding again, as in the model NeMo builds.
    assert tied_groups(model) == tied_groups(reference) != []
    assert torch.equal(generated(model), generated(reference))
    assert sha256(weights) == before


def test_environment_switch_uses_from_pretrained(export_dir: Path, reference: Any, monkeypatch):
    monkeypatch.setenv("LOCALSTT_FAST_LOAD", "0")
    model, method = salm_loading.load_salm(export_dir, "cpu", torch.float32)
    assert method == "safetensors"
    assert torch.equal(generated(model), generated(reference))


def test_failing_internals_fall_back_to_from_pretrained(
    export_dir: Path, reference: Any, monkeypatch, capfd, console
):
    def broken(folder: Path) -> Any:
        raise AttributeError("'SALM' object has no attribute 'embed_tokens'")

    monkeypatch.setattr(salm_loading, "_load_mapped", broken)
    model, method = salm_loading.load_salm(export_dir, "cpu", torch.float32)
    assert method == "safetensors"
    assert (
        "the slow way (AttributeError: 'SALM' object has no attribute 'embed_tokens')"
        in capfd.readouterr().err
    )
    assert torch.equal(generated(model), generated(reference))


def test_a_file_lacking_a_weight_is_refused(export_dir: Path, tmp_path: Path):
    from safetensors.torch import load_file, save_file

    damaged = tmp_path / "canary-qwen"
    shutil.copytree(export_dir, damaged)
    state = load_file(str(export_dir / "model.safetensors"))
    dropped = sorted(key for key in state if "perception.encoder" in key)[0]
    del state[dropped]
    save_file(state, str(damaged / "model.safetensors"))

    with pytest.raises(LoadError, match=r"do not fit the model built from its config.json \(1 missing"):
        salm_loading.load_salm(damaged, "cpu", torch.float32)
