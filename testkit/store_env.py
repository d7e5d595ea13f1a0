"""A throwaway project (config.toml + local_models/) wired to the test hub, and ways to run its scripts."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from testkit.hubserver import HubServer
from testkit.tiny_models import (
    CANARY_REPO_ID,
    PARAKEET_REPO_ID,
    QWEN_REPO_ID,
    SORTFORMER_REPO_ID,
    TINY_SORTFORMER_NEMO,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
OFFLINE_RUNNER = Path(__file__).resolve().parent / "offline.py"
NEMO_NAME = "parakeet-tdt-0.6b-v2.nemo"
SORTFORMER_NEMO_NAME = "diar_streaming_sortformer_4spk-v2.nemo"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_folder(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def seed_hub(hub: HubServer, nemo: bytes, canary: dict[str, bytes], llm: dict[str, bytes]) -> None:
    """The four repos as the real hub lays them out, each with an older commit under main (the
    speaker diarizer's holds the tiny Sortformer)."""
    readme = b"# model card\n"
    for repo, files in (
        (PARAKEET_REPO_ID, {NEMO_NAME: nemo, "README.md": readme}),
        (SORTFORMER_REPO_ID, {SORTFORMER_NEMO_NAME: TINY_SORTFORMER_NEMO.read_bytes(), "README.md": readme}),
        (CANARY_REPO_ID, {**canary, "README.md": readme}),
        # The LLM repo also holds weights that a correct export must never fetch.
        (QWEN_REPO_ID, {**llm, "model.safetensors": os.urandom(300_000), "README.md": readme}),
    ):
        hub.add_commit(repo, {"README.md": b"# first draft\n"})
        hub.add_commit(repo, files)


@dataclass
class Project:
    root: Path
    hub: HubServer

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def models_dir(self) -> Path:
        return self.root / "local_models"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
        env.update(
            HF_ENDPOINT=self.hub.endpoint,
            HF_HOME=str(self.root / "hf-home"),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DOWNLOAD_TIMEOUT="5",
            # after these, the caller's own (a site folder of packages the machine lacks, for one)
            PYTHONPATH=os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def export_cmd(self, *args: str) -> list[str]:
        return [sys.executable, str(REPO_ROOT / "export_models.py"), "--config", str(self.config), *args]

    def export(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.export_cmd(*args), capture_output=True, text=True, timeout=timeout, env=self.env(**env)
        )

    def run_offline(self, script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a Python snippet with every internet socket blocked; attempts go to blocked.log."""
        path = self.root / "snippet.py"
        path.write_text(script, encoding="utf-8")
        log = self.root / "blocked.log"
        log.unlink(missing_ok=True)
        return subprocess.run(
            [sys.executable, str(OFFLINE_RUNNER), str(path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(OFFLINE_ATTEMPTS_FILE=str(log), LOCALSTT_CONFIG=str(self.config)),
            cwd=self.root,
        )

    def blocked_attempts(self) -> list[str]:
        log = self.root / "blocked.log"
        return log.read_text().splitlines() if log.exists() else []


def publish_crafted_export(project: Project, archive: bytes, revision: str) -> None:
    """A parakeet export whose manifest matches `archive`, as if the hub itself had published it."""
    from localstt.manifest import FileRecord, Manifest

    export_dir = project.models_dir / "parakeet"
    export_dir.mkdir(parents=True)
    (export_dir / NEMO_NAME).write_bytes(archive)
    pinned = project.config.read_text().replace('revision = ""', f'revision = "{revision}"', 1)
    project.config.write_text(pinned)
    manifest = Manifest(
        key="parakeet",
        kind="nemo-asr",
        repo=PARAKEET_REPO_ID,
        revision=revision,
        files=(FileRecord(NEMO_NAME, len(archive), sha256(archive), "crafted"),),
    )
    (export_dir / "manifest.json").write_text(manifest.to_json())


def make_project(root: Path, hub: HubServer, pins: dict[str, str] | None = None) -> Project:
    """A copy of the shipped config.toml with its comments, models_dir inside `root`."""
    text = (REPO_ROOT / "config.toml").read_text(encoding="utf-8")
    for needle, value in (pins or {}).items():
        text = text.replace(needle, value, 1)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text(text, encoding="utf-8")
    return Project(root, hub)
