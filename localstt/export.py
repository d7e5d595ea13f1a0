"""The one-time export: each model downloaded at its pinned commit, verified, and put in local_models/.

What a model's export holds is its family's business (localstt/models/: `plan`); this module fetches
those files, proves each against the hub's hash, and swaps the finished export into place so that a
kill at any moment leaves something the loader either loads or refuses with the command to run.
export_models.py is the command line over `export_model` and `verify_model`.

    local_models/
    ├── <key>/                       one folder per model key, only ever a complete, verified export
    │   ├── manifest.json            written last: what the export holds (localstt/manifest.py)
    │   ├── .verified.json           each file's stamp as of its last full sha256 check
    │   ├── <name>.nemo              a family that publishes one archive: that file, unchanged,
    │   └── .unpacked-<16 hex>/      and its config and tokenizer, unpacked once by the loader
    ├── <key>/                       a speech-LLM: its config.json, model.safetensors, the LLM's
    │   └── llm_backbone/config.json tokenizer files at the root and its config here
    ├── .staging/<key>-<revision(s)>/  a download in progress (resumed by the next run)
    ├── .previous/<key>-<revision>/    the export being replaced, removed once the new one is in place
    └── .locks/<key>.lock              one export of a model at a time
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from filelock import FileLock, Timeout
from huggingface_hub import HfApi
from tqdm import tqdm

from localstt.config import AppConfig, load_config, write_pin
from localstt.errors import ExportError, HubError
from localstt.hashing import sha256_and_git_sha1
from localstt.hub import RemoteFile, download_verified, resolve_main
from localstt.manifest import (
    MANIFEST_NAME,
    FileRecord,
    Manifest,
    export_command,
    find_problems,
    human_size,
    read_manifest,
    record_verified,
)
from localstt.models import family_for
from localstt.portability import (
    atomic_write_text,
    free_name,
    is_sharing_violation,
    link_or_copy,
    long_path_problem,
    move_folder,
)
from localstt.spec import ModelSpec

logger = logging.getLogger(__name__)

DISK_MARGIN_BYTES = 100 * 1000 * 1000


def _tool_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for package in ("huggingface_hub", "hf_xet", "nemo_toolkit", "torch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _staging_dir(config: AppConfig, spec: ModelSpec) -> Path:
    revisions = "-".join(revision[:12] for _, revision in spec.pinned_repos)
    return config.models_dir / ".staging" / f"{spec.key}-{revisions}"


def _own_dirs(root: Path, key: str, suffix: str) -> list[Path]:
    """Folders in `root` named `<key>-<suffix>` (not those of a key that merely starts like this one)."""
    name = re.compile(rf"{re.escape(key)}-{suffix}")
    return [p for p in root.iterdir() if name.fullmatch(p.name)] if root.is_dir() else []


def _previous_dirs(config: AppConfig, key: str) -> list[Path]:
    # ".N": a second folder for the same revision, where an earlier one could not be removed (Windows).
    found = _own_dirs(config.models_dir / ".previous", key, r"([0-9a-f]{12}|x)(\.[0-9]+)?")
    return sorted(found, key=lambda p: p.stat().st_mtime)


def _remove_export_tree(folder: Path) -> None:
    """Delete a superseded or abandoned folder, manifest first, so a kill midway never leaves a
    folder that _recover would take for a complete export.

    On Windows a file that a program holds open cannot be deleted: what is left stays (the manifest
    first gone where it could be) and the next run removes it.
    """
    try:
        (folder / MANIFEST_NAME).unlink(missing_ok=True)
    except OSError as error:
        if not is_sharing_violation(error):
            raise
        logger.warning("could not remove %s yet (%s); the next run removes it", folder, error)
    shutil.rmtree(folder, ignore_errors=True)


def _move_export_folder(source: Path, target: Path, export_dir: Path, outcome: str) -> None:
    """move_folder, with Windows' "a file in it is open" refusal worded as one ExportError."""
    try:
        move_folder(source, target)
    except OSError as error:
        if not is_sharing_violation(error):
            raise
        raise ExportError(
            f"Windows would not move {source} ({error.strerror or error}), which happens while a program "
            f"has one of its files open: close the app (or any program using {export_dir}) first, "
            f"then run the same command again; {outcome}."
        ) from error


def _install(config: AppConfig, spec: ModelSpec, staging: Path, move_pin: bool) -> None:
    """Swap a complete, verified staging folder into place; the superseded export goes last.

    Every step is one rename (or the atomic rewrite of config.toml), ordered so that a process killed
    between any two leaves either the old export matching the old pin, no export at all (which the
    loader refuses with the command to run, and _recover undoes), or the new export matching the new
    pin, never a pin that disagrees with the export on disk:

    1. the current export moves aside to .previous/   (pin still old, no export)
    2. config.toml gets the new pin                   (pin new, no export)
    3. the staging folder becomes the export          (pin new, new export)
    4. the superseded export and abandoned staging folders are removed, manifests first

    No rename replaces an existing folder (Windows never does that), and a folder whose files a
    running app holds open (Windows refuses to move it) stops the swap at step 1 with an ExportError
    that says to close the app, before anything changed.
    """
    export_dir = config.models_dir / spec.key
    old = read_manifest(export_dir)
    if export_dir.exists():
        previous = config.models_dir / ".previous" / f"{spec.key}-{(old.revision if old else 'x')[:12]}"
        previous.parent.mkdir(parents=True, exist_ok=True)
        _remove_export_tree(previous)
        _move_export_folder(
            export_dir, free_name(previous), export_dir, "the current export was left as it was"
        )
    if move_pin:
        write_pin(config.path, spec.key, spec.revision, spec.llm_revision if spec.llm_repo else None)
        logger.info(f"{spec.key}: config.toml now pins {spec.short_revision}")
    _move_export_folder(staging, export_dir, export_dir, "that rerun puts the verified new export in place")
    abandoned = _own_dirs(config.models_dir / ".staging", spec.key, "[0-9a-f]{12}(-[0-9a-f]{12})?")
    for leftover in [*_previous_dirs(config, spec.key), *abandoned]:
        _remove_export_tree(leftover)
    if (manifest := read_manifest(export_dir)) is not None:
        # Removing the old export's hard links changed the files' ctime; they were hashed moments ago.
        record_verified(export_dir, manifest)
    if old is not None and old.revision != spec.revision:
        logger.info(f"{spec.key}: removed the superseded export at {old.revision[:12]}")


def _recover(config: AppConfig, spec: ModelSpec) -> None:
    """Finish or undo a swap that a killed process left half done."""
    export_dir = config.models_dir / spec.key
    staged = read_manifest(_staging_dir(config, spec)) if spec.is_pinned else None
    if staged is not None and staged.matches(spec):  # killed after the pin moved: finish the swap
        _install(config, spec, _staging_dir(config, spec), move_pin=False)
        return
    if export_dir.exists():  # a superseded export whose removal was cut short: finish removing it
        for previous in _previous_dirs(config, spec.key):
            _remove_export_tree(previous)
        return
    for previous in reversed(_previous_dirs(config, spec.key)):  # killed before the pin moved: undo
        old = read_manifest(previous)
        if old is not None and old.key == spec.key and not find_problems(previous, old, "size"):
            _move_export_folder(previous, export_dir, export_dir, f"that rerun puts {previous} back")
            logger.info(
                f"{spec.key}: put back the export at {old.revision[:12]} that an interrupted run had moved"
            )
            return


def _pin_to_main(config: AppConfig, spec: ModelSpec, api: HfApi) -> ModelSpec:
    revision = resolve_main(api, spec.repo)
    llm_revision = resolve_main(api, spec.llm_repo) if spec.llm_repo else ""
    return replace(spec, revision=revision, llm_revision=llm_revision)


def _describe_changes(old: Manifest | None, files: list[RemoteFile]) -> None:
    before = {record.path: record for record in old.files} if old else {}
    after = {f.destination: f for f in files}
    for path in sorted(set(before) | set(after)):
        if path not in after:
            logger.info(f"  removed  {path}")
        elif path not in before:
            logger.info(f"  added    {path} ({human_size(after[path].size)})")
        elif (
            not after[path].is_expected_content(before[path].sha256, None)
            or before[path].size != after[path].size
        ):
            logger.info(f"  changed  {path} ({human_size(after[path].size)})")


def _reusable(export_dir: Path, remote: RemoteFile) -> tuple[Path, str] | None:
    """A file of the current export with exactly the wanted content, to link instead of downloading,
    and its sha256."""
    candidate = export_dir / remote.destination
    if not candidate.is_file() or candidate.stat().st_size != remote.size:
        return None
    sha256, git_sha1 = sha256_and_git_sha1(candidate)
    return (candidate, sha256) if remote.is_expected_content(sha256, git_sha1) else None


def _link_or_copy(source: Path, destination: Path, sha256: str) -> bool:
    """`destination` holding `source`'s content, whose sha256 was just checked: a hard link (the same
    file: nothing to check again), or where links are refused (FAT32, exFAT, network shares) a copy,
    hashed again since its bytes were written anew. False when the copy came out different."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if link_or_copy(source, destination) or sha256_and_git_sha1(destination)[0] == sha256:
        return True
    destination.unlink()
    return False


def _check_path_lengths(spec: ModelSpec, files: list[RemoteFile], staging: Path, export_dir: Path) -> None:
    """Refuse, before any download, paths that Windows without long-path support cannot open."""
    paths = [str(folder / remote.destination) for folder in (staging, export_dir) for remote in files]
    if margin := family_for(spec.kind).loader_path_margin:
        paths.append(str(export_dir) + "x" * margin)
    if (problem := long_path_problem(paths)) is not None:
        raise ExportError(f"{problem}.")


def _fill_staging(
    config: AppConfig, spec: ModelSpec, files: list[RemoteFile], staging: Path
) -> list[FileRecord]:
    export_dir = config.models_dir / spec.key
    family = family_for(spec.kind)
    _check_path_lengths(spec, files, staging, export_dir)
    fetch_root = staging / ".fetch"
    for orphan in fetch_root.rglob("*.incomplete") if fetch_root.exists() else []:
        orphan.unlink()  # left by a killed run; we hold the lock, so nobody is writing it
    todo: list[RemoteFile] = []
    records: dict[str, FileRecord] = {}
    for remote in files:
        target = staging / remote.destination
        if target.is_file() and target.stat().st_size == remote.size:
            sha256, git_sha1 = sha256_and_git_sha1(target)
            if remote.is_expected_content(sha256, git_sha1):
                records[remote.destination] = FileRecord(
                    remote.destination, remote.size, sha256, remote.source
                )
                continue
            target.unlink()
        reusable = _reusable(export_dir, remote)
        if reusable is not None and _link_or_copy(reusable[0], target, reusable[1]):
            records[remote.destination] = FileRecord(
                remote.destination, remote.size, reusable[1], remote.source
            )
            continue
        todo.append(remote)
    needed = sum(remote.size for remote in todo)
    free = shutil.disk_usage(config.models_dir).free
    if needed + DISK_MARGIN_BYTES > free:
        raise HubError(
            f"Not enough free disk space in {config.models_dir}: {spec.key} needs {human_size(needed)} "
            f"more, {human_size(free)} is free. Free some space or point models_dir in config.toml "
            "at a bigger disk."
        )
    if todo:
        logger.info(f"{spec.key}: downloading {len(todo)} file(s), {human_size(needed)}")
    for remote in todo:
        fetch_dir = fetch_root / ("model" if remote.repo == spec.repo else "llm")
        sha256 = download_verified(remote, fetch_dir, staging / remote.destination)
        records[remote.destination] = FileRecord(remote.destination, remote.size, sha256, remote.source)
        family.check_downloaded(staging, spec, remote.destination)
    family.check_staged(staging, spec)
    shutil.rmtree(fetch_root, ignore_errors=True)
    return [records[remote.destination] for remote in files]


def export_model(config: AppConfig, key: str, update: bool = False, repair: bool = False) -> None:
    """Export `key` at its pin (pinning the hub's main first when it has none); a no-op without any
    request when the export on disk already matches. One export per model at a time (a file lock).

    Args:
        update: move the pin to the hub's current main and export that.
        repair: download again whatever fails the size check, even at the same pin.

    Raises:
        HubError: the hub refused, was unreachable or served the wrong bytes twice.
        ExportError: the export could not be swapped into place (e.g. Windows holds it open).
        ConfigError: `key` is not in config.toml.
    """
    config.model(key)
    locks = config.models_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    lock = FileLock(locks / f"{key}.lock")
    try:
        lock.acquire(timeout=0.2)
    except Timeout:
        logger.info(f"{key}: another export of this model is running; waiting for it to finish")
        lock.acquire()
    try:
        _export_locked(load_config(config.path), key, update, repair)
    finally:
        lock.release()


def _export_locked(config: AppConfig, key: str, update: bool, repair: bool) -> None:
    spec = config.model(key)
    export_dir = config.models_dir / key
    _recover(config, spec)
    existing = read_manifest(export_dir)
    up_to_date = existing is not None and spec.is_pinned and existing.matches(spec)
    if (
        existing is not None
        and up_to_date
        and not update
        and not repair
        and not find_problems(export_dir, existing, "size")
    ):
        logger.info(
            f"{key}: already exported at {spec.short_revision} ({human_size(existing.total_size)}), "
            "nothing to download"
        )
        return

    api = HfApi()
    started = time.monotonic()
    if update or not spec.is_pinned:
        pinned = _pin_to_main(config, spec, api)
        if pinned == spec and existing is not None and existing.matches(spec) and not repair:
            logger.info(f"{key}: already at the hub's main ({spec.short_revision}); nothing to update")
            return
        for (repo, _), (_, revision) in zip(spec.pinned_repos, pinned.pinned_repos, strict=True):
            logger.info(f"{key}: pinning {repo} at main = {revision}")
        spec = pinned
    files = family_for(spec.kind).plan(api, spec)
    if update:
        _describe_changes(existing, files)
    staging = _staging_dir(config, spec)
    staging.mkdir(parents=True, exist_ok=True)
    records = _fill_staging(config, spec, files, staging)
    manifest = Manifest(
        key=key,
        kind=spec.kind,
        repo=spec.repo,
        revision=spec.revision,
        files=tuple(records),
        llm_repo=spec.llm_repo,
        llm_revision=spec.llm_revision,
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        tools=_tool_versions(),
    )
    record_verified(staging, manifest)
    atomic_write_text(staging / MANIFEST_NAME, manifest.to_json())
    _install(config, spec, staging, move_pin=config.model(key) != spec)
    logger.info(
        f"{key}: exported {spec.repo} @ {spec.short_revision} ({human_size(manifest.total_size)}) "
        f"to {export_dir} in {time.monotonic() - started:.1f} s"
    )


def verify_model(config: AppConfig, key: str) -> bool:
    """Full sha256 check of `key`'s export against its manifest; logs each damaged file and the
    command that repairs it. True when every file matches."""
    spec = config.model(key)
    export_dir = config.models_dir / key
    manifest = read_manifest(export_dir)
    if manifest is None:
        logger.info(f"{key}: not exported; run `{export_command(key, config.path)}`")
        return False
    started = time.monotonic()
    with tqdm(
        total=manifest.total_size, unit="B", unit_scale=True, desc=f"{key}: sha256", leave=False
    ) as bar:
        problems = find_problems(export_dir, manifest, "full", on_bytes=bar.update)
    if problems:
        for problem in problems:
            logger.info(f"{key}: {export_dir / problem.path}: {problem.reason}")
        logger.info(f"{key}: repair with `{export_command(key, config.path, '--repair')}`")
        return False
    record_verified(export_dir, manifest)
    pin_note = "" if manifest.matches(spec) else f" (config.toml pins {spec.short_revision or 'nothing yet'})"
    logger.info(
        f"{key}: all {len(manifest.files)} files match their sha256 ({human_size(manifest.total_size)}, "
        f"{time.monotonic() - started:.1f} s) at {manifest.revision[:12]}{pin_note}"
    )
    return True
