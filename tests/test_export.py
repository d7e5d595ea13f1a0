"""export_models.py against the local test hub: pinning, exactly-once downloads, updates, repairs, faults."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from testkit.hubserver import HubServer
from testkit.namespaces import require_user_namespace
from testkit.store_env import (
    NEMO_NAME,
    NEMO_V3_NAME,
    Project,
    as_in_a_terminal,
    read_folder,
    sha256,
    wait_for,
)
from testkit.tiny_models import (
    CANARY_1B_V2_REPO_ID,
    CANARY_REPO_ID,
    PARAKEET_REPO_ID,
    PARAKEET_V3_REPO_ID,
    QWEN_REPO_ID,
    TINY_CANARY_1B_V2_NEMO,
    TINY_PARAKEET_V3_NEMO,
)


def gets_of(hub: HubServer, repo: str, path: str, data: bytes) -> int:
    """GETs that transferred this file's body (LFS blobs are addressed by sha256, small files by path)."""
    return sum(
        1
        for r in hub.requests
        if r.method == "GET"
        and r.status in (200, 206)
        and (
            sha256(data) in r.path or (r.path.startswith(f"/{repo}/resolve/") and r.path.endswith("/" + path))
        )
    )


def manifest(project: Project, key: str) -> dict:
    return json.loads((project.models_dir / key / "manifest.json").read_text())


def test_first_export_pins_main_and_downloads_each_file_once(project: Project, tiny_repo_files):
    hub = project.hub
    result = project.export()
    assert result.returncode == 0, result.stderr

    config_text = project.config.read_text()
    for repo in (PARAKEET_REPO_ID, CANARY_REPO_ID, QWEN_REPO_ID):
        assert hub.ref(repo) in config_text
        assert hub.ref(repo) in result.stdout
    assert "# Leave it empty" in config_text  # comments survive the rewrite

    nemo = tiny_repo_files["parakeet"][NEMO_NAME]
    assert gets_of(hub, PARAKEET_REPO_ID, NEMO_NAME, nemo) == 1
    for repo, files in ((CANARY_REPO_ID, tiny_repo_files["canary"]), (QWEN_REPO_ID, tiny_repo_files["llm"])):
        for path, data in files.items():
            assert gets_of(hub, repo, path, data) == (0 if path == "README.md" else 1), (repo, path)
    qwen_weights = hub.files(QWEN_REPO_ID)["model.safetensors"]
    assert gets_of(hub, QWEN_REPO_ID, "model.safetensors", qwen_weights) == 0
    assert not any("README.md" in r.path for r in hub.requests if r.method == "GET")

    parakeet = manifest(project, "parakeet")
    assert parakeet["revision"] == hub.ref(PARAKEET_REPO_ID)
    assert parakeet["files"] == [
        {
            "path": NEMO_NAME,
            "size": len(nemo),
            "sha256": sha256(nemo),
            "source": f"{PARAKEET_REPO_ID}@{hub.ref(PARAKEET_REPO_ID)}:{NEMO_NAME}",
        }
    ]
    assert (project.models_dir / "parakeet" / NEMO_NAME).read_bytes() == nemo
    # The multilingual models: one .nemo each, at their pins, fetched once.
    for key, repo, name, archive in (
        ("parakeet-v3", PARAKEET_V3_REPO_ID, NEMO_V3_NAME, TINY_PARAKEET_V3_NEMO.read_bytes()),
        ("canary-1b-v2", CANARY_1B_V2_REPO_ID, "canary-1b-v2.nemo", TINY_CANARY_1B_V2_NEMO.read_bytes()),
    ):
        assert gets_of(hub, repo, name, archive) == 1, key
        assert manifest(project, key)["revision"] == hub.ref(repo) and hub.ref(repo) in config_text
        assert manifest(project, key)["files"][0]["sha256"] == sha256(archive)
        assert (project.models_dir / key / name).read_bytes() == archive

    canary = manifest(project, "canary-qwen")
    assert canary["llm_repo"] == QWEN_REPO_ID and canary["llm_revision"] == hub.ref(QWEN_REPO_ID)
    on_disk = read_folder(project.models_dir / "canary-qwen")
    assert on_disk["llm_backbone/config.json"] == tiny_repo_files["llm"]["config.json"]
    assert on_disk["config.json"] == tiny_repo_files["canary"]["config.json"]
    assert on_disk["tokenizer.json"] == tiny_repo_files["llm"]["tokenizer.json"]
    assert (
        "model.safetensors" in on_disk
        and on_disk["model.safetensors"] == tiny_repo_files["canary"]["model.safetensors"]
    )
    for record in canary["files"]:
        assert sha256(on_disk[record["path"]]) == record["sha256"]
    assert not (project.models_dir / ".staging").exists() or not any(
        (project.models_dir / ".staging").iterdir()
    )


def test_second_export_makes_zero_requests(project: Project):
    assert project.export().returncode == 0
    # Project.env leaves the hub client's telemetry on: export_models.py turns it off itself, so the
    # export asks only for the repos (no agent-harness registry) and names no library versions.
    repo_routes = [
        r.path.startswith(("/api/models/", "/_lfs/")) or "/resolve/" in r.path for r in project.hub.requests
    ]
    assert all(repo_routes), [r.path for r in project.hub.requests]
    agents = {r.headers.get("user-agent", "") for r in project.hub.requests}
    assert not any("torch/" in agent for agent in agents), agents
    project.hub.clear_log()
    result = project.export()
    assert result.returncode == 0, result.stderr
    assert project.hub.requests == []
    short = project.hub.ref(PARAKEET_REPO_ID)[:12]
    assert f"parakeet: already exported at {short} (" in result.stdout
    assert "nothing to download" in result.stdout


def test_main_moving_upstream_changes_nothing_while_pinned(project: Project):
    assert project.export("parakeet").returncode == 0
    pinned = project.hub.ref(PARAKEET_REPO_ID)
    project.hub.add_commit(PARAKEET_REPO_ID, {NEMO_NAME: b"a different model" * 1000})
    project.hub.clear_log()
    result = project.export("parakeet")
    assert result.returncode == 0
    assert project.hub.requests == []
    assert manifest(project, "parakeet")["revision"] == pinned
    assert f'revision = "{pinned}"' in project.config.read_text()


def test_update_moves_pin_and_keeps_old_export_until_new_one_verifies(project: Project, tiny_repo_files):
    assert project.export("parakeet").returncode == 0
    old_pin = project.hub.ref(PARAKEET_REPO_ID)
    old_nemo = tiny_repo_files["parakeet"][NEMO_NAME]
    new_nemo = old_nemo + b"\0" * 10240  # a valid tar with extra padding: a new upstream file
    new_pin = project.hub.add_commit(PARAKEET_REPO_ID, {NEMO_NAME: new_nemo, "README.md": b"v2\n"})

    # Every copy of the new file arrives corrupted: the update must fail and change nothing.
    project.hub.inject(path_contains=sha256(new_nemo), corrupt_same_size=True, times=None)
    failed = project.export("parakeet", "--update")
    assert failed.returncode == 1
    assert "sha256" in failed.stderr and "Traceback" not in failed.stderr
    assert f'revision = "{old_pin}"' in project.config.read_text()
    assert manifest(project, "parakeet")["revision"] == old_pin
    assert (project.models_dir / "parakeet" / NEMO_NAME).read_bytes() == old_nemo

    project.hub.clear_faults()
    project.hub.clear_log()
    result = project.export("parakeet", "--update")
    assert result.returncode == 0, result.stderr
    assert f"changed  {NEMO_NAME}" in result.stdout
    assert f'revision = "{new_pin}"' in project.config.read_text()
    assert manifest(project, "parakeet")["revision"] == new_pin
    assert (project.models_dir / "parakeet" / NEMO_NAME).read_bytes() == new_nemo
    assert gets_of(project.hub, PARAKEET_REPO_ID, NEMO_NAME, new_nemo) == 1


def test_update_downloads_only_changed_files(project: Project, tiny_repo_files):
    assert project.export("canary-qwen").returncode == 0
    canary = dict(project.hub.files(CANARY_REPO_ID))
    canary["config.json"] = canary["config.json"].replace(b"{", b'{"comment": "v2", ', 1)
    project.hub.add_commit(CANARY_REPO_ID, canary)
    project.hub.clear_log()
    result = project.export("canary-qwen", "--update")
    assert result.returncode == 0, result.stderr
    assert gets_of(project.hub, CANARY_REPO_ID, "config.json", canary["config.json"]) == 1
    assert gets_of(project.hub, CANARY_REPO_ID, "model.safetensors", canary["model.safetensors"]) == 0
    assert (project.models_dir / "canary-qwen" / "config.json").read_bytes() == canary["config.json"]


def test_verify_reports_same_size_corruption_and_repair_fixes_only_that_file(
    project: Project, tiny_repo_files
):
    assert project.export().returncode == 0
    assert project.export("--verify").returncode == 0
    nemo_path = project.models_dir / "parakeet" / NEMO_NAME
    data = bytearray(nemo_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    nemo_path.write_bytes(bytes(data))

    project.hub.clear_log()
    verify = project.export("--verify")
    assert verify.returncode == 1
    assert f"{nemo_path}: sha256 differs" in verify.stdout
    assert "export_models.py --config" in verify.stdout and "--repair parakeet" in verify.stdout
    assert "canary-qwen: all" in verify.stdout
    assert project.hub.requests == []
    assert nemo_path.exists()  # reported, never deleted

    repair = project.export("--repair", "parakeet")
    assert repair.returncode == 0, repair.stderr
    assert nemo_path.read_bytes() == tiny_repo_files["parakeet"][NEMO_NAME]
    assert project.export("--verify").returncode == 0


def requests_seen(hub: HubServer) -> Callable[[], list[tuple[str, str, int, int]]]:
    return lambda: [(r.method, r.path, r.status, r.sent) for r in hub.requests]


@contextmanager
def started(command: list[str], **options: Any) -> Iterator[subprocess.Popen[str]]:
    """The command running for the block; killed and reaped after it, whatever happened."""
    process = subprocess.Popen(command, **options)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)


def test_download_killed_halfway_is_finished_by_a_rerun(project: Project, tiny_repo_files):
    nemo = tiny_repo_files["parakeet"][NEMO_NAME]
    # Every GET of the file stalls halfway, so a retry cannot finish the download before the kill.
    half = len(nemo) // 2
    project.hub.inject(path_contains=sha256(nemo), stall_after_bytes=half, stall_seconds=600, times=None)
    command = project.export_cmd("parakeet")
    with started(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=project.env()) as process:
        wait_for(
            "half the file served",
            partial(project.hub.served, sha256(nemo), half),
            seen=requests_seen(project.hub),
            process=process,
        )
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert not (project.models_dir / "parakeet" / "manifest.json").exists()

    project.hub.clear_faults()
    result = project.export("parakeet")
    assert result.returncode == 0, result.stderr
    assert (project.models_dir / "parakeet" / NEMO_NAME).read_bytes() == nemo
    assert project.export("--verify", "parakeet").returncode == 0


def test_ctrl_c_says_how_to_continue(project: Project, tiny_repo_files):
    nemo = tiny_repo_files["parakeet"][NEMO_NAME]
    # Every body stalls for an hour, so the export can only end by being interrupted.
    project.hub.inject(path_contains=sha256(nemo), stall_after_bytes=1000, stall_seconds=3600, times=None)
    with started(
        project.export_cmd("parakeet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=project.env(),
        text=True,
        preexec_fn=as_in_a_terminal,
    ) as process:
        wait_for(
            "the download started",
            partial(project.hub.served, sha256(nemo), 1000),
            seen=requests_seen(project.hub),
            process=process,
        )
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, (stdout[-2000:], stderr[-2000:])
    assert "rerun the same command to continue" in stdout
    assert "Traceback" not in stderr
    assert not (project.models_dir / "parakeet" / "manifest.json").exists()


def test_two_exports_at_once_share_the_work(project: Project, tiny_repo_files):
    command = project.export_cmd("parakeet")
    with (
        started(command, stdout=subprocess.PIPE, text=True, env=project.env()) as first,
        started(command, stdout=subprocess.PIPE, text=True, env=project.env()) as second,
    ):
        processes = [first, second]
        outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0]
    assert sum("already exported" in out for out in outputs) == 1
    nemo = tiny_repo_files["parakeet"][NEMO_NAME]
    assert gets_of(project.hub, PARAKEET_REPO_ID, NEMO_NAME, nemo) == 1
    assert (project.models_dir / "parakeet" / NEMO_NAME).read_bytes() == nemo


def test_hub_errors_are_one_clear_line(project: Project):
    project.hub.inject(status=401, times=None)
    gated = project.export("parakeet")
    assert gated.returncode == 1
    assert "HF_TOKEN" in gated.stderr and "Traceback" not in gated.stderr
    assert len(gated.stderr.strip().splitlines()) == 1
    project.hub.clear_faults()

    text = project.config.read_text().replace("nvidia/parakeet-tdt-0.6b-v2", "nvidia/no-such-model", 1)
    project.config.write_text(text)
    missing = project.export("parakeet")
    assert missing.returncode == 1
    assert "nvidia/no-such-model was not found" in missing.stderr and "Traceback" not in missing.stderr

    text = text.replace("nvidia/no-such-model", PARAKEET_REPO_ID).replace(
        'revision = ""', f'revision = "{"ab" * 20}"', 1
    )
    project.config.write_text(text)
    bad_revision = project.export("parakeet")
    assert bad_revision.returncode == 1
    assert f"Revision {'ab' * 20} does not exist" in bad_revision.stderr


def test_no_network_is_one_clear_line(project: Project):
    result = project.export("parakeet", HF_ENDPOINT="http://127.0.0.1:9")
    assert result.returncode == 1
    assert "check the network connection" in result.stderr and "Traceback" not in result.stderr
    assert not (project.models_dir / "parakeet").exists()


def test_not_enough_disk_space_is_refused_before_downloading(project: Project):
    # local_models/ on a 256 KB tmpfs, mounted in a private mount namespace for this one process.
    require_user_namespace("mount")
    project.models_dir.mkdir()
    mount = 'mount -t tmpfs -o size=256k tmpfs "$0" && exec "$@"'
    command = ["unshare", "--map-root-user", "--mount", "sh", "-c", mount, str(project.models_dir)]
    result = subprocess.run(
        [*command, *project.export_cmd("parakeet")],
        capture_output=True,
        text=True,
        env=project.env(),
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "Not enough free disk space" in result.stderr and "Traceback" not in result.stderr
    assert not any(r.method == "GET" and "_lfs" in r.path for r in project.hub.requests)
    assert list(project.models_dir.iterdir()) == []
