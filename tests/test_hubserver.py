"""The fake Hub in ``hubserver.py``, exercised with the real huggingface_hub client.

Calls pass ``endpoint=hub.endpoint`` (and ``token=False``, so no locally stored token leaks in);
one test runs the client in a subprocess with ``HF_ENDPOINT`` / ``HF_HUB_OFFLINE`` set instead.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx2
import pytest
from huggingface_hub import HfApi, constants, file_download, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder
from huggingface_hub.utils import _http, close_session

from testkit.hubserver import Fault, HubServer, git_blob_sha1, run_hub

REPO = "nvidia/parakeet-tdt-0.6b-v2"
MIB = 1024 * 1024
_rng = random.Random(1234)
FILES: dict[str, bytes] = {
    "config.json": b'{"sample_rate": 16000}',
    "model.nemo": _rng.randbytes(64 * 1024),  # LFS (> 1 KiB)
    "sub/vocab.txt": b"a\nb\nc\n",
    "sub/big.bin": _rng.randbytes(4096),  # LFS
}
BIG = _rng.randbytes(11 * MIB)  # larger than huggingface_hub's 10 MiB DOWNLOAD_CHUNK_SIZE


@pytest.fixture(autouse=True)
def _hermetic_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Both are read per call. Offline mode would block every request; telemetry on makes the first
    header build GET {HF_ENDPOINT at import}/api/agent-harnesses, i.e. huggingface.co in-process.
    After the test, the client's shared connections are closed: the hub's threads serving them end."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    yield
    close_session()


@pytest.fixture
def hub() -> Iterator[HubServer]:  # same as conftest.py's; repeated so this module stands alone
    with run_hub() as server:
        yield server


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make huggingface_hub's retry sleeps instant (only in its own modules); record them."""
    recorded: list[float] = []
    fake = SimpleNamespace(sleep=recorded.append)
    monkeypatch.setattr(file_download, "time", fake)
    monkeypatch.setattr(_http, "time", fake)
    return recorded


def dl(hub: HubServer, filename: str, **kwargs: object) -> bytes:
    kwargs.setdefault("token", False)
    path = hf_hub_download(REPO, filename, endpoint=hub.endpoint, **kwargs)  # type: ignore[arg-type]
    return Path(path).read_bytes()


def api(hub: HubServer, token: str | bool = False) -> HfApi:
    return HfApi(endpoint=hub.endpoint, token=token)


def kinds(hub: HubServer) -> list[tuple[str, str, int]]:
    """The log as (method, route, status), route being info/tree/resolve/lfs."""
    out = []
    for r in hub.requests:
        route = "lfs" if r.path.startswith("/_lfs/") else "resolve" if "/resolve/" in r.path else ""
        route = route or ("tree" if "/tree/" in r.path else "info")
        out.append((r.method, route, r.status))
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- raw protocol -------------------------------------------------------------------------------
def raw(hub: HubServer, method: str, path: str, **headers: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(hub.endpoint.removeprefix("http://"), timeout=5)
    conn.request(method, path, headers=headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_raw_headers_ranges_and_error_codes(hub: HubServer) -> None:
    sha = hub.add_commit(REPO, FILES)
    lfs = raw(hub, "HEAD", f"/{REPO}/resolve/main/model.nemo")
    assert lfs.status == 302
    assert lfs.getheader("X-Linked-Size") == str(len(FILES["model.nemo"]))
    assert lfs.getheader("X-Linked-Etag") == f'"{sha256(FILES["model.nemo"])}"'
    assert lfs.getheader("X-Repo-Commit") == sha
    assert lfs.getheader("Location", "").startswith(hub.cdn_endpoint)
    assert not any(name.lower().startswith("x-xet") for name, _ in lfs.getheaders())
    small = raw(hub, "HEAD", f"/{REPO}/resolve/{sha}/config.json")
    assert small.status == 200 and small.getheader("ETag") == f'"{git_blob_sha1(FILES["config.json"])}"'
    assert small.getheader("Content-Length") == str(len(FILES["config.json"]))

    conn = http.client.HTTPConnection(hub.endpoint.removeprefix("http://"), timeout=5)
    for rng, status, body, content_range in [
        ("bytes=2-7", 206, FILES["config.json"][2:8], f"bytes 2-7/{len(FILES['config.json'])}"),
        ("bytes=-3", 206, FILES["config.json"][-3:], None),
        ("bytes=5-", 206, FILES["config.json"][5:], None),
        ("bytes=999-", 416, b"", f"bytes */{len(FILES['config.json'])}"),
    ]:
        conn.request("GET", f"/{REPO}/resolve/main/config.json", headers={"Range": rng})
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (status, body)
        assert content_range is None or resp.getheader("Content-Range") == content_range
    conn.close()

    for path, code in [
        ("/nobody/nothing/resolve/main/x", "RepoNotFound"),
        (f"/{REPO}/resolve/v9/config.json", "RevisionNotFound"),
        (f"/{REPO}/resolve/main/missing.txt", "EntryNotFound"),
        ("/api/models/nobody/nothing", "RepoNotFound"),
        (f"/api/models/{REPO}/revision/{'0' * 40}", "RevisionNotFound"),
    ]:
        resp = raw(hub, "GET", path)
        assert (resp.status, resp.getheader("X-Error-Code")) == (404, code), path
    assert hub.count() == 2 + 4 + 5 and hub.count("HEAD") == 2
    assert hub.bytes_sent == 6 + 3 + len(FILES["config.json"]) - 5 + sum(
        r.body_bytes for r in hub.requests if r.status == 404
    )


# -- HfApi --------------------------------------------------------------------------------------
def test_model_info_tree_and_paths_info(hub: HubServer) -> None:
    old = hub.add_commit(REPO, {"config.json": b"{}"})
    new = hub.add_commit(REPO, FILES)
    assert len(new) == 40 and new != old and hub.ref(REPO) == new

    info = api(hub).model_info(REPO)
    assert info.sha == new and {s.rfilename for s in info.siblings or []} == set(FILES)
    assert api(hub).model_info(REPO, revision=old).sha == old
    meta = {s.rfilename: s for s in api(hub).model_info(REPO, files_metadata=True).siblings or []}
    assert meta["model.nemo"].lfs is not None and meta["model.nemo"].lfs.sha256 == sha256(FILES["model.nemo"])
    assert meta["config.json"].lfs is None and meta["config.json"].blob_id == git_blob_sha1(
        FILES["config.json"]
    )

    tree = list(api(hub).list_repo_tree(REPO, recursive=True))
    files = {e.path: e for e in tree if isinstance(e, RepoFile)}
    assert set(files) == set(FILES) and [e.path for e in tree if isinstance(e, RepoFolder)] == ["sub"]
    for path, data in FILES.items():
        assert files[path].size == len(data)
        assert (files[path].lfs is not None) == (len(data) > 1024)
    assert files["sub/big.bin"].lfs and files["sub/big.bin"].lfs.sha256 == sha256(FILES["sub/big.bin"])
    assert files["sub/vocab.txt"].blob_id == git_blob_sha1(FILES["sub/vocab.txt"])
    assert {e.path for e in api(hub).list_repo_tree(REPO)} == {"sub", "config.json", "model.nemo"}
    assert {e.path for e in api(hub).list_repo_tree(REPO, "sub")} == {"sub/vocab.txt", "sub/big.bin"}
    assert [e.path for e in api(hub).list_repo_tree(REPO, revision=old)] == ["config.json"]
    expanded = list(api(hub).list_repo_tree(REPO, expand=True))
    assert all(e.last_commit is not None and e.last_commit.oid == new for e in expanded)

    infos = api(hub).get_paths_info(REPO, ["config.json", "sub", "missing"], revision=new)
    assert [(type(e), e.path) for e in infos] == [(RepoFile, "config.json"), (RepoFolder, "sub")]

    hub.tree_page_size = 2  # 5 entries -> 3 pages, followed through the Link header
    hub.clear_log()
    assert {e.path for e in api(hub).list_repo_tree(REPO, recursive=True)} == set(FILES) | {"sub"}
    assert hub.count("GET", "/tree/") == 3


# -- hf_hub_download ----------------------------------------------------------------------------
def test_hf_hub_download_cache_dir_counts(hub: HubServer, tmp_path: Path) -> None:
    sha = hub.add_commit(REPO, FILES)
    for name, data in FILES.items():
        got = dl(hub, name, cache_dir=tmp_path)
        assert got == data and sha256(got) == sha256(data)
    # small file: HEAD resolve 200 + GET resolve; LFS file: HEAD resolve 302 + GET blob on the "CDN"
    assert kinds(hub) == [
        ("HEAD", "resolve", 200),
        ("GET", "resolve", 200),
        ("HEAD", "resolve", 302),
        ("GET", "lfs", 200),
        ("HEAD", "resolve", 200),
        ("GET", "resolve", 200),
        ("HEAD", "resolve", 302),
        ("GET", "lfs", 200),
    ]
    assert hub.bytes_sent == sum(len(d) for d in FILES.values())

    hub.clear_log()
    for name, data in FILES.items():  # pinned sha + cached => no request at all
        assert dl(hub, name, cache_dir=tmp_path, revision=sha) == data
    assert hub.requests == []

    for name in FILES:  # branch name => one HEAD per file to resolve it, no body
        dl(hub, name, cache_dir=tmp_path, revision="main")
    assert kinds(hub) == [("HEAD", "resolve", 200), ("HEAD", "resolve", 302)] * 2


def test_hf_hub_download_local_dir_counts(hub: HubServer, tmp_path: Path) -> None:
    sha = hub.add_commit(REPO, FILES)
    for revision in ("main", sha):
        for name in FILES:
            got = dl(hub, name, local_dir=tmp_path / revision, cache_dir=tmp_path / "c", revision=revision)
            assert got == FILES[name] and (tmp_path / revision / name).read_bytes() == FILES[name]
        assert hub.count("GET") == 4 and hub.count("HEAD") == 4
        hub.clear_log()

    for name in FILES:  # sha + .cache/huggingface/download metadata with that commit => zero requests
        dl(hub, name, local_dir=tmp_path / sha, cache_dir=tmp_path / "c", revision=sha)
        dl(hub, name, local_dir=tmp_path / "main", cache_dir=tmp_path / "c", revision=sha)
    assert hub.requests == []
    for name in FILES:  # branch => one HEAD each, the etag matches the stored metadata => no GET
        dl(hub, name, local_dir=tmp_path / sha, cache_dir=tmp_path / "c", revision="main")
    assert hub.count("HEAD") == 4 and hub.count("GET") == 0


def test_branch_moves_and_pinned_commits(hub: HubServer, tmp_path: Path) -> None:
    old = hub.add_commit(REPO, FILES)
    new = hub.add_commit(REPO, {**hub.files(REPO), "config.json": b'{"v": 2}'})
    assert dl(hub, "config.json", cache_dir=tmp_path) == b'{"v": 2}'
    assert dl(hub, "config.json", cache_dir=tmp_path, revision=old) == FILES["config.json"]
    hub.set_ref(REPO, old)
    assert dl(hub, "config.json", cache_dir=tmp_path) == FILES["config.json"]
    staged = hub.add_commit(REPO, {"config.json": b"staged"}, move_main=False)
    assert hub.ref(REPO) == old and staged != new
    assert dl(hub, "config.json", cache_dir=tmp_path, revision=staged) == b"staged"
    assert (tmp_path / f"models--{REPO.replace('/', '--')}" / "refs" / "main").read_text() == old


def test_lfs_same_origin_redirect_is_followed(tmp_path: Path) -> None:
    with run_hub(lfs_same_origin=True, lfs_threshold=100) as hub:
        hub.add_commit(REPO, FILES)
        assert dl(hub, "sub/big.bin", cache_dir=tmp_path, token="hf_x") == FILES["sub/big.bin"]
        assert kinds(hub) == [("HEAD", "resolve", 302), ("HEAD", "lfs", 200), ("GET", "lfs", 200)]
        assert all(r.headers.get("authorization") == "Bearer hf_x" for r in hub.requests)


# -- snapshot_download --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["cache_dir", "local_dir"])
def test_snapshot_download_counts(hub: HubServer, tmp_path: Path, sleeps: list[float], mode: str) -> None:
    sha = hub.add_commit(REPO, FILES)
    dropped = hub.inject(path_contains="/_lfs/", drop_after_bytes=1000)  # recovered by re-GETting
    target = {"local_dir": tmp_path / "out"} if mode == "local_dir" else {}

    def snap(revision: str | None = None) -> Path:
        path = snapshot_download(
            REPO, revision=revision, allow_patterns=["*.json", "sub/*"], cache_dir=tmp_path / "c",
            endpoint=hub.endpoint, token=False, **target,
        )  # fmt: skip
        return Path(path)

    root = snap()
    wanted = {"config.json", "sub/vocab.txt", "sub/big.bin"}
    got = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".cache" not in p.parts}
    assert got == wanted and all((root / n).read_bytes() == FILES[n] for n in wanted)
    log = kinds(hub)
    assert log[:2] == [("GET", "info", 200), ("GET", "tree", 200)]  # revision/main, then tree/<sha>
    assert (
        hub.requests[1].path == f"/api/models/{REPO}/tree/{sha}" and "recursive=true" in hub.requests[1].query
    )
    assert sorted(log[2:]) == sorted([("HEAD", "resolve", 200), ("GET", "resolve", 200)] * 2 + [
        ("HEAD", "resolve", 302), ("GET", "lfs", 200), ("GET", "lfs", 200)])  # fmt: skip
    assert dropped.fired == 1 and sleeps == [1]

    hub.clear_log()
    snap()  # branch: only the revision lookup; the tree listing is cached under trees/<sha>.json
    assert kinds(hub) == [("GET", "info", 200)]
    hub.clear_log()
    assert snap(sha) == root and hub.requests == []


# -- errors -------------------------------------------------------------------------------------
def test_not_found_errors_map_to_client_exceptions(hub: HubServer, tmp_path: Path) -> None:
    hub.add_commit(REPO, FILES)
    with pytest.raises(RepositoryNotFoundError) as exc:
        hf_hub_download("nobody/nothing", "x", endpoint=hub.endpoint, cache_dir=tmp_path, token=False)
    assert type(exc.value) is RepositoryNotFoundError
    with pytest.raises(RepositoryNotFoundError):
        api(hub).model_info("nobody/nothing")
    with pytest.raises(RevisionNotFoundError):
        dl(hub, "config.json", cache_dir=tmp_path, revision="v9")
    with pytest.raises(RevisionNotFoundError):
        api(hub).model_info(REPO, revision="f" * 40)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO, revision="v9", endpoint=hub.endpoint, cache_dir=tmp_path, token=False)
    with pytest.raises(RemoteEntryNotFoundError):
        dl(hub, "missing.txt", cache_dir=tmp_path)
    assert hub.count() == 6


@pytest.mark.parametrize("status", [401, 403])
def test_gated_status_raises_gated_repo_error(hub: HubServer, tmp_path: Path, status: int) -> None:
    hub.add_commit(REPO, FILES)
    fault = hub.inject(status=status, times=None)
    with pytest.raises(GatedRepoError):
        dl(hub, "config.json", cache_dir=tmp_path)
    with pytest.raises(GatedRepoError):
        api(hub).model_info(REPO)
    with pytest.raises(GatedRepoError):
        snapshot_download(REPO, endpoint=hub.endpoint, cache_dir=tmp_path, token=False)
    assert fault.fired == 3 and [r.status for r in hub.requests] == [status] * 3

    hub.clear_faults()  # once cached under refs/main, a gated answer falls back to the cache silently
    dl(hub, "config.json", cache_dir=tmp_path)
    hub.inject(status=status)
    assert dl(hub, "config.json", cache_dir=tmp_path) == FILES["config.json"]
    assert hub.requests[-1].status == status


def test_require_token(hub: HubServer, tmp_path: Path) -> None:
    hub.add_commit(REPO, FILES)
    hub.inject(require_token="hf_secret", times=None)
    with pytest.raises(GatedRepoError):
        dl(hub, "model.nemo", cache_dir=tmp_path)
    with pytest.raises(HfHubHTTPError) as exc:
        dl(hub, "model.nemo", cache_dir=tmp_path, token="hf_wrong")
    assert not isinstance(exc.value, RepositoryNotFoundError) and exc.value.response.status_code == 401
    with pytest.raises(GatedRepoError):
        api(hub).model_info(REPO)
    assert api(hub, token="hf_secret").model_info(REPO).sha == hub.ref(REPO)

    hub.clear_log()
    assert dl(hub, "model.nemo", cache_dir=tmp_path, token="hf_secret") == FILES["model.nemo"]
    head, blob = hub.requests
    assert head.headers["authorization"] == "Bearer hf_secret"
    assert blob.cdn and "authorization" not in blob.headers  # not forwarded to another origin


# -- faults -------------------------------------------------------------------------------------
def test_dropped_connection_resumes_with_range(hub: HubServer, tmp_path: Path, sleeps: list[float]) -> None:
    hub.add_commit(REPO, {"big.bin": BIG})
    hub.inject(path_contains="/_lfs/", drop_after_bytes=10 * MIB + MIB // 2)
    assert sha256(dl(hub, "big.bin", cache_dir=tmp_path)) == sha256(BIG)
    first, second = (r for r in hub.requests if r.method == "GET")
    assert (first.status, first.body_bytes, "range" in first.headers) == (200, 10 * MIB + MIB // 2, False)
    # the first full 10 MiB chunk was on disk; the buffered half MiB was lost and is fetched again
    assert (second.status, second.headers["range"]) == (206, f"bytes={10 * MIB}-")
    assert second.body_bytes == len(BIG) - 10 * MIB and sleeps == [1]


def test_dropped_connection_below_chunk_size_restarts_from_zero(
    hub: HubServer, tmp_path: Path, sleeps: list[float]
) -> None:
    hub.add_commit(REPO, FILES)
    hub.inject(path_contains="/_lfs/", drop_after_bytes=30_000)
    assert dl(hub, "model.nemo", cache_dir=tmp_path) == FILES["model.nemo"]
    gets = [r for r in hub.requests if r.method == "GET"]
    assert [(r.status, r.body_bytes, r.headers.get("range")) for r in gets] == [
        (200, 30_000, None),
        (200, len(FILES["model.nemo"]), None),
    ]


def test_connection_dropped_every_time_gives_up(hub: HubServer, tmp_path: Path, sleeps: list[float]) -> None:
    hub.add_commit(REPO, FILES)
    hub.inject(path_contains="/_lfs/", drop_after_bytes=100, times=None)
    with pytest.raises(httpx2.RemoteProtocolError):  # raw transport error, not an HfHubHTTPError
        dl(hub, "model.nemo", cache_dir=tmp_path)
    assert hub.count("GET", "/_lfs/") == 6 and sleeps == [1] * 5
    assert not list(tmp_path.rglob("model.nemo")) and not list(tmp_path.rglob("*.incomplete"))


def test_stalled_body_times_out_and_retries(
    hub: HubServer, tmp_path: Path, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_commit(REPO, FILES)
    hub.inject(path_contains="/_lfs/", stall_seconds=0.3, stall_after_bytes=1000)
    assert dl(hub, "model.nemo", cache_dir=tmp_path) == FILES["model.nemo"]  # shorter than the timeout
    assert hub.count("GET", "/_lfs/") == 1

    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.5)  # read at call time (default 10 s)
    hub.inject(path_contains="/_lfs/", stall_seconds=3, stall_after_bytes=1000)
    hub.clear_log()
    assert dl(hub, "sub/big.bin", cache_dir=tmp_path) == FILES["sub/big.bin"]
    gets = [r for r in hub.requests if r.method == "GET"]
    assert len(gets) == 2 and "range" not in gets[1].headers and sleeps == [1]


@pytest.mark.parametrize("name", ["config.json", "model.nemo"])
def test_corrupt_same_size_is_not_detected(hub: HubServer, tmp_path: Path, name: str) -> None:
    sha = hub.add_commit(REPO, FILES)
    hub.inject(method="GET", corrupt_same_size=True)
    got = dl(hub, name, cache_dir=tmp_path)
    assert len(got) == len(FILES[name]) and sha256(got) != sha256(FILES[name])  # accepted as is
    hub.clear_log()
    assert dl(hub, name, cache_dir=tmp_path, revision=sha) == got and hub.requests == []  # and cached


def test_server_errors(hub: HubServer, tmp_path: Path, sleeps: list[float]) -> None:
    hub.add_commit(REPO, FILES)
    hub.inject(method="HEAD", status=500)  # first HEAD without retries, then a second one with them
    assert dl(hub, "model.nemo", cache_dir=tmp_path) == FILES["model.nemo"]
    assert kinds(hub) == [("HEAD", "resolve", 500), ("HEAD", "resolve", 302), ("GET", "lfs", 200)]
    assert sleeps == []

    hub.clear_log()
    hub.inject(method="HEAD", status=503, times=None)
    with pytest.raises(LocalEntryNotFoundError):
        dl(hub, "config.json", cache_dir=tmp_path)
    assert hub.count("HEAD") == 1 + 6 and sleeps == [1, 2, 4, 8, 8]
    hub.clear_faults()

    hub.inject(path_contains="/_lfs/", status=500)  # body GET only retries 408/429
    with pytest.raises(HfHubHTTPError) as exc:
        dl(hub, "sub/big.bin", cache_dir=tmp_path)
    assert exc.value.response.status_code == 500
    hub.inject(path_contains="/api/", status=500)
    with pytest.raises(HfHubHTTPError):
        api(hub).model_info(REPO)
    hub.inject(path_contains="/api/", status=500)
    with pytest.raises(LocalEntryNotFoundError):
        snapshot_download(REPO, endpoint=hub.endpoint, cache_dir=tmp_path / "fresh", token=False)


# -- environment variables ----------------------------------------------------------------------
def test_hf_endpoint_and_offline_env_in_subprocess(hub: HubServer, tmp_path: Path) -> None:
    sha = hub.add_commit(REPO, FILES)
    script = (
        "import json, sys; from huggingface_hub import hf_hub_download, snapshot_download\n"
        "paths = [snapshot_download(sys.argv[1], cache_dir=sys.argv[2]),"
        " hf_hub_download(sys.argv[1], 'model.nemo', revision=sys.argv[3], cache_dir=sys.argv[2])]\n"
        "print(json.dumps(paths))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env |= {"HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1", "HF_HOME": str(tmp_path)}

    def run(offline: str) -> list[str]:
        args = [sys.executable, "-c", script, REPO, str(tmp_path / "c"), sha]
        proc = subprocess.run(args, env={**env, "HF_HUB_OFFLINE": offline}, capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
        return json.loads(proc.stdout)

    snap, nemo = run("0")
    assert (
        Path(nemo).read_bytes() == FILES["model.nemo"]
        and Path(snap, "sub/big.bin").read_bytes() == FILES["sub/big.bin"]
    )
    # telemetry on by default: the first request of the process fetches the agent-harness registry
    assert hub.requests[0].path == "/api/agent-harnesses" and hub.requests[0].status == 404
    assert kinds(hub)[1:3] == [("GET", "info", 200), ("GET", "tree", 200)]
    assert hub.count() == 3 + 2 * len(FILES)  # + HEAD and GET per file; model.nemo by sha: cached
    hub.clear_log()
    assert run("1") == [snap, nemo] and hub.requests == []  # offline: served from refs/main + snapshots


def test_fault_matching_and_counting(hub: HubServer) -> None:
    hub.add_commit(REPO, FILES)
    only_tree = hub.inject(Fault(path_contains="/tree/", status=500, times=2))
    assert raw(hub, "GET", f"/api/models/{REPO}").status == 200
    assert [raw(hub, "GET", f"/api/models/{REPO}/tree/main").status for _ in range(3)] == [500, 500, 200]
    assert only_tree.fired == 2
    assert raw(hub, "POST", f"/{REPO}/resolve/main/config.json").status == 405
    assert raw(hub, "GET", "/nowhere").status == 404
