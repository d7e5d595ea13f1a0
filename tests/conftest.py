"""Shared pytest fixtures (the pieces they are made of are in testkit/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localstt.compat import tarfile_with_extraction_filters
from testkit.hubserver import HubServer, run_hub

tarfile_with_extraction_filters()  # before any test imports NeMo (its restore_from needs PEP 706)


@pytest.fixture
def hub() -> Iterator[HubServer]:
    """A fake Hugging Face Hub on 127.0.0.1 (see testkit/hubserver.py); pass ``endpoint=hub.endpoint``."""
    with run_hub() as server:
        yield server


@pytest.fixture(scope="session")
def tiny_repo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """Files of the three hub repos, made from tiny models of the real classes (built offline)."""
    from testkit.store_env import NEMO_NAME, read_folder
    from testkit.tiny_models import TINY_PARAKEET_NEMO, build_tiny_canary_repos

    canary_dir, llm_dir = build_tiny_canary_repos(tmp_path_factory.mktemp("tiny-canary"))
    return {
        "parakeet": {NEMO_NAME: TINY_PARAKEET_NEMO.read_bytes()},
        "canary": read_folder(canary_dir),
        "llm": read_folder(llm_dir),
    }


@pytest.fixture
def project(hub: HubServer, tiny_repo_files: dict[str, dict[str, bytes]], tmp_path: Path):  # noqa: ANN201
    """A fresh config.toml (no pins yet) and empty local_models/, with the test hub seeded."""
    from testkit.store_env import NEMO_NAME, make_project, seed_hub

    seed_hub(hub, tiny_repo_files["parakeet"][NEMO_NAME], tiny_repo_files["canary"], tiny_repo_files["llm"])
    return make_project(tmp_path / "project", hub)


@pytest.fixture(scope="session")
def exported_project(tiny_repo_files: dict[str, dict[str, bytes]], tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Both tiny models exported once for the whole session, through the real export script."""
    from testkit.store_env import NEMO_NAME, make_project, seed_hub

    with run_hub() as server:
        seed_hub(
            server, tiny_repo_files["parakeet"][NEMO_NAME], tiny_repo_files["canary"], tiny_repo_files["llm"]
        )
        project = make_project(tmp_path_factory.mktemp("exported") / "project", server)
        result = project.export()
        assert result.returncode == 0, result.stderr
        yield project


@pytest.fixture(scope="session")
def model_store(exported_project):  # noqa: ANN201
    """A ModelStore in this process over the exported tiny models."""
    import model_loader
    from localstt.config import load_config

    return model_loader.ModelStore(load_config(exported_project.config))
