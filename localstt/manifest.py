"""What an export holds (manifest.json) and the checks that decide whether it may be loaded."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from localstt import environment, portability
from localstt.errors import ExportError
from localstt.hashing import OnBytes, sha256_file
from localstt.portability import atomic_write_text
from localstt.spec import ModelSpec, find_config_path

MANIFEST_NAME = "manifest.json"
STAMPS_NAME = ".verified.json"
MANIFEST_FORMAT = 1

VerifyMode = Literal["size", "quick", "full"]

__all__ = ["ExportError", "FileRecord", "Manifest", "check_export", "export_command", "find_problems"]


@dataclass(frozen=True)
class FileRecord:
    path: str
    size: int
    sha256: str
    source: str


@dataclass(frozen=True)
class Manifest:
    key: str
    kind: str
    repo: str
    revision: str
    files: tuple[FileRecord, ...]
    llm_repo: str = ""
    llm_revision: str = ""
    exported_at: str = ""
    tools: dict[str, str] = field(default_factory=dict)
    format: int = MANIFEST_FORMAT

    @property
    def total_size(self) -> int:
        return sum(record.size for record in self.files)

    def matches(self, spec: ModelSpec) -> bool:
        return (
            self.repo == spec.repo
            and self.revision == spec.revision
            and self.kind == spec.kind
            and self.llm_repo == spec.llm_repo
            and self.llm_revision == spec.llm_revision
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data: dict[str, Any] = json.loads(text)
        data["files"] = tuple(FileRecord(**record) for record in data["files"])
        return cls(**data)


def export_command(key: str, config_path: Path | None = None, *flags: str) -> str:
    """The command that exports `key` (with `flags`), naming `config_path` unless the command would
    find that config.toml by itself. Spelled as $LOCALSTT_EXPORT_COMMAND says (localstt/environment.py)."""
    parts = [environment.export_command_prefix(), *flags, key]
    if config_path is not None and config_path.resolve() != find_config_path():
        parts.insert(1, f"--config {config_path}")
    return " ".join(parts)


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def read_manifest(export_dir: Path) -> Manifest | None:
    try:
        return Manifest.from_json((export_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError):
        return None


def _stamp(path: Path) -> list[int]:
    """What changes when a file is replaced or rewritten, as far as os.stat can tell on this OS.

    Linux, macOS: [size, mtime, inode, ctime]. The ctime (inode change time) is in it because nobody
    can set it: a file rewritten in place with its mtime put back (os.utime) still gets a new ctime.
    So a replaced file (new inode), a size change and any rewrite in place are caught.

    Windows: [size, mtime, file index]. There st_ctime is the creation time (Python 3.11; deprecated
    for it in 3.12+, where it still is), which a rewrite never changes and "file tunnelling" even
    hands on to a new file of the same name, so it is left out; NTFS's change time is not exposed by
    os.stat. A replaced file (new file index), a size change or a rewrite that moves the mtime is
    caught; a same-size rewrite in place whose mtime is then put back (SetFileTime/os.utime) is not,
    and on FAT32/exFAT (mtime kept in 2 s steps) neither is a same-size rewrite within the same 2 s.
    `verify_on_load = "full"` and `export_models.py --verify` hash every file whatever the stamps say.
    A stamp written on one OS never matches on the other, so a copied export is hashed once again.
    """
    stat = path.stat()
    if portability.IS_WINDOWS:
        return [stat.st_size, stat.st_mtime_ns, stat.st_ino]
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]


def record_verified(export_dir: Path, manifest: Manifest) -> None:
    """Remember each file's stamp (_stamp: size, mtime, inode, and on POSIX ctime) as of a full sha256
    check."""
    stamps = {record.path: _stamp(export_dir / record.path) for record in manifest.files}
    atomic_write_text(export_dir / STAMPS_NAME, json.dumps(stamps, indent=1) + "\n")


def _verified_stamps(export_dir: Path) -> dict[str, list[int]]:
    try:
        return dict(json.loads((export_dir / STAMPS_NAME).read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError):
        return {}


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str


def find_problems(
    export_dir: Path,
    manifest: Manifest,
    mode: VerifyMode,
    on_bytes: OnBytes | None = None,
    verified: dict[str, list[int]] | None = None,
) -> list[Problem]:
    """Compare the files on disk with the manifest.

    size:  every file present with its recorded size.
    quick: size, plus a full sha256 of any file whose size, mtime, inode or ctime (not on Windows;
           see _stamp for what each OS catches) differ from the stamp left by the last full check,
           so a file rewritten in place is re-hashed.
    full:  size and sha256 of every file.

    `verified` (quick and full) receives the stamp of each file known good: unchanged since its last
    check, or hashed now and not touched while it was being hashed.
    """
    stamps = _verified_stamps(export_dir) if mode == "quick" else {}
    problems: list[Problem] = []
    for record in manifest.files:
        path = export_dir / record.path
        if not path.is_file():
            problems.append(Problem(record.path, "missing"))
            continue
        before = _stamp(path)
        if before[0] != record.size:
            problems.append(Problem(record.path, f"size {before[0]} bytes, expected {record.size}"))
            continue
        if mode == "size":
            continue
        if mode == "quick" and stamps.get(record.path) == before:
            if verified is not None:
                verified[record.path] = before
            continue
        if sha256_file(path, on_bytes) != record.sha256:
            problems.append(Problem(record.path, "sha256 differs from the hub's (corrupted)"))
        elif verified is not None and _stamp(path) == before:
            verified[record.path] = before
    return problems


def check_export(
    spec: ModelSpec,
    export_dir: Path,
    mode: VerifyMode,
    config_path: Path | None = None,
) -> Manifest:
    """The manifest of an export that matches the pin and passes the check, or ExportError."""
    fix = export_command(spec.key, config_path)
    if not spec.is_pinned:
        raise ExportError(f"{spec.key} has no pinned revision yet; run `{fix}` once to export it.")
    manifest = read_manifest(export_dir)
    if manifest is None:
        raise ExportError(f"{spec.key} is not exported to {export_dir}; run `{fix}` once to export it.")
    if not manifest.matches(spec):
        raise ExportError(
            f"{spec.key} on disk is {manifest.repo}@{manifest.revision[:12]} but config.toml pins "
            f"{spec.repo}@{spec.short_revision}; run `{fix}` to export the pinned revision."
        )
    verified: dict[str, list[int]] = {}
    problems = find_problems(export_dir, manifest, mode, verified=verified)
    if problems:
        listed = "; ".join(f"{p.path}: {p.reason}" for p in problems)
        repair = export_command(spec.key, config_path, "--repair")
        raise ExportError(f"{spec.key} export is damaged ({listed}); run `{repair}` to download it again.")
    if mode != "size" and len(verified) == len(manifest.files) and verified != _verified_stamps(export_dir):
        # Remember what was just hashed, so the next quick check does not hash it again.
        with contextlib.suppress(OSError):  # a read-only export is checked the same, just not remembered
            atomic_write_text(export_dir / STAMPS_NAME, json.dumps(verified, indent=1) + "\n")
    return manifest
