"""Process faults during an export: SIGKILL at many points of an update, and a disk that fills up.

The promise: whenever the export process dies, local_models/ holds either the old export (its manifest
matching the pin in config.toml and every sha256 right), or no export at all (the loader then says
which command to run), or the complete new one, never a half or mismatched one; and running the same
command again finishes the job.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from localstt.config import load_config
from localstt.manifest import ExportError, check_export
from testkit.namespaces import require_user_namespace
from testkit.store_env import NEMO_NAME, Project, kill_tree, sha256, wait_for
from testkit.tiny_models import PARAKEET_REPO_ID

MIB = 1024 * 1024
CHUNK = 10 * MIB  # huggingface_hub's DOWNLOAD_CHUNK_SIZE: it writes the body in reads of this size
MANIFEST_TMP = ".manifest.json."  # the first step of finalising: the staging manifest's temp file

# Runs a script and SIGKILLs itself just before its Nth change to the file system. Audit hooks see
# every open-for-writing, rename, remove, mkdir, link and rmtree, in export_models.py and in
# huggingface_hub alike, so the kill points are the real steps, not places a test hook was put.
KILL_RUNNER = r"""
import os, signal, sys
KILL_AT, TRACE = int(sys.argv[1]), sys.argv[2] == "trace"
CHANGES = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.link", "os.symlink", "os.truncate",
           "os.chmod", "shutil.rmtree", "shutil.copyfile", "shutil.move"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
count = 0

def hook(event, args):
    global count
    if event == "open":
        mode, flags = args[1], args[2]
        if not (isinstance(mode, str) and set(mode) & set("wax+")) and not (flags or 0) & WRITE_FLAGS:
            return
    elif event not in CHANGES:
        return
    count += 1
    if count == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    if TRACE:
        sys.stderr.write(f"CHANGE {count} {event} {args[0]}\n")

sys.addaudithook(hook)
sys.argv = sys.argv[3:]
import runpy
runpy.run_path(sys.argv[0], run_name="__main__")
"""

# Fills the disk holding local_models/ as soon as the export has started writing a download, i.e.
# after its free-space check passed: the honest way to hit ENOSPC in the middle of a file.
FILLER = r"""
import pathlib, sys, time
models = pathlib.Path(sys.argv[1])
deadline = time.monotonic() + 300
while not list(models.glob(".staging/*/.fetch/**/*.incomplete")):
    if time.monotonic() > deadline:
        sys.exit("no download started within 300 s")
    time.sleep(0.01)
block = b"\0" * (1 << 20)
with open(models / "filler.bin", "wb", buffering=0) as handle:
    try:
        while True:
            handle.write(block)
    except OSError as error:
        print("filled", error.errno)
"""

STATE = r"""
import json, hashlib, sys
from pathlib import Path
from localstt.config import load_config
from localstt.manifest import ExportError, check_export
config = load_config(sys.argv[1])
spec = config.model("parakeet")
export_dir = config.models_dir / "parakeet"
state = {"pin": spec.revision, "exists": export_dir.exists(), "error": ""}
try:
    state["revision"] = check_export(spec, export_dir, "full", config.path).revision
    state["sha256"] = hashlib.sha256((export_dir / "parakeet-tdt-0.6b-v2.nemo").read_bytes()).hexdigest()
except ExportError as error:
    state["error"] = str(error)
print(json.dumps(state))
"""


def state_of(project: Project, versions: dict[str, bytes]) -> str:
    """'old', 'new' or 'none'; fails on anything else (a half, damaged or mismatched export)."""
    spec = load_config(project.config).model("parakeet")  # config.toml itself must always parse
    export_dir = project.models_dir / "parakeet"
    if not export_dir.exists():
        return "none"
    try:
        manifest = check_export(spec, export_dir, "full", project.config)
    except ExportError as error:
        raise AssertionError(f"an export the loader refuses was left behind: {error}") from None
    assert (export_dir / NEMO_NAME).read_bytes() == versions[manifest.revision]
    return "old" if list(versions).index(manifest.revision) == 0 else "new"


def incomplete_sizes(project: Project) -> list[int]:
    """Sizes of the partial downloads in the staging folder (huggingface_hub's .incomplete files)."""
    sizes = []
    for path in project.models_dir.glob(".staging/*/.fetch/**/*.incomplete"):
        with contextlib.suppress(FileNotFoundError):
            sizes.append(path.stat().st_size)
    return sizes


def staged_at_least(project: Project, size: int) -> bool:
    return max(incomplete_sizes(project), default=0) >= size


def sent_so_far(project: Project) -> list[tuple[str, str, int]]:
    return [(r.method, r.path, r.sent) for r in project.hub.requests]


def leftovers(project: Project) -> list[str]:
    found = []
    for folder in (project.models_dir / ".previous", project.models_dir / ".staging"):
        found += [p.name for p in folder.iterdir()] if folder.is_dir() else []
    return found


class UpdateScenario:
    """parakeet exported at the old pin, a new version on the hub's main, and a snapshot to go back to."""

    def __init__(self, project: Project, nemo: bytes, workdir: Path) -> None:
        self.project = project
        assert project.export("parakeet").returncode == 0
        self.old_pin = project.hub.ref(PARAKEET_REPO_ID)
        # 12 MB: more than huggingface_hub's 10 MB read chunk, so a kill can land after data hit the disk.
        self.new_nemo = nemo + b"\0" * (11 * MIB)
        self.new_pin = project.hub.add_commit(PARAKEET_REPO_ID, {NEMO_NAME: self.new_nemo})
        self.versions = {self.old_pin: nemo, self.new_pin: self.new_nemo}
        self.snapshot = workdir / "snapshot"
        shutil.copytree(project.models_dir, self.snapshot / "local_models", symlinks=True)
        shutil.copy2(project.config, self.snapshot / "config.toml")
        self.runner = workdir / "kill_runner.py"
        self.runner.write_text(KILL_RUNNER, encoding="utf-8")

    def reset(self) -> None:
        shutil.rmtree(self.project.models_dir)
        shutil.copytree(self.snapshot / "local_models", self.project.models_dir, symlinks=True)
        shutil.copy2(self.snapshot / "config.toml", self.project.config)

    def run_killed_at(self, change: int, trace: bool = False) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(self.runner), str(change), "trace" if trace else "-"]
        return subprocess.run(
            [*command, *self.project.export_cmd("parakeet", "--update")[1:]],  # without python itself
            capture_output=True,
            text=True,
            timeout=120,
            env=self.project.env(),
        )

    def check_then_finish(self, where: str) -> str:
        """The state right after the kill; then the same command again must finish the update."""
        state = state_of(self.project, self.versions)
        rerun = self.project.export("parakeet", "--update")
        assert rerun.returncode == 0, f"{where}: {rerun.stdout}{rerun.stderr}"
        assert "Traceback" not in rerun.stderr
        assert state_of(self.project, self.versions) == "new", where
        assert leftovers(self.project) == [], where
        return state


@pytest.mark.slow
def test_sigkill_at_every_step_of_an_update_never_leaves_a_half_export(
    project: Project, tiny_repo_files, tmp_path
):
    """Defence: the staging folder + ordered renames in localstt.export._install (old export aside,
    then the pin, then the new export in, then the old one removed manifest-first) and
    localstt.export._recover, which finishes or undoes a swap on the next run."""
    scenario = UpdateScenario(project, tiny_repo_files["parakeet"][NEMO_NAME], tmp_path)

    # A full run, traced: every file-system change the update makes, in order.
    scenario.reset()
    traced = scenario.run_killed_at(0, trace=True)
    assert traced.returncode == 0, traced.stderr
    changes = [line.split(" ", 3)[1:] for line in traced.stderr.splitlines() if line.startswith("CHANGE ")]
    total = len(changes)
    finalise_from = next(int(n) for n, event, path in changes if MANIFEST_TMP in path)
    points = sorted({*range(1, finalise_from, 4), *range(finalise_from, total + 1)})
    assert len(points) >= 20 and total - finalise_from >= 8, changes

    states: dict[str, list[int]] = {}
    for point in points:
        scenario.reset()
        killed = scenario.run_killed_at(point)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stdout, killed.stderr)
        where = f"killed before change {point}/{total} ({' '.join(changes[point - 1][1:])})"
        states.setdefault(scenario.check_then_finish(where), []).append(point)
    # The kill points really span the update: some leave the old export, some none, some the new one.
    assert set(states) == {"old", "none", "new"}, states
    print(f"{len(points)} kill points over {total} changes: {states}")


@pytest.mark.slow
def test_sigkill_while_bytes_arrive_never_leaves_a_half_export(project: Project, tiny_repo_files, tmp_path):
    """Defence: downloads land in .staging/ (huggingface_hub's .incomplete file, then a verified
    rename), never in the export; localstt.export._fill_staging discards a killed run's partial files."""
    scenario = UpdateScenario(project, tiny_repo_files["parakeet"][NEMO_NAME], tmp_path)
    blob = sha256(scenario.new_nemo)
    rng = random.Random(20251124)
    offsets = sorted(rng.randrange(len(scenario.new_nemo)) for _ in range(4)) + [10 * MIB + 4096]
    for offset in offsets:
        scenario.reset()
        project.hub.clear_faults()
        project.hub.clear_log()
        # Every GET stalls there, so a retry after the client's read timeout cannot finish first.
        project.hub.inject(
            path_contains=blob, method="GET", stall_after_bytes=offset, stall_seconds=600, times=None
        )
        # huggingface_hub writes whole 10 MiB reads: what the bytes before the stall put on disk.
        on_disk = offset // CHUNK * CHUNK
        process = subprocess.Popen(
            project.export_cmd("parakeet", "--update"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=project.env(),
        )
        try:
            wait_for(
                f"{offset} bytes served",
                partial(project.hub.served, blob, offset),
                seen=partial(sent_so_far, project),
                process=process,
            )
            if on_disk:
                wait_for(
                    f"{on_disk} bytes in the staging file",
                    partial(staged_at_least, project, on_disk),
                    seen=partial(incomplete_sizes, project),
                    process=process,
                )
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=60)
        project.hub.clear_faults()
        assert scenario.check_then_finish(f"killed with {offset} bytes sent") == "old"


def test_disk_full_mid_download_is_one_line_and_changes_nothing(project: Project, tiny_repo_files, tmp_path):
    """Defence: explain() in localstt/hub.py words ENOSPC as "the disk is full", with_retries does not
    retry it, and nothing is swapped in unless every file is verified (localstt.export._install). The
    free-space precheck passes honestly here: a second process fills the disk after it."""
    require_user_namespace("mount")  # the disk: a 125 MB tmpfs in a private mount namespace
    nemo = tiny_repo_files["parakeet"][NEMO_NAME]
    old_pin = project.hub.ref(PARAKEET_REPO_ID)
    new_nemo = nemo + b"\0" * 10240
    new_pin = project.hub.add_commit(PARAKEET_REPO_ID, {NEMO_NAME: new_nemo})
    project.config.write_text(
        project.config.read_text().replace('revision = ""', f'revision = "{old_pin}"', 1), encoding="utf-8"
    )
    # The new file's body waits until the filler has filled the disk (the test releases it then).
    stall = project.hub.inject(path_contains=sha256(new_nemo), method="GET", stall_seconds=600)
    for name, text in (("filler.py", FILLER), ("state.py", STATE)):
        (tmp_path / name).write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    export = " ".join(project.export_cmd("parakeet"))
    script = f"""
        set -u
        mount -t tmpfs -o size=125m tmpfs {project.models_dir}
        {export} > {out}/first.out 2>&1 || exit 10
        {sys.executable} {tmp_path}/filler.py {project.models_dir} > {out}/filler.out &
        {export} --update > {out}/full.out 2> {out}/full.err
        echo $? > {out}/full.rc
        wait
        {sys.executable} {tmp_path}/state.py {project.config} > {out}/after_full.json
        rm {project.models_dir}/filler.bin
        {export} --update > {out}/rerun.out 2>&1
        echo $? > {out}/rerun.rc
        {sys.executable} {tmp_path}/state.py {project.config} > {out}/after_rerun.json
    """
    project.models_dir.mkdir()
    # A read timeout longer than the stall can last (the default 5 s would race the filler).
    env = project.env(HF_HUB_DOWNLOAD_TIMEOUT="300")
    with subprocess.Popen(
        ["unshare", "--map-root-user", "--mount", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        try:
            filler = out / "filler.out"
            wait_for(
                "the filler filled the disk",
                lambda: process.poll() is not None or (filler.exists() and filler.read_text().strip()),
                seen=lambda: [p.name for p in out.iterdir()],
            )
            stall.release()
            stdout, stderr = process.communicate(timeout=300)
        finally:
            stall.release()
            assert kill_tree(process) == []  # the shell and whatever it still runs (none, normally)
    output = stdout + stderr + "".join(p.read_text() for p in (out / "first.out", filler) if p.exists())
    assert process.returncode == 0, output
    assert filler.read_text().split() == ["filled", "28"], output  # ENOSPC
    assert (out / "full.rc").read_text().strip() == "1"
    error = (out / "full.err").read_text()
    assert "The disk is full" in error and "Traceback" not in error and len(error.strip().splitlines()) == 1
    after_full = json.loads((out / "after_full.json").read_text())
    assert after_full == {
        "pin": old_pin,
        "exists": True,
        "error": "",
        "revision": old_pin,
        "sha256": sha256(nemo),
    }
    assert (out / "rerun.rc").read_text().strip() == "0", (out / "rerun.out").read_text()
    after_rerun = json.loads((out / "after_rerun.json").read_text())
    assert after_rerun["revision"] == new_pin == after_rerun["pin"]
    assert after_rerun["sha256"] == sha256(new_nemo)
