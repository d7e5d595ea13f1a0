"""Hugging Face Hub-compatible HTTP server for tests (127.0.0.1 only, one thread per request).

Serves what huggingface_hub 2.4 uses to download model repos (checked against its source):

* ``GET  /api/models/{repo}[/revision/{rev}]``    model info, ``sha``, ``siblings`` (``?blobs=true``: + LFS)
* ``GET  /api/models/{repo}/tree/{rev}[/{path}]`` listing (``recursive``, ``expand``, paging via ``Link``)
* ``POST /api/models/{repo}/paths-info/{rev}``    form body ``paths=..&paths=..&expand=..``
* ``HEAD|GET /{repo}/resolve/{rev}/{path}``       small file: 200, ETag = git blob sha1; LFS file: 302 to blob
* ``HEAD|GET /_lfs/{commit}/{sha256}``            LFS blob, ETag = sha256

Every file response carries ``X-Repo-Commit`` and honours ``Range`` (206 + ``Content-Range``; 416).
Errors use the ``X-Error-Code`` values that ``hf_raise_for_status`` maps: ``RepoNotFound``,
``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``. Xet is never advertised.

LFS blobs are served from a second listener (another port, hence another origin, like the real CDN):
the client then takes file metadata from the 302 itself and does not forward ``Authorization``.
``lfs_same_origin=True`` redirects to the hub port instead, and the client follows the HEAD redirect.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

_FLIP = bytes(255 - b for b in range(256))  # bytes.translate table: b -> b ^ 0xFF
_DATE = "2025-01-01T00:00:00.000Z"
_REPO = r"(?P<repo>[^/]+(?:/[^/]+)?)"
_ROUTES: list[tuple[str, str, re.Pattern[str]]] = [  # (name, allowed methods, path pattern)
    ("info", "GET", re.compile(rf"^/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?$")),
    ("tree", "GET", re.compile(rf"^/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?$")),
    ("paths", "POST", re.compile(rf"^/api/models/{_REPO}/paths-info/(?P<rev>[^/]+)$")),
    ("resolve", "HEAD GET", re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")),
    ("blob", "HEAD GET", re.compile(r"^/_lfs/(?P<commit>[0-9a-f]{40})/(?P<oid>[0-9a-f]{64})$")),
]

Response = tuple[int, dict[str, str], bytes]


def git_blob_sha1(data: bytes) -> str:
    """Git object id of a blob: ``sha1(b"blob <len>\\0" + data)``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class HubFile:
    """One file of a commit, with the hashes the Hub advertises for it."""

    data: bytes
    lfs: bool
    sha256: str
    blob_id: str  # git oid of the content, or of the LFS pointer file for LFS files
    pointer_size: int  # size of the LFS pointer file (0 for regular files)

    @classmethod
    def make(cls, data: bytes, lfs: bool) -> HubFile:
        sha256 = hashlib.sha256(data).hexdigest()
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n"
        stored = pointer.encode() if lfs else data
        return cls(data, lfs, sha256, git_blob_sha1(stored), len(pointer) if lfs else 0)


@dataclass
class HubRepo:
    """A model repo: immutable commits (sha -> path -> file) and movable refs (branch -> sha)."""

    repo_id: str
    commits: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """A misbehaviour applied to matching requests, at most ``times`` times (``None``: forever).

    Matching: ``method`` (if set) and ``path_contains`` (substring of the URL path, if set).
    Pre-response faults (answer instead of the real handler): ``status`` (with ``X-Error-Code``
    ``error_code``; 401/403 default to ``GatedRepo``, pass ``""`` for none) and ``require_token``
    (401 unless ``Authorization: Bearer <token>``; never applied to ``/_lfs/`` blobs, which act like
    signed CDN URLs). Body faults (only on GET responses with a non-empty 2xx body):
    ``drop_after_bytes`` (send headers + N bytes, then close the socket), ``stall_seconds`` (send
    ``stall_after_bytes`` bytes, sleep, send the rest; ``release()`` ends every stall of this fault at
    once, the ones to come included) and ``corrupt_same_size`` (invert every byte).
    ``fired`` counts how often the fault was applied.
    """

    path_contains: str | None = None
    method: str | None = None
    times: int | None = 1
    status: int | None = None
    error_code: str | None = None
    require_token: str | None = None
    drop_after_bytes: int | None = None
    stall_seconds: float = 0.0
    stall_after_bytes: int = 0
    corrupt_same_size: bool = False
    fired: int = 0
    released: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def is_body_fault(self) -> bool:
        return self.status is None and self.require_token is None

    def release(self) -> None:
        """End this fault's stalls now, and make its later stalls end at once."""
        self.released.set()


@dataclass
class RequestRecord:
    """One served request. ``body_bytes``: response body bytes written to the socket (what was
    planned, until a client that went away says otherwise); ``sent``: the body bytes written so far,
    updated while the body is being written (a stalled body shows the bytes before its stall)."""

    method: str
    path: str  # URL path, still percent-encoded
    query: str
    status: int
    body_bytes: int
    headers: dict[str, str]  # request headers, lower-cased names
    cdn: bool  # served by the LFS blob listener
    sent: int = 0


class _HttpError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.response = _error(status, code, message, headers)


def _error(status: int, code: str | None, message: str, headers: Mapping[str, str] | None = None) -> Response:
    hdrs = {"Content-Type": "application/json", "X-Error-Message": message, **(headers or {})}
    if code:
        hdrs["X-Error-Code"] = code
    return status, hdrs, json.dumps({"error": message}).encode()


def _content(data: bytes, etag: str, headers: dict[str, str], range_header: str | None) -> Response:
    """200 with the whole body, or 206/416 for a single ``bytes=a-b`` / ``a-`` / ``-n`` range."""
    hdrs = {**headers, "ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
    if not range_header:
        return 200, hdrs, data
    size = len(data)
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", range_header)
    if m and (m[1] or m[2]):
        start = int(m[1]) if m[1] else max(size - int(m[2]), 0)
        end = min(int(m[2]), size - 1) if m[1] and m[2] else size - 1
        if start <= end:
            return 206, {**hdrs, "Content-Range": f"bytes {start}-{end}/{size}"}, data[start : end + 1]
    return 416, {**hdrs, "Content-Range": f"bytes */{size}"}, b""


class HubServer:
    """In-memory Hub. Use :func:`run_hub`, or ``start()``/``stop()``; state is safe to mutate live."""

    def __init__(
        self, *, lfs_threshold: int = 1024, lfs_same_origin: bool = False, tree_page_size: int = 1000
    ) -> None:
        self.lfs_threshold = lfs_threshold  # files strictly larger are served LFS-style
        self.lfs_same_origin = lfs_same_origin
        self.tree_page_size = tree_page_size
        self.repos: dict[str, HubRepo] = {}
        self.faults: list[Fault] = []
        self._blobs: dict[str, bytes] = {}
        self._log: list[RequestRecord] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._servers = [self._make_server(cdn=False), self._make_server(cdn=True)]
        self.endpoint = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn_endpoint = f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def _make_server(self, *, cdn: bool) -> ThreadingHTTPServer:
        handler = type("_BoundHandler", (_Handler,), {"hub": self, "cdn": cdn})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.block_on_close = False  # keep-alive connections of the shared client never end
        return server

    def start(self) -> None:
        for server in self._servers:
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()  # wakes stalled responses
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def add_commit(self, repo_id: str, files: Mapping[str, bytes], *, move_main: bool = True) -> str:
        """Add a commit holding exactly ``files``; returns its 40-hex sha. The first commit of a
        repo (which creates it) always becomes ``main``; later ones only if ``move_main``."""
        entries = {p.strip("/"): HubFile.make(d, len(d) > self.lfs_threshold) for p, d in files.items()}
        with self._lock:
            repo = self.repos.setdefault(repo_id, HubRepo(repo_id))
            digest = hashlib.sha1(f"{repo_id}\n{repo.refs.get('main', '')}\n{len(repo.commits)}\n".encode())
            for path in sorted(entries):
                digest.update(f"{path}\0{entries[path].blob_id}\n".encode())
            sha = digest.hexdigest()
            repo.commits[sha] = entries
            self._blobs.update({f.sha256: f.data for f in entries.values() if f.lfs})
            if move_main or "main" not in repo.refs:
                repo.refs["main"] = sha
        return sha

    def set_ref(self, repo_id: str, sha: str, ref: str = "main") -> None:
        """Point branch ``ref`` of ``repo_id`` at existing commit ``sha``."""
        with self._lock:
            repo = self.repos[repo_id]
            if sha not in repo.commits:
                raise KeyError(f"unknown commit {sha} in {repo_id}")
            repo.refs[ref] = sha

    def ref(self, repo_id: str, ref: str = "main") -> str:
        with self._lock:
            return self.repos[repo_id].refs[ref]

    def files(self, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        """Contents of a commit (by sha or ref), e.g. to build the next commit from it."""
        repo, sha = self._resolve(repo_id, rev)
        return {path: f.data for path, f in repo.commits[sha].items()}

    def inject(self, fault: Fault | None = None, **kwargs: object) -> Fault:
        """Register ``fault`` (or ``Fault(**kwargs)``); faults are checked in injection order."""
        fault = fault if fault is not None else Fault(**kwargs)  # type: ignore[arg-type]
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Forget every fault; stalls still in progress end now (a killed client's among them)."""
        with self._lock:
            for fault in self.faults:
                fault.release()
            self.faults.clear()

    def _take_fault(self, method: str, path: str, auth: str | None, *, body: bool) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if (f.times is not None and f.fired >= f.times) or f.is_body_fault != body:
                    continue
                if (f.method and f.method != method) or (f.path_contains and f.path_contains not in path):
                    continue
                if f.require_token is not None and (
                    path.startswith("/_lfs/") or auth == f"Bearer {f.require_token}"
                ):
                    continue
                f.fired += 1
                return f
        return None

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        """Logged requests with this method and/or a path containing ``path_contains``."""
        match = [r for r in self.requests if method in (None, r.method) and (path_contains or "") in r.path]
        return len(match)

    def served(self, path_contains: str, at_least: int) -> bool:
        """Whether one GET of a path containing `path_contains` has written `at_least` body bytes
        so far (a stalled body counts the bytes before its stall)."""
        return any(
            r.method == "GET" and path_contains in r.path and r.sent >= at_least for r in self.requests
        )

    @property
    def bytes_sent(self) -> int:
        return sum(r.body_bytes for r in self.requests)

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._log.append(record)

    def _resolve(self, repo_id: str, rev: str) -> tuple[HubRepo, str]:
        with self._lock:
            repo = self.repos.get(repo_id)
            if repo is None:
                raise _HttpError(404, "RepoNotFound", "Repository not found")
            sha = repo.refs.get(rev) or (rev if rev in repo.commits else None)
        if sha is None:
            raise _HttpError(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return repo, sha

    def dispatch(
        self, method: str, path: str, query: str, headers: Message, body: bytes, cdn: bool
    ) -> Response:
        """Answer one request (without faults): ``(status, headers, body)``."""
        for name, methods, pattern in _ROUTES:
            m = pattern.match(path)
            if m is None or (cdn and name != "blob"):
                continue
            if method not in methods.split():
                return _error(405, None, f"{method} not allowed")
            g = {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
            params = {k: v[-1] for k, v in parse_qs(query).items()}
            try:
                if name == "blob":
                    data = self._blobs.get(g["oid"])
                    if data is None:
                        return _error(404, None, "Blob not found")
                    return _content(
                        data, f'"{g["oid"]}"', {"X-Repo-Commit": g["commit"]}, headers.get("Range")
                    )
                repo, sha = self._resolve(g["repo"], g.get("rev", "main"))
                files = repo.commits[sha]
                if name == "info":
                    return self._info(repo.repo_id, sha, files, params.get("blobs") == "true")
                if name == "resolve":
                    return self._resolve_file(sha, files, g["path"], g["rev"], headers.get("Range"))
                if name == "paths":
                    form = parse_qs(body.decode())
                    expand = form.get("expand", ["false"])[-1] == "true"
                    items = [self._entry(sha, files, p.strip("/"), expand) for p in form.get("paths", [])]
                    return _json([e for e in items if e is not None])
                return self._tree(path, sha, files, g.get("path", "").strip("/"), params)
            except _HttpError as e:
                return e.response
        return _error(404, None, f"No route for {method} {path}")

    def _info(self, repo_id: str, sha: str, files: dict[str, HubFile], blobs: bool) -> Response:
        siblings: list[dict[str, object]] = []
        for path, f in sorted(files.items()):
            sib: dict[str, object] = {"rfilename": path}
            if blobs:
                sib |= {"size": len(f.data), "blobId": f.blob_id}
                if f.lfs:
                    sib["lfs"] = {"sha256": f.sha256, "size": len(f.data), "pointerSize": f.pointer_size}
            siblings.append(sib)
        info = {"_id": sha[:24], "id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0]}
        info |= {"sha": sha, "private": False, "gated": False, "disabled": False, "downloads": 0}
        info |= {"likes": 0, "tags": [], "lastModified": _DATE, "createdAt": _DATE, "siblings": siblings}
        return _json(info)

    def _resolve_file(
        self, sha: str, files: dict[str, HubFile], path: str, rev: str, range_header: str | None
    ) -> Response:
        f = files.get(path)
        if f is None:
            raise _HttpError(
                404, "EntryNotFound", f'{path} does not exist on "{rev}"', {"X-Repo-Commit": sha}
            )
        headers = {"X-Repo-Commit": sha}
        if not f.lfs:
            return _content(f.data, f'"{f.blob_id}"', headers, range_header)
        base = self.endpoint if self.lfs_same_origin else self.cdn_endpoint
        headers |= {"Location": f"{base}/_lfs/{sha}/{f.sha256}", "ETag": f'"{f.sha256}"'}
        headers |= {"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(len(f.data))}
        return 302, headers, b""

    def _entry(
        self, sha: str, files: dict[str, HubFile], path: str, expand: bool
    ) -> dict[str, object] | None:
        """Tree/paths-info entry for a file or directory, ``None`` if ``path`` does not exist."""
        if path in files:
            f = files[path]
            entry: dict[str, object] = {"type": "file", "oid": f.blob_id, "size": len(f.data), "path": path}
            if f.lfs:
                entry["lfs"] = {"oid": f.sha256, "size": len(f.data), "pointerSize": f.pointer_size}
        elif path and any(p.startswith(path + "/") for p in files):
            oid = hashlib.sha1(f"tree {sha} {path}".encode()).hexdigest()
            entry = {"type": "directory", "oid": oid, "size": 0, "path": path}
        else:
            return None
        if expand:
            entry["lastCommit"] = {"id": sha, "title": f"Commit {sha[:8]}", "date": _DATE}
        return entry

    def _tree(
        self, url_path: str, sha: str, files: dict[str, HubFile], sub: str, params: dict[str, str]
    ) -> Response:
        recursive, expand = params.get("recursive") == "true", params.get("expand") == "true"
        prefix = f"{sub}/" if sub else ""
        if sub and not any(p.startswith(prefix) for p in files):
            raise _HttpError(404, "EntryNotFound", f"{sub} does not exist")
        paths: set[str] = set()
        for p in files:
            if p.startswith(prefix):
                parts = p[len(prefix) :].split("/")
                depth = len(parts) if recursive else 1
                paths.update(prefix + "/".join(parts[:i]) for i in range(1, min(depth, len(parts)) + 1))
        entries = [e for p in sorted(paths) if (e := self._entry(sha, files, p, expand)) is not None]
        entries.sort(key=lambda e: e["type"] != "directory")  # stable: folders first, then files
        start, size = int(params.get("cursor", "0")), self.tree_page_size
        headers: dict[str, str] = {}
        if start + size < len(entries):  # same query, next cursor
            next_query = urlencode({**params, "cursor": start + size})
            headers["Link"] = f'<{self.endpoint}{url_path}?{next_query}>; rel="next"'
        return _json(entries[start : start + size], headers)


def _json(obj: object, headers: Mapping[str, str] | None = None) -> Response:
    return 200, {"Content-Type": "application/json", **(headers or {})}, json.dumps(obj).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real Hub; every response has Content-Length
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    hub: HubServer
    cdn: bool

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet; the hub keeps its own log

    def do_GET(self) -> None:
        hub, method = self.hub, self.command
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = hub._take_fault(method, url.path, self.headers.get("Authorization"), body=False)
        if fault is None:
            status, headers, payload = hub.dispatch(method, url.path, url.query, self.headers, body, self.cdn)
        elif fault.require_token is not None and self.headers.get("Authorization"):
            status, headers, payload = _error(401, None, "Invalid credentials in Authorization header")
        elif fault.require_token is not None:  # what the Hub answers for a gated repo without a token
            status, headers, payload = _error(401, "GatedRepo", "You must be authenticated to access it.")
        else:
            assert fault.status is not None
            code = (
                "GatedRepo" if fault.error_code is None and fault.status in (401, 403) else fault.error_code
            )
            status, headers, payload = _error(fault.status, code, f"Injected HTTP {fault.status}")
        body_fault = None
        if method == "GET" and payload and 200 <= status < 300:
            body_fault = hub._take_fault(method, url.path, None, body=True)
        planned = 0 if method == "HEAD" else len(payload)
        if body_fault is not None and body_fault.drop_after_bytes is not None:
            planned = min(planned, body_fault.drop_after_bytes)
        # Logged before the response completes, so a client that has it also sees it in the log.
        hdrs = {k.lower(): v for k, v in self.headers.items()}
        record = RequestRecord(method, url.path, url.query, status, planned, hdrs, self.cdn)
        hub._record(record)
        self._sent = 0
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if method != "HEAD":
                self._write_body(payload, body_fault, record)
        except OSError:  # client went away (e.g. after its read timeout): log what was written
            self.close_connection = True
            record.body_bytes = self._sent

    do_HEAD = do_POST = do_GET

    def _write_body(self, payload: bytes, fault: Fault | None, record: RequestRecord) -> None:
        """Write the body, applying a body fault; ``self._sent`` and ``record.sent`` track bytes written."""
        end, pause = len(payload), 0
        if fault is not None:
            if fault.corrupt_same_size:
                payload = payload.translate(_FLIP)
            if fault.drop_after_bytes is not None:
                end = min(end, fault.drop_after_bytes)
            if fault.stall_seconds:
                pause = min(fault.stall_after_bytes, end)
                self.wfile.write(payload[:pause])
                self._sent = record.sent = pause
                self._stall(fault)
        self.wfile.write(payload[pause:end])
        self._sent = record.sent = end
        if end < len(payload):  # drop: the client sees EOF before Content-Length bytes
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def _stall(self, fault: Fault) -> None:
        """Wait `fault.stall_seconds`, or less: until the fault is released or the hub stops."""
        deadline = time.monotonic() + fault.stall_seconds
        while not (fault.released.is_set() or self.hub._stopping.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            fault.released.wait(min(left, 0.05))


@contextmanager
def run_hub(
    *, lfs_threshold: int = 1024, lfs_same_origin: bool = False, tree_page_size: int = 1000
) -> Iterator[HubServer]:
    """Start a :class:`HubServer` on 127.0.0.1 (random ports), stop it on exit."""
    hub = HubServer(
        lfs_threshold=lfs_threshold, lfs_same_origin=lfs_same_origin, tree_page_size=tree_page_size
    )
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
