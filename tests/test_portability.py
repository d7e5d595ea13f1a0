"""Windows behaviour, simulated on Linux: renames refused while files are open, folders never renamed
over folders, no hard links, reserved device names, creation-time ctime, long paths, Ctrl-Break.

Nothing here runs on Windows. `portability.IS_WINDOWS` is set to take the Windows branches, and
`SimulatedWindows` makes os.replace/os.rename refuse what Windows refuses (documented MoveFileEx
behaviour): a folder over an existing folder, a folder with a file open inside it (WinError 5), a file
that another program has open (WinError 32), and os.rename over any existing target (WinError 183).
"""

from __future__ import annotations

import ast
import errno
import hashlib
import io
import json
import os
import shutil
import signal
import tarfile
from pathlib import Path

import pytest

import export_models
from localstt import export, portability
from localstt import manifest as manifest_module
from localstt.config import load_config, write_pin
from localstt.formats import WRITERS, write_outputs
from localstt.hub import RemoteFile, download_verified
from localstt.loading import nemo_archive
from localstt.manifest import (
    MANIFEST_NAME,
    STAMPS_NAME,
    FileRecord,
    Manifest,
    atomic_write_text,
    check_export,
    find_problems,
    record_verified,
)
from localstt.models import family_for
from localstt.transcript import Segment, Transcript, Word

REPO_ROOT = Path(__file__).resolve().parent.parent
REPO = "nvidia/parakeet-tdt-0.6b-v2"
NEMO = "parakeet-tdt-0.6b-v2.nemo"
REV_A = "a" * 40
REV_B = "b" * 40
OLD = b"old model " * 5000
NEW = b"new model " * 6000
RETRIES = len(portability.REPLACE_RETRY_DELAYS_S)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def winerror(cls: type[OSError], code: int, path: object, message: str) -> OSError:
    """The exception Windows raises; on Linux the winerror attribute has to be set by hand."""
    error = cls(errno.EACCES if cls is PermissionError else errno.EEXIST, message, str(path))
    error.winerror = code  # type: ignore[attr-defined]
    return error


class SimulatedWindows:
    """os.replace/os.rename with Windows' refusals; `held` are files another program has open."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.held: set[Path] = set()
        self.renames: list[tuple[Path, Path]] = []
        self.over_folder = 0  # renames onto an existing folder: Windows refuses every one
        self.delays: list[float] = []
        self._replace, self._rename = os.replace, os.rename
        monkeypatch.setattr(portability, "IS_WINDOWS", True)
        monkeypatch.setattr(portability, "_sleep", self.delays.append)
        monkeypatch.setattr(os, "replace", self.replace)
        monkeypatch.setattr(os, "rename", self.rename)

    def _is_held(self, path: Path) -> bool:
        return any(held == path or path in held.parents for held in self.held)

    def replace(self, source: object, target: object, **kwargs: object) -> None:
        source, target = Path(str(source)), Path(str(target))
        self.renames.append((source, target))
        if target.is_dir():
            self.over_folder += 1
            raise winerror(PermissionError, 5, target, "Access is denied")  # never over a folder
        if source.is_dir() and self._is_held(source):
            raise winerror(PermissionError, 5, source, "Access is denied")  # a file inside is open
        if self._is_held(source) or self._is_held(target):
            raise winerror(PermissionError, 32, target, "The process cannot access the file")
        self._replace(source, target, **kwargs)  # type: ignore[arg-type]

    def rename(self, source: object, target: object, **kwargs: object) -> None:
        if os.path.lexists(str(target)):
            raise winerror(FileExistsError, 183, target, "Cannot create a file when that file already exists")
        self.replace(source, target, **kwargs)

    def renames_of(self, source: Path) -> int:
        return sum(1 for moved, _ in self.renames if moved == source)


def fail_first(monkeypatch: pytest.MonkeyPatch, times: int, error: OSError) -> list[tuple[str, str]]:
    """os.replace raising `error` `times` times, then working; returns every attempt."""
    real, attempts = os.replace, []

    def flaky(source: object, target: object, **kwargs: object) -> None:
        attempts.append((str(source), str(target)))
        if len(attempts) <= times:
            raise error
        real(source, target, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", flaky)
    return attempts


# --- file replacement, retried while Windows says another program has the file open -------------


@pytest.fixture
def windows_delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    delays: list[float] = []
    monkeypatch.setattr(portability, "IS_WINDOWS", True)
    monkeypatch.setattr(portability, "_sleep", delays.append)
    return delays


def test_replace_with_retry_survives_two_sharing_violations(tmp_path, monkeypatch, windows_delays):
    source, target = tmp_path / "new.tmp", tmp_path / "file.json"
    source.write_bytes(b"new")
    target.write_bytes(b"old")
    attempts = fail_first(monkeypatch, 2, winerror(PermissionError, 32, target, "in use"))
    portability.replace_with_retry(source, target)
    assert len(attempts) == 3
    assert windows_delays == list(portability.REPLACE_RETRY_DELAYS_S[:2])
    assert target.read_bytes() == b"new" and not source.exists()


def test_replace_with_retry_gives_up_after_the_last_delay(tmp_path, monkeypatch, windows_delays):
    source, target = tmp_path / "new.tmp", tmp_path / "file.json"
    source.write_bytes(b"new")
    target.write_bytes(b"old")
    attempts = fail_first(monkeypatch, 100, winerror(PermissionError, 5, target, "Access is denied"))
    with pytest.raises(PermissionError):
        portability.replace_with_retry(source, target)
    assert len(attempts) == RETRIES + 1
    assert target.read_bytes() == b"old" and source.read_bytes() == b"new"


def test_replace_with_retry_does_not_retry_other_errors_or_on_posix(tmp_path, monkeypatch):
    source, target = tmp_path / "new.tmp", tmp_path / "file.json"
    source.write_bytes(b"new")
    attempts = fail_first(monkeypatch, 100, PermissionError(errno.EACCES, "Permission denied"))
    with pytest.raises(PermissionError):  # Linux/macOS: a PermissionError is lasting
        portability.replace_with_retry(source, target)
    assert len(attempts) == 1
    monkeypatch.setattr(portability, "IS_WINDOWS", True)
    attempts = fail_first(monkeypatch, 100, winerror(FileNotFoundError, 2, target, "not found"))
    with pytest.raises(FileNotFoundError):  # not a sharing violation: not retried on Windows either
        portability.replace_with_retry(source, target)
    assert len(attempts) == 1


def test_every_file_replacement_retries_sharing_violations(tmp_path, monkeypatch, windows_delays):
    """manifest.atomic_write_text, config.write_pin and hub.download_verified all use the helper."""
    target = tmp_path / "manifest.json"
    attempts = fail_first(monkeypatch, 2, winerror(PermissionError, 32, target, "in use"))
    atomic_write_text(target, '{"a": 1}\n')
    assert len(attempts) == 3 and target.read_bytes() == b'{"a": 1}\n'

    config = tmp_path / "config.toml"
    config.write_text(f'# keep me\n[models.parakeet]\nrepo = "{REPO}"\nrevision = ""\n', encoding="utf-8")
    attempts = fail_first(monkeypatch, 2, winerror(PermissionError, 32, config, "in use"))
    write_pin(config, "parakeet", REV_A)
    assert len(attempts) == 3
    assert (
        config.read_text(encoding="utf-8")
        == f'# keep me\n[models.parakeet]\nrepo = "{REPO}"\nrevision = "{REV_A}"\n'
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "manifest.json"]  # no temp left

    fetch_dir, destination = tmp_path / "fetch", tmp_path / "staging" / NEMO

    def fake_download(repo: str, path: str, *, revision: str, local_dir: Path, force_download: bool) -> str:
        (local_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (local_dir / path).write_bytes(NEW)
        return str(local_dir / path)

    monkeypatch.setattr("localstt.hub.hf_hub_download", fake_download)
    attempts = fail_first(monkeypatch, 2, winerror(PermissionError, 5, destination, "Access is denied"))
    remote = RemoteFile(REPO, REV_B, NEMO, len(NEW), "0" * 40, sha256(NEW), NEMO)
    assert download_verified(remote, fetch_dir, destination) == sha256(NEW)
    assert len(attempts) == 3 and destination.read_bytes() == NEW


def test_a_failed_write_pin_leaves_config_and_no_temp_file(tmp_path, monkeypatch, windows_delays):
    config = tmp_path / "config.toml"
    text = f'[models.parakeet]\nrepo = "{REPO}"\nrevision = "{REV_A}"\n'
    config.write_text(text, encoding="utf-8")
    fail_first(monkeypatch, 100, winerror(PermissionError, 32, config, "in use"))
    with pytest.raises(PermissionError):
        write_pin(config, "parakeet", REV_B)
    assert config.read_text(encoding="utf-8") == text
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


# --- folder swaps of the export --------------------------------------------------------------------


def make_project(root: Path, revision: str, data: bytes) -> Path:
    """config.toml pinning parakeet at `revision`, and that export on disk as the export leaves it."""
    root.mkdir(parents=True)
    config = root / "config.toml"
    config.write_text(
        f'models_dir = "local_models"\n\n[models.parakeet]\nrepo = "{REPO}"\nrevision = "{revision}"\n'
        'kind = "nemo-asr"\n',
        encoding="utf-8",
    )
    write_export(root / "local_models" / "parakeet", revision, data)
    return config


def write_export(export_dir: Path, revision: str, data: bytes) -> Manifest:
    """A parakeet export holding `data` at `revision`, verified and stamped as the export leaves it."""
    export_dir.mkdir(parents=True)
    (export_dir / NEMO).write_bytes(data)
    manifest = Manifest(
        "parakeet", "nemo-asr", REPO, revision, (FileRecord(NEMO, len(data), sha256(data), "hub"),)
    )
    atomic_write_text(export_dir / MANIFEST_NAME, manifest.to_json())
    record_verified(export_dir, manifest)
    return manifest


class FakeHub:
    """The hub as the export sees it: main at `main`, one .nemo per revision."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, contents: dict[str, bytes], main: str) -> None:
        self.contents, self.main, self.downloads = contents, main, 0
        monkeypatch.setattr(export, "resolve_main", lambda api, repo: self.main)
        parakeet = type(family_for("nemo-asr"))
        monkeypatch.setattr(parakeet, "plan", lambda family, api, spec: self.plan(api, spec))
        monkeypatch.setattr(export, "download_verified", self.download)

    def plan(self, api: object, spec: object) -> list[RemoteFile]:
        data = self.contents[spec.revision]  # type: ignore[attr-defined]
        return [RemoteFile(REPO, spec.revision, NEMO, len(data), "0" * 40, sha256(data), NEMO)]  # type: ignore[attr-defined]

    def download(self, remote: RemoteFile, fetch_dir: Path, destination: Path) -> str:
        self.downloads += 1
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(self.contents[remote.revision])
        return sha256(self.contents[remote.revision])


def verified_revision(config: Path) -> tuple[str, bytes]:
    """What the loader would accept: (revision, .nemo bytes) after a full sha256 check."""
    loaded = load_config(config)
    export_dir = loaded.models_dir / "parakeet"
    manifest = check_export(loaded.model("parakeet"), export_dir, "full", config)
    return manifest.revision, (export_dir / NEMO).read_bytes()


def run_export(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    code = export_models.main(["--config", str(config), *args, "parakeet"])
    out, err = capsys.readouterr()
    return code, out, err


def test_update_while_the_app_has_the_export_open_is_one_line_and_loses_nothing(
    tmp_path, monkeypatch, capsys
):
    config = make_project(tmp_path / "project", REV_A, OLD)
    config_text = config.read_bytes()
    models = tmp_path / "project" / "local_models"
    export_dir = models / "parakeet"
    hub = FakeHub(monkeypatch, {REV_A: OLD, REV_B: NEW}, main=REV_B)
    windows = SimulatedWindows(monkeypatch)
    windows.held.add(export_dir / NEMO)  # the running app has mapped the model it loaded

    code, out, err = run_export(capsys, config, "--update")
    assert code == 1
    assert err.splitlines() == [
        f"parakeet: error: Windows would not move {export_dir} (Access is denied), which happens while a "
        f"program has one of its files open: close the app (or any program using {export_dir}) first, then "
        "run the same command again; the current export was left as it was."
    ]
    assert "Traceback" not in err
    assert windows.renames_of(export_dir) == RETRIES + 1 and windows.delays == list(
        portability.REPLACE_RETRY_DELAYS_S
    )
    # Nothing of the old export is lost: same pin, same files, and it passes the loader's full check.
    assert config.read_bytes() == config_text
    assert verified_revision(config) == (REV_A, OLD)
    assert export.verify_model(load_config(config), "parakeet")
    assert "parakeet: all 1 files match their sha256" in capsys.readouterr().out
    assert not (models / ".previous").exists() or not any((models / ".previous").iterdir())
    assert hub.downloads == 1  # the new revision waits, verified, in .staging/

    windows.held.clear()  # the app was closed
    code, out, err = run_export(capsys, config, "--update")
    assert (code, err) == (0, "")
    assert verified_revision(config) == (REV_B, NEW)
    assert f'revision = "{REV_B}"' in config.read_text(encoding="utf-8")
    assert hub.downloads == 1  # the rerun used what the first run had downloaded
    assert [p.name for p in (models / ".previous").iterdir()] == []
    assert [p.name for p in (models / ".staging").iterdir()] == []
    assert windows.over_folder == 0  # no rename was ever aimed at an existing folder


def test_a_leftover_previous_folder_that_cannot_be_removed_gets_a_fresh_name(tmp_path, monkeypatch, capsys):
    """Windows: a superseded export whose file is still open survives rmtree; the next swap must not
    rename onto it (Windows refuses, POSIX too unless it is empty)."""
    config = make_project(tmp_path / "project", REV_A, OLD)
    models = tmp_path / "project" / "local_models"
    stuck = models / ".previous" / f"parakeet-{REV_A[:12]}"
    stuck.mkdir(parents=True)
    (stuck / NEMO).write_bytes(b"superseded, still mapped by an app")
    FakeHub(monkeypatch, {REV_A: OLD, REV_B: NEW}, main=REV_B)
    windows = SimulatedWindows(monkeypatch)
    windows.held.add(stuck / NEMO)
    real_rmtree = export.shutil.rmtree

    def rmtree(path: object, ignore_errors: bool = False, **kwargs: object) -> None:
        if windows._is_held(Path(str(path))) or any(windows._is_held(p) for p in Path(str(path)).rglob("*")):
            return  # Windows cannot delete an open file; ignore_errors leaves the folder
        real_rmtree(path, ignore_errors=ignore_errors, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(export.shutil, "rmtree", rmtree)
    code, out, err = run_export(capsys, config, "--update")
    assert (code, err) == (0, "")
    assert verified_revision(config) == (REV_B, NEW)
    assert (models / ".previous" / f"parakeet-{REV_A[:12]}.1") in {t for _, t in windows.renames}
    assert [p.name for p in (models / ".previous").iterdir()] == [stuck.name]  # .1 was removed

    windows.held.clear()
    code, out, err = run_export(capsys, config)
    assert code == 0 and "already exported" in out
    assert [p.name for p in (models / ".previous").iterdir()] == []  # the next run removed it


def test_putting_back_an_export_from_previous_refuses_cleanly_while_it_is_open(tmp_path, monkeypatch, capsys):
    """_recover's undo (a run killed before the pin moved) also says to close the app, and keeps it."""
    config = make_project(tmp_path / "project", REV_A, OLD)
    models = tmp_path / "project" / "local_models"
    previous = models / ".previous" / f"parakeet-{REV_A[:12]}"
    previous.parent.mkdir()
    os.replace(models / "parakeet", previous)  # as a kill right after step 1 of _install leaves it
    FakeHub(monkeypatch, {REV_A: OLD}, main=REV_A)
    windows = SimulatedWindows(monkeypatch)
    windows.held.add(previous / NEMO)
    code, out, err = run_export(capsys, config)
    assert code == 1 and len(err.splitlines()) == 1
    assert f"close the app (or any program using {models / 'parakeet'}) first" in err
    assert (previous / NEMO).read_bytes() == OLD and (previous / MANIFEST_NAME).is_file()

    windows.held.clear()
    code, out, err = run_export(capsys, config)
    assert code == 0 and "put back the export" in out
    assert verified_revision(config) == (REV_A, OLD)


def small_nemo(path: Path, config_yaml: bytes) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in (("./model_config.yaml", config_yaml), ("./model_weights.ckpt", b"\0" * 4096)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_unpacked_folder_held_by_another_app_falls_back_to_a_temp_folder(tmp_path, monkeypatch):
    archive = small_nemo(tmp_path / "model.nemo", b"model: {}\n")
    layout = nemo_archive.read_layout(archive)
    digest = sha256(archive.read_bytes())
    folder = tmp_path / f"{nemo_archive.UNPACKED_PREFIX}{digest[:16]}"
    folder.mkdir()
    (folder / "model_config.yaml").write_bytes(b"damaged")  # fails its check: to be replaced
    windows = SimulatedWindows(monkeypatch)
    windows.held.add(folder / "model_config.yaml")  # a second app instance has it open
    with nemo_archive.unpacked_folder(layout, digest) as used:
        assert used != folder and (used / "model_config.yaml").read_bytes() == b"model: {}\n"
    assert (folder / "model_config.yaml").read_bytes() == b"damaged"  # left alone, not half-replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name, "model.nemo"]  # no .tmp/.old left

    windows.held.clear()
    with nemo_archive.unpacked_folder(layout, digest) as used:
        assert used == folder and (folder / "model_config.yaml").read_bytes() == b"model: {}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name, "model.nemo"]


def test_move_folder_never_renames_over_a_folder(tmp_path):
    source, target = tmp_path / "new", tmp_path / "old"
    source.mkdir()
    (source / "a").write_bytes(b"new")
    target.mkdir()  # empty: os.replace would silently swallow it on POSIX
    with pytest.raises(FileExistsError):
        portability.move_folder(source, target)
    assert (source / "a").read_bytes() == b"new" and list(target.iterdir()) == []
    assert portability.free_name(target) == tmp_path / "old.1"
    (tmp_path / "old.1").mkdir()
    assert portability.free_name(target) == tmp_path / "old.2"


# --- no hard links ------------------------------------------------------------------------------


def refuse_links(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> list[str]:
    attempts: list[str] = []

    def link(source: object, target: object, **kwargs: object) -> None:
        attempts.append(str(target))
        raise error

    monkeypatch.setattr(os, "link", link)
    return attempts


LINK_REFUSALS = [
    OSError(errno.EPERM, "Operation not permitted"),  # FAT32/exFAT, many network shares
    OSError(errno.EXDEV, "Invalid cross-device link"),
    NotImplementedError("no hard links here"),
]


@pytest.mark.parametrize("refusal", LINK_REFUSALS, ids=["EPERM", "EXDEV", "NotImplemented"])
def test_update_copies_unchanged_files_where_hard_links_are_refused(tmp_path, monkeypatch, capsys, refusal):
    config = make_project(tmp_path / "project", REV_A, OLD)
    hub = FakeHub(monkeypatch, {REV_A: OLD, REV_B: OLD}, main=REV_B)  # same file at the new commit
    attempts = refuse_links(monkeypatch, refusal)
    code, out, err = run_export(capsys, config, "--update")
    assert (code, err) == (0, "")
    assert hub.downloads == 0 and len(attempts) == 1  # reused by copy, not downloaded
    assert verified_revision(config) == (REV_B, OLD)
    manifest = json.loads((tmp_path / "project" / "local_models" / "parakeet" / MANIFEST_NAME).read_text())
    assert [f["sha256"] for f in manifest["files"]] == [sha256(OLD)]


def test_a_copy_that_comes_out_different_is_downloaded_instead(tmp_path, monkeypatch, capsys):
    config = make_project(tmp_path / "project", REV_A, OLD)
    hub = FakeHub(monkeypatch, {REV_A: OLD, REV_B: OLD}, main=REV_B)
    refuse_links(monkeypatch, OSError(errno.EPERM, "Operation not permitted"))

    def bad_copy(source: object, target: object, **kwargs: object) -> None:
        Path(str(target)).write_bytes(b"X" * len(OLD))  # a torn copy (bad disk, flaky share)

    monkeypatch.setattr(shutil, "copy2", bad_copy)
    code, out, err = run_export(capsys, config, "--update")
    assert (code, err) == (0, "")
    assert hub.downloads == 1
    assert verified_revision(config) == (REV_B, OLD)


def sample_transcript() -> Transcript:
    words = (Word("Hello", 0.5, 0.9), Word("there.", 1.0, 1.4))
    return Transcript("Hello there.", [Segment(0.5, 1.4, "Hello there.", words)], 2.0, "parakeet", REV_A)


@pytest.mark.parametrize("refusal", LINK_REFUSALS[:2], ids=["EPERM", "EXDEV"])
def test_outputs_without_hard_links_are_created_exclusively_and_never_overwrite(
    tmp_path, monkeypatch, refusal
):
    transcript = sample_transcript()
    expected = {key: WRITERS[key].render(transcript).encode("utf-8") for key in ("txt", "srt")}
    out = tmp_path / "out"
    out.mkdir()
    (out / "show.srt").write_bytes(b"my hand-edited subtitles\n")
    attempts = refuse_links(monkeypatch, refusal)
    paths = write_outputs(transcript, ["txt", "srt"], out, "show")
    assert [p.name for p in paths] == ["show.txt", "show-1.srt"]
    assert paths[0].read_bytes() == expected["txt"] and paths[1].read_bytes() == expected["srt"]
    assert (out / "show.srt").read_bytes() == b"my hand-edited subtitles\n"
    assert len(attempts) == 2
    assert write_outputs(transcript, ["srt"], out, "show") == [out / "show-1.srt"]  # same content: kept
    assert sorted(p.name for p in out.iterdir()) == ["show-1.srt", "show.srt", "show.txt"]  # no temp left


def test_write_new_file_refuses_a_file_that_appeared_meanwhile(tmp_path, monkeypatch):
    refuse_links(monkeypatch, OSError(errno.EPERM, "Operation not permitted"))
    temporary, target = tmp_path / ".x.tmp", tmp_path / "x.srt"
    temporary.write_bytes(b"ours")
    target.write_bytes(b"someone else's")  # arrived after write_outputs looked
    with pytest.raises(FileExistsError):
        portability.write_new_file(temporary, target, b"ours")
    assert target.read_bytes() == b"someone else's"


# --- reserved names --------------------------------------------------------------------------------

RESERVED_STEMS = {
    "CON": "CON_",
    "con": "con_",
    "nul": "nul_",
    "Nul": "Nul_",
    "PRN": "PRN_",
    "AUX.mp3": "AUX_.mp3",
    "COM1": "COM1_",
    "com9": "com9_",
    "LPT9": "LPT9_",
    "LPT0": "LPT0_",
    "COM¹": "COM¹_",
    "CONOUT$": "CONOUT$_",
    "con.backup": "con_.backup",
    "CON ": "CON_",
    "CON.": "CON_",
    "nul . ": "nul_",
    "CON .backup": "CON_.backup",
    " AUX..": "AUX_",
    "console": "console",
    "CONCERT": "CONCERT",
    "LPT10": "LPT10",
    "COM": "COM",
    "my con": "my con",
    "a:b|c?": "a_b_c_",
    "../a/b:c": "_a_b_c",
    "": "transcript",
    " . ": "transcript",
}


def test_reserved_device_names_are_renamed_on_every_platform(tmp_path):
    transcript = sample_transcript()
    for index, (stem, safe) in enumerate(RESERVED_STEMS.items()):
        out = tmp_path / f"out{index}"
        paths = write_outputs(transcript, ["srt", "txt"], out, stem)
        assert [p.name for p in paths] == [f"{safe}.srt", f"{safe}.txt"], stem
        assert sorted(p.name for p in out.iterdir()) == sorted([f"{safe}.srt", f"{safe}.txt"]), stem
        assert paths[0].read_bytes() == WRITERS["srt"].render(transcript).encode("utf-8")


def test_long_stems_are_cut_so_every_name_fits(tmp_path):
    transcript = sample_transcript()
    for stem in ("x" * 300, "東京" * 100, "a" * 199 + "é" * 5):
        paths = write_outputs(transcript, ["srt", "srt"], tmp_path, stem)
        name = paths[0].name
        assert len(name.encode("utf-8")) <= portability.MAX_STEM_BYTES + len(".srt")
        assert stem.startswith(name.removesuffix(".srt"))
        assert paths[0].read_bytes() == WRITERS["srt"].render(transcript).encode("utf-8")


# --- verification stamps ---------------------------------------------------------------------------


def stamped_export(root: Path) -> tuple[Path, Manifest]:
    export_dir = root / "parakeet"
    return export_dir, write_export(export_dir, REV_A, OLD)


def test_windows_stamp_leaves_out_the_creation_time_and_still_catches_rewrites(tmp_path, monkeypatch):
    monkeypatch.setattr(portability, "IS_WINDOWS", True)
    export_dir, manifest = stamped_export(tmp_path)
    stat = (export_dir / NEMO).stat()
    stamps = json.loads((export_dir / STAMPS_NAME).read_text())
    assert stamps == {NEMO: [stat.st_size, stat.st_mtime_ns, stat.st_ino]}
    assert find_problems(export_dir, manifest, "quick") == []

    path = export_dir / NEMO
    with path.open("r+b") as handle:  # same size, in place (same file index)
        handle.write(b"X" * 10)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert path.stat().st_ino == stat.st_ino and path.stat().st_size == stat.st_size
    problems = find_problems(export_dir, manifest, "quick")
    assert [(p.path, p.reason) for p in problems] == [(NEMO, "sha256 differs from the hub's (corrupted)")]

    # The documented gap: the mtime put back as well; Windows exposes nothing else that changed.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert find_problems(export_dir, manifest, "quick") == []
    assert [p.path for p in find_problems(export_dir, manifest, "full")] == [NEMO]


def test_posix_stamps_keep_the_ctime_and_are_rehashed_once_under_windows(tmp_path, monkeypatch):
    export_dir, manifest = stamped_export(tmp_path)
    stat = (export_dir / NEMO).stat()
    stamps = json.loads((export_dir / STAMPS_NAME).read_text())
    assert stamps == {NEMO: [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]}

    # An export stamped on Linux, checked on Windows: the stamps differ, so the file is hashed again
    # and the Windows stamp is remembered.
    monkeypatch.setattr(portability, "IS_WINDOWS", True)
    hashed: list[int] = []
    spec = load_config(make_config_only(tmp_path / "cfg", REV_A)).model("parakeet")
    original = manifest_module.sha256_file

    def counting(path: Path, on_bytes: object = None) -> str:
        hashed.append(1)
        return original(path, on_bytes)  # type: ignore[arg-type]

    monkeypatch.setattr(manifest_module, "sha256_file", counting)
    check_export(spec, export_dir, "quick")
    assert len(hashed) == 1
    assert json.loads((export_dir / STAMPS_NAME).read_text()) == {
        NEMO: [stat.st_size, stat.st_mtime_ns, stat.st_ino]
    }
    check_export(spec, export_dir, "quick")
    assert len(hashed) == 1  # unchanged since: not hashed again


def make_config_only(root: Path, revision: str) -> Path:
    root.mkdir(parents=True)
    config = root / "config.toml"
    config.write_text(f'[models.parakeet]\nrepo = "{REPO}"\nrevision = "{revision}"\n', encoding="utf-8")
    return config


# --- long paths, signals, no POSIX-only calls -------------------------------------------------------


def test_paths_over_windows_max_path_are_refused_before_downloading(tmp_path, monkeypatch):
    staging = tmp_path / ("s" * 240)
    remote = RemoteFile(REPO, REV_A, NEMO, 1, "0" * 40, None, NEMO)
    spec = load_config(make_config_only(tmp_path / "cfg", REV_A)).model("parakeet")
    export._check_path_lengths(spec, [remote], staging, tmp_path / "parakeet")  # Linux: no limit
    monkeypatch.setattr(portability, "IS_WINDOWS", True)
    monkeypatch.setattr(portability, "_long_paths_enabled", lambda: False)
    with pytest.raises(export.ExportError, match="over Windows' limit of 259: set models_dir"):
        export._check_path_lengths(spec, [remote], staging, tmp_path / "parakeet")
    export._check_path_lengths(spec, [remote], tmp_path / "short", tmp_path / "parakeet")
    monkeypatch.setattr(portability, "_long_paths_enabled", lambda: True)
    export._check_path_lengths(spec, [remote], staging, tmp_path / "parakeet")


def test_ctrl_break_becomes_keyboard_interrupt_where_it_exists(monkeypatch):
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        monkeypatch.delattr(signal, "SIGBREAK", raising=False)
        portability.interrupt_on_ctrl_break()  # Linux, macOS: nothing to do
        assert signal.getsignal(signal.SIGUSR1) is previous
        monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)  # stands in for Windows'
        portability.interrupt_on_ctrl_break()
        assert signal.getsignal(signal.SIGUSR1) is signal.default_int_handler
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)


APP_SOURCES = [
    *sorted((REPO_ROOT / "localstt").rglob("*.py")),
    REPO_ROOT / "export_models.py",
    REPO_ROOT / "model_loader.py",
    REPO_ROOT / "transcribe_ui.py",
]
POSIX_ONLY = {
    "signal.SIGKILL",
    "signal.SIGHUP",
    "signal.SIGALRM",
    "signal.SIGUSR1",
    "signal.SIGUSR2",
    "signal.SIGCHLD",
    "signal.SIGQUIT",
    "signal.SIGPIPE",
    "signal.alarm",
    "signal.setitimer",
    "signal.pause",
    "os.kill",
    "os.killpg",
    "os.fork",
    "os.setsid",
    "os.getuid",
    "os.geteuid",
    "os.statvfs",
    "os.uname",
}


def test_app_export_and_cli_use_no_posix_only_calls_or_proc():
    found = []
    for path in APP_SOURCES:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if f"{node.value.id}.{node.attr}" in POSIX_ONLY:
                    found.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "/proc/" in node.value:
                found.append(f"{path.name}:{node.lineno}: reads /proc")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                found += [
                    f"{path.name}:{node.lineno}: import {n}"
                    for n in names
                    if n in {"fcntl", "resource", "pwd", "grp", "termios"}
                ]
    assert found == []
