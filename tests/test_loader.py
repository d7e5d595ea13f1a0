"""model_loader: refuses what it must refuse, and loads exports offline with no socket opened."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

import model_loader
from localstt.config import load_config
from localstt.manifest import ExportError
from testkit.store_env import NEMO_NAME, Project, publish_crafted_export


def store_for(project: Project) -> model_loader.ModelStore:
    return model_loader.ModelStore(load_config(project.config))


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
    with pytest.raises(model_loader.LoadError, match="Refusing .*(outside the archive|is a link)"):
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


def test_loading_is_offline_exact_and_cached(project: Project, tiny_repo_files):
    from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

    assert project.export().returncode == 0
    project.hub.clear_log()
    result = project.run_offline(LOAD_BOTH, str(PHRASE_WAV))
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
    assert "No CUDA GPU found: running on the CPU" in result.stderr
