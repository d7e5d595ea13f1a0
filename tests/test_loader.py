"""model_loader: refuses what it must refuse, and loads exports offline with no socket opened."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import tarfile
from logging.handlers import BufferingHandler

import pytest
import torch

from localstt.config import load_config
from localstt.errors import LoadError
from localstt.manifest import ExportError
from localstt.store import ModelStore
from testkit.store_env import NEMO_NAME, Project, config_on, publish_crafted_export


def store_for(project: Project) -> ModelStore:
    return ModelStore(load_config(project.config))


def test_missing_export_names_the_export_command(project: Project):
    project.config.write_text(
        project.config.read_text().replace('revision = ""', f'revision = "{"1" * 40}"', 1), encoding="utf-8"
    )
    with pytest.raises(ExportError) as caught:
        store_for(project).load("parakeet")
    message = str(caught.value)
    assert "parakeet is not exported" in message
    assert f"uv run python export_models.py --config {project.config} parakeet" in message
    assert project.hub.requests == []


def test_unpinned_model_names_the_export_command(project: Project):
    with pytest.raises(ExportError, match="no pinned revision yet; run `uv run python export_models.py"):
        store_for(project).load("canary-qwen")


def test_pin_mismatch_is_refused(project: Project):
    assert project.export("parakeet").returncode == 0
    text = project.config.read_text()
    pinned = project.hub.ref("nvidia/parakeet-tdt-0.6b-v2")
    project.config.write_text(text.replace(pinned, "2" * 40))
    with pytest.raises(
        ExportError, match=f"on disk is nvidia/parakeet-tdt-0.6b-v2@{pinned[:12]} but config.toml pins"
    ):
        store_for(project).load("parakeet")


def test_same_size_corruption_and_size_change_are_refused(project: Project):
    assert project.export("parakeet").returncode == 0
    nemo_path = project.models_dir / "parakeet" / NEMO_NAME
    original = nemo_path.read_bytes()
    corrupted = bytearray(original)
    corrupted[-2000] ^= 0x01
    nemo_path.write_bytes(bytes(corrupted))
    with pytest.raises(ExportError, match=r"sha256 differs .*--repair parakeet"):
        store_for(project).load("parakeet")
    nemo_path.write_bytes(original + b"\0")
    with pytest.raises(ExportError, match=f"size {len(original) + 1} bytes, expected {len(original)}"):
        store_for(project).load("parakeet", verify="size")


@pytest.mark.parametrize(
    ("member", "kind"),
    [
        ("../escape.txt", tarfile.REGTYPE),
        ("/etc/passwd-copy", tarfile.REGTYPE),
        ("evil-link", tarfile.SYMTYPE),
    ],
)
def test_archive_members_that_escape_are_refused(project: Project, member: str, kind: bytes, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(member)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"boom"))
    publish_crafted_export(project, buffer.getvalue(), "3" * 40)
    with pytest.raises(LoadError, match="Refusing .*(outside the archive|is a link)"):
        store_for(project).load("parakeet")
    assert not (project.models_dir / "escape.txt").exists()


LOAD_BOTH = """
import json, sys, tarfile, hashlib
import torch
from safetensors.torch import load_file
from model_loader import default_store, load_model

store = default_store()
result = {}
parakeet = load_model("parakeet")
nemo = store.export_dir("parakeet") / "parakeet-tdt-0.6b-v2.nemo"
with tarfile.open(nemo) as tar:
    member = next(m for m in tar.getmembers() if m.name.endswith("model_weights.ckpt"))
    reference = torch.load(tar.extractfile(member), map_location="cpu", weights_only=True)
state = parakeet.state_dict()
result["parakeet_same_weights"] = sorted(reference) == sorted(state) and all(
    torch.equal(reference[k].cpu(), state[k].cpu()) for k in reference
)
result["parakeet_class"] = type(parakeet).__name__
result["parakeet_text"] = parakeet.transcribe([sys.argv[1]], timestamps=True, verbose=False)[0].text
result["parakeet_again_is_cached"] = load_model("parakeet") is parakeet

canary = load_model("canary-qwen")
reference = load_file(str(store.export_dir("canary-qwen") / "model.safetensors"))
state = canary.state_dict()
stored = {state[r].data_ptr() for r in reference}
tied = {k for k in set(state) - set(reference) if state[k].data_ptr() in stored}
result["canary_tied_only"] = sorted(set(state) - set(reference) - tied) == []
result["canary_same_weights"] = set(reference) <= set(state) and all(
    torch.equal(reference[k], state[k]) for k in reference
)
result["canary_class"] = type(canary).__name__
result["parakeet_unloaded"] = store.loaded("parakeet") is None
print("RESULT " + json.dumps(result))
"""


@pytest.mark.slow
def test_loading_is_offline_exact_and_cached(project: Project, tiny_repo_files):
    from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

    assert project.export().returncode == 0
    project.hub.clear_log()
    result = project.run_offline(LOAD_BOTH, str(PHRASE_WAV), config=config_on(project, "cpu"))
    assert result.returncode == 0, result.stderr[-3000:]
    values = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert values == {
        "parakeet_same_weights": True,
        "parakeet_class": "EncDecRNNTBPEModel",
        "parakeet_text": PHRASE_TXT.read_text().strip(),
        "parakeet_again_is_cached": True,
        "canary_same_weights": True,
        "canary_tied_only": True,
        "canary_class": "SALM",
        "parakeet_unloaded": True,
    }
    assert project.blocked_attempts() == []
    assert project.hub.requests == []  # not even the LLM repo was asked for
    short = project.hub.ref("nvidia/parakeet-tdt-0.6b-v2")[:12]
    assert (
        f"parakeet-tdt-0.6b-v2 @ {short} loaded from {project.models_dir / 'parakeet'} in " in result.stdout
    )
    assert "on cpu (float32)" in result.stdout
    assert "No CUDA GPU found" not in result.stderr  # the CPU was asked for: nothing to warn about


def test_auto_without_a_gpu_runs_on_the_cpu_with_a_warning(exported_project: Project, monkeypatch):
    """device = "auto" (the shipped setting) on a machine whose PyTorch sees no GPU, whatever this one has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = load_config(config_on(exported_project, "auto"))
    assert config.runtime.device == "auto"
    sentence = "No CUDA GPU found: running on the CPU, which is many times slower."
    logger, kept = logging.getLogger("localstt"), BufferingHandler(10_000)  # the package's console lines
    logger.addHandler(kept)
    try:
        with pytest.warns(UserWarning) as warned:
            loaded = ModelStore(config).load("parakeet")
    finally:
        logger.removeHandler(kept)
    assert [str(w.message) for w in warned if "GPU" in str(w.message)] == [sentence]
    assert (loaded.device, loaded.dtype) == ("cpu", "float32")
    assert next(loaded.model.parameters()).device.type == "cpu"
    logged = [r.getMessage() for r in kept.buffer if r.levelno >= logging.WARNING]
    assert logged == [f"WARNING: {sentence}"]


# The hub client is imported first, as a harness or the user's own code may have done.
OFFLINE_ON_IMPORT = """
import json, os, sys
import huggingface_hub
from huggingface_hub import snapshot_download

online = huggingface_hub.constants.HF_HUB_OFFLINE
import model_loader

try:
    snapshot_download(sys.argv[1], cache_dir=sys.argv[2])
    outcome = "downloaded"
except Exception as error:
    outcome = type(error).__name__
switches = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
print(json.dumps({"before": online, "after": huggingface_hub.constants.HF_HUB_OFFLINE,
                  "env": {name: os.environ.get(name) for name in switches}, "download": outcome}))
"""


def test_importing_model_loader_makes_the_process_offline(project: Project, tmp_path):
    """model_loader's promise, in a process of its own (in this one it would hold for every later test)."""
    script = tmp_path / "offline_on_import.py"
    script.write_text(OFFLINE_ON_IMPORT, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script), "nvidia/parakeet-tdt-0.6b-v2", str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=300,
        env=project.env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "before": False,
        "after": True,
        "env": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        "download": "LocalEntryNotFoundError",
    }
    assert project.hub.requests == []  # the hub the process was pointed at heard nothing
