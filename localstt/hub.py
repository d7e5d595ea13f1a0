"""Talking to the hub: resolve a branch, list a pinned tree, download one file and prove it is the right one.

Only the export (localstt/export.py) imports this module. The app never does.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import httpx2
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile

from localstt.errors import HubError
from localstt.hashing import sha256_and_git_sha1
from localstt.portability import replace_with_retry

RETRY_DELAYS_S = (1.0, 2.0, 4.0)
T = TypeVar("T")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repo at one commit, as the hub describes it."""

    repo: str
    revision: str
    path: str
    size: int
    blob_id: str
    lfs_sha256: str | None
    destination: str

    @property
    def source(self) -> str:
        return f"{self.repo}@{self.revision}:{self.path}"

    def is_expected_content(self, sha256: str, git_sha1: str | None) -> bool:
        if self.lfs_sha256 is not None:
            return sha256 == self.lfs_sha256
        return git_sha1 == self.blob_id


def _http_status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _causes(error: BaseException) -> Iterable[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def explain(error: BaseException, repo: str, revision: str) -> HubError | None:
    """One sentence for a hub failure, or None when the error is not the hub's."""
    endpoint = constants.ENDPOINT
    for cause in _causes(error):
        status = _http_status(cause)
        if isinstance(cause, GatedRepoError) or status in (401, 403):
            return HubError(
                f"{repo} refused access (HTTP {status or 'gated'}): accept the model's terms on its hub "
                "page and set HF_TOKEN to a token that has access, then rerun."
            )
        if isinstance(cause, RevisionNotFoundError):
            return HubError(
                f"Revision {revision} does not exist in {repo}: fix the revision in config.toml "
                "(a full commit id), or leave it empty to pin the current main."
            )
        if isinstance(cause, RemoteEntryNotFoundError):
            return HubError(
                f"{endpoint} listed a file of {repo}@{revision[:12]} but then answered HTTP 404 for it "
                "(an incomplete mirror, or the revision is being rewritten): check HF_ENDPOINT, or "
                "rerun later; finished files are kept."
            )
        if isinstance(cause, RepositoryNotFoundError):
            return HubError(
                f"Repository {repo} was not found at {endpoint}: check `repo` in config.toml, or set "
                "HF_TOKEN if it is private."
            )
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return HubError(
                "The disk is full: free some space (or set models_dir in config.toml to a bigger "
                "disk) and rerun; finished files are kept."
            )
        if isinstance(cause, httpx2.TransportError) or (status is not None and status >= 500):
            what = f"HTTP {status}" if status else type(cause).__name__
            return HubError(
                f"Could not download from {endpoint} ({what}): check the network connection "
                "(and HF_ENDPOINT if you use a mirror), then rerun; finished files are kept."
            )
    if isinstance(error, LocalEntryNotFoundError):
        return HubError(
            f"Could not reach {endpoint}: check the network connection (and HF_ENDPOINT), then rerun."
        )
    return None


def _is_transient(error: BaseException) -> bool:
    for cause in _causes(error):
        status = _http_status(cause)
        if status is not None and status < 500 and status != 429:
            return False
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return False
        if isinstance(cause, httpx2.TransportError) or (status is not None and status >= 500):
            return True
        if isinstance(cause, ConnectionError | TimeoutError):
            return True
    return False


def with_retries(action: Callable[[], T], describe: str, repo: str, revision: str) -> T:
    """Run a hub call, retrying transient failures with backoff; other failures become HubError."""
    for attempt in range(len(RETRY_DELAYS_S) + 1):
        try:
            return action()
        except (HfHubHTTPError, LocalEntryNotFoundError, httpx2.HTTPError, OSError) as error:
            if attempt < len(RETRY_DELAYS_S) and _is_transient(error):
                delay = RETRY_DELAYS_S[attempt]
                logger.info("  %s failed (%s); retrying in %.0f s", describe, type(error).__name__, delay)
                time.sleep(delay)
                continue
            explained = explain(error, repo, revision)
            if explained is None:
                raise
            raise explained from error
    raise AssertionError("unreachable")


def resolve_main(api: HfApi, repo: str) -> str:
    info = with_retries(lambda: api.model_info(repo, revision="main"), "asking for main", repo, "main")
    if not info.sha:
        raise HubError(f"The hub gave no commit id for {repo}@main; try again later.")
    return info.sha


def list_files(api: HfApi, repo: str, revision: str, patterns: dict[str, str]) -> list[RemoteFile]:
    """Files at `revision` whose path matches a pattern, mapped to their place in the export.

    `patterns` maps a glob on the repo path to a destination ("{name}" keeps the file name).
    """
    entries = with_retries(
        lambda: list(api.list_repo_tree(repo, revision=revision, recursive=True, expand=False)),
        "listing files",
        repo,
        revision,
    )
    chosen: list[RemoteFile] = []
    for entry in entries:
        if not isinstance(entry, RepoFile):
            continue
        for pattern, destination in patterns.items():
            if fnmatch.fnmatchcase(entry.path, pattern):
                chosen.append(
                    RemoteFile(
                        repo=repo,
                        revision=revision,
                        path=entry.path,
                        size=entry.size,
                        blob_id=entry.blob_id,
                        lfs_sha256=entry.lfs.sha256 if entry.lfs else None,
                        destination=destination.format(name=entry.path),
                    )
                )
                break
    return chosen


def download_verified(remote: RemoteFile, fetch_dir: Path, destination: Path) -> str:
    """Download one file at its pinned commit, check size and hash, move it into place.

    Returns the file's sha256. A body whose hash is wrong is thrown away and fetched again
    once; a second bad body is an error. The destination only ever holds a verified file.
    """
    for attempt in (1, 2):
        downloaded = Path(
            with_retries(
                partial(
                    hf_hub_download,
                    remote.repo,
                    remote.path,
                    revision=remote.revision,
                    local_dir=fetch_dir,
                    force_download=attempt > 1,
                ),
                f"downloading {remote.path}",
                remote.repo,
                remote.revision,
            )
        )
        size = downloaded.stat().st_size
        sha256, git_sha1 = sha256_and_git_sha1(downloaded)
        if size == remote.size and remote.is_expected_content(sha256, git_sha1):
            destination.parent.mkdir(parents=True, exist_ok=True)
            replace_with_retry(downloaded, destination)
            return sha256
        downloaded.unlink()
        logger.info("  %s: downloaded content does not match the hub's hash; fetching again", remote.path)
    raise HubError(
        f"{remote.source} arrived corrupted twice (its sha256 does not match the hub's): "
        "check the network or any proxy in between, then rerun."
    )
