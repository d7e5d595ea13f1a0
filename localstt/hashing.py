"""Hashing files, in one place: sha256 (what manifests record) and git's blob sha1 (what the hub
gives for small files), read in chunks so a 5 GB file never sits in memory."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

HASH_CHUNK = 8 * 1024 * 1024

OnBytes = Callable[[int], object]  # called with each chunk's length, e.g. a progress bar's update


def sha256_file(path: Path, on_bytes: OnBytes | None = None) -> str:
    """The file's sha256 (hex). `on_bytes` is called with each chunk's length (a progress bar)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """The sha256 (hex) of bytes held in memory, e.g. an output file before it is written."""
    return hashlib.sha256(data).hexdigest()


def sha256_and_git_sha1(path: Path, on_bytes: OnBytes | None = None) -> tuple[str, str]:
    """sha256 and git blob sha1 in one pass over the file."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    git_sha1 = hashlib.sha1(f"blob {size}\0".encode())
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            sha256.update(chunk)
            git_sha1.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return sha256.hexdigest(), git_sha1.hexdigest()
