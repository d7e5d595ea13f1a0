"""Download faults: the local test hub misbehaves, and the export still ends verified or changes nothing.

Each test names the line of defence it covers. What test_export.py already proves is not repeated
here (a body corrupted every time, 401 gated, unknown repo or revision at pin time, no network, kill
halfway, too little disk before downloading).
"""

from __future__ import annotations

from localstt.config import load_config
from localstt.manifest import check_export
from testkit.hubserver import HubServer
from testkit.store_env import NEMO_NAME, Project, sha256
from testkit.tiny_models import PARAKEET_REPO_ID

MIB = 1024 * 1024


def blob_gets(hub: HubServer, data: bytes) -> list:
    """GETs of this file's LFS blob (addressed by its sha256) that returned a body."""
    return [r for r in hub.requests if r.method == "GET" and sha256(data) in r.path and r.status < 300]


def assert_exported(project: Project, revision: str, data: bytes) -> None:
    """config.toml pins `revision`, and the export is exactly that revision's file, fully re-hashed."""
    spec = load_config(project.config).model("parakeet")
    assert spec.revision == revision
    check_export(spec, project.models_dir / "parakeet", "full", project.config)
    assert (project.models_dir / "parakeet" / NEMO_NAME).read_bytes() == data


def move_main(project: Project, nemo: bytes) -> tuple[str, str, bytes]:
    """Export parakeet, then publish a new upstream version; returns (old pin, new pin, new file)."""
    assert project.export("parakeet").returncode == 0
    old_pin = project.hub.ref(PARAKEET_REPO_ID)
    new_nemo = nemo + b"\0" * 10240  # the same tar with more padding: a different, valid file
    new_pin = project.hub.add_commit(PARAKEET_REPO_ID, {NEMO_NAME: new_nemo, "README.md": b"v2\n"})
    return old_pin, new_pin, new_nemo


def one_clear_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def publish_big_file(project: Project, nemo: bytes) -> bytes:
    """A 12 MB version of the model on the hub's main: bigger than huggingface_hub's 10 MB read chunk,
    so a body cut after 11 MB has left data on disk and the retry asks for the rest with Range."""
    big = nemo + b"\0" * (11 * MIB)  # a tar followed by zero blocks is the same valid tar
    project.hub.add_commit(PARAKEET_REPO_ID, {NEMO_NAME: big, "README.md": b"big\n"})
    return big


def test_connection_dropped_mid_file_is_resumed(project: Project, tiny_repo_files):
    """Defence: huggingface_hub resumes a dropped body with a Range request; download_verified
    (localstt/hub.py) then checks the joined file's sha256 before it enters staging."""
    big = publish_big_file(project, tiny_repo_files["parakeet"][NEMO_NAME])
    drop = project.hub.inject(path_contains=sha256(big), method="GET", drop_after_bytes=11 * MIB)
    result = project.export("parakeet")
    assert result.returncode == 0, result.stderr
    assert drop.fired == 1
    gets = blob_gets(project.hub, big)
    assert [r.status for r in gets] == [200, 206]
    assert gets[1].headers["range"] == f"bytes={10 * MIB}-"
    assert_exported(project, project.hub.ref(PARAKEET_REPO_ID), big)


def test_resumed_body_that_arrives_damaged_is_fetched_again(project: Project, tiny_repo_files):
    """Defence: download_verified (localstt/hub.py) hashes the whole joined file, so a resume whose
    second part is damaged (the size still right) is thrown away and fetched again, never accepted."""
    big = publish_big_file(project, tiny_repo_files["parakeet"][NEMO_NAME])
    project.hub.inject(path_contains=sha256(big), method="GET", drop_after_bytes=11 * MIB)
    project.hub.inject(path_contains=sha256(big), method="GET", corrupt_same_size=True)
    result = project.export("parakeet")
    assert result.returncode == 0, result.stderr
    assert "does not match the hub's hash; fetching again" in result.stdout
    assert [r.status for r in blob_gets(project.hub, big)] == [200, 206, 200]
    assert_exported(project, project.hub.ref(PARAKEET_REPO_ID), big)


def test_same_size_corrupted_body_is_fetched_again(project: Project, tiny_repo_files):
    """Defence: download_verified (localstt/hub.py) compares the sha256 with the hub's LFS metadata;
    huggingface_hub alone checks only the size, which a same-size corruption keeps."""
    nemo = tiny_repo_files["parakeet"][NEMO_NAME]
    project.hub.inject(path_contains=sha256(nemo), method="GET", corrupt_same_size=True)
    result = project.export("parakeet")
    assert result.returncode == 0, result.stderr
    assert "does not match the hub's hash; fetching again" in result.stdout
    assert len(blob_gets(project.hub, nemo)) == 2
    assert_exported(project, project.hub.ref(PARAKEET_REPO_ID), nemo)


def test_stalled_body_times_out_and_the_download_goes_on(project: Project, tiny_repo_files):
    """Defence: the read timeout (HF_HUB_DOWNLOAD_TIMEOUT, honoured by huggingface_hub) ends a body
    that stops arriving, and the download resumes; the result is still sha256-checked.

    The stalled body would resume only after an hour (or when the hub stops), far beyond the export's
    own 120 s limit: an export that ends at all has given up on it, and the hub's log shows the
    stalled request and the one that fetched the file again."""
    nemo = tiny_repo_files["parakeet"][NEMO_NAME]
    stall = project.hub.inject(
        path_contains=sha256(nemo), method="GET", stall_after_bytes=len(nemo) // 3, stall_seconds=3600
    )
    result = project.export("parakeet", HF_HUB_DOWNLOAD_TIMEOUT="1")
    assert result.returncode == 0, result.stderr
    assert stall.fired == 1
    gets = blob_gets(project.hub, nemo)
    assert [r.status for r in gets] == [200, 200]  # the stalled one, then the whole file again
    assert "range" not in gets[1].headers  # under 10 MB nothing was kept, so nothing to resume from
    assert_exported(project, project.hub.ref(PARAKEET_REPO_ID), nemo)


def test_http_500_is_retried_with_backoff(project: Project, tiny_repo_files):
    """Defence: with_retries (localstt/hub.py) retries a 5xx with growing delays (huggingface_hub
    retries only 408/429 on a file body); when the hub keeps failing, the update fails with one line
    and the old export stays loadable, and a rerun finishes the job."""
    nemo = tiny_repo_files["parakeet"][NEMO_NAME]
    old_pin, new_pin, new_nemo = move_main(project, nemo)

    project.hub.inject(path_contains=sha256(new_nemo), method="GET", status=500, times=None)
    failed = project.export("parakeet", "--update")
    assert failed.returncode == 1
    assert "(HTTP 500)" in one_clear_line(failed.stderr) and "rerun" in failed.stderr
    assert [line.strip() for line in failed.stdout.splitlines() if "retrying" in line] == [
        f"downloading {NEMO_NAME} failed (HfHubHTTPError); retrying in {delay} s" for delay in (1, 2, 4)
    ]
    assert_exported(project, old_pin, nemo)

    project.hub.clear_faults()
    project.hub.clear_log()
    twice = project.hub.inject(path_contains=sha256(new_nemo), method="GET", status=500, times=2)
    result = project.export("parakeet", "--update")
    assert result.returncode == 0, result.stderr
    assert twice.fired == 2
    # Two 500s, each followed by a retry after the announced wait (1 s, then 2 s), then the file.
    blob = [r.status for r in project.hub.requests if r.method == "GET" and sha256(new_nemo) in r.path]
    assert blob == [500, 500, 200]
    assert [line.strip() for line in result.stdout.splitlines() if "retrying" in line] == [
        f"downloading {NEMO_NAME} failed (HfHubHTTPError); retrying in {delay} s" for delay in (1, 2)
    ]
    assert_exported(project, new_pin, new_nemo)


def test_403_and_tokens_name_hf_token(project: Project, tiny_repo_files):
    """Defence: explain() in localstt/hub.py turns 401/403 into one line naming HF_TOKEN (the 401
    case is in test_export.py); the token from HF_TOKEN is sent to the hub and works, and it is not
    sent to the CDN host that serves the LFS blobs."""
    project.hub.inject(status=403, times=None)
    forbidden = project.export("parakeet")
    assert forbidden.returncode == 1
    assert "HTTP 403" in one_clear_line(forbidden.stderr) and "HF_TOKEN" in forbidden.stderr
    assert not (project.models_dir / "parakeet").exists()

    project.hub.clear_faults()
    project.hub.inject(require_token="hf_right", times=None)
    for token in ("", "hf_wrong"):
        refused = project.export("parakeet", HF_TOKEN=token)
        assert refused.returncode == 1
        assert "HF_TOKEN" in one_clear_line(refused.stderr)
        assert not (project.models_dir / "parakeet").exists()
    project.hub.clear_log()
    result = project.export("parakeet", HF_TOKEN="hf_right")
    assert result.returncode == 0, result.stderr
    assert_exported(project, project.hub.ref(PARAKEET_REPO_ID), tiny_repo_files["parakeet"][NEMO_NAME])
    hub_requests = [r for r in project.hub.requests if not r.cdn]
    assert hub_requests and all(r.headers.get("authorization") == "Bearer hf_right" for r in hub_requests)
    assert all("authorization" not in r.headers for r in project.hub.requests if r.cdn)


def test_404_while_downloading_keeps_the_old_export(project: Project, tiny_repo_files):
    """Defence: explain() in localstt/hub.py words a 404 that comes after the listing (revision gone,
    or a file missing on a mirror) as one line, and the export swaps nothing in until every file is
    verified (localstt.export._install); a rerun finishes once the hub is whole again."""
    nemo = tiny_repo_files["parakeet"][NEMO_NAME]
    old_pin, new_pin, new_nemo = move_main(project, nemo)
    for code, expected in (
        ("RevisionNotFound", f"Revision {new_pin} does not exist"),
        ("EntryNotFound", "but then answered HTTP 404 for it"),
    ):
        project.hub.clear_faults()
        project.hub.inject(path_contains=f"/resolve/{new_pin}/", status=404, error_code=code, times=None)
        failed = project.export("parakeet", "--update")
        assert failed.returncode == 1
        assert expected in one_clear_line(failed.stderr)
        assert_exported(project, old_pin, nemo)
    project.hub.clear_faults()
    result = project.export("parakeet", "--update")
    assert result.returncode == 0, result.stderr
    assert_exported(project, new_pin, new_nemo)
