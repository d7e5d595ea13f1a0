"""Run Python code in a child process whose network sockets are blocked, and count every attempt.

    python tests/offline.py SCRIPT.py [ARGS...]

Before SCRIPT runs, every connect() on an internet socket (IPv4/IPv6) raises, and each attempt is
appended to the file named by $OFFLINE_ATTEMPTS_FILE, so a test can assert that none happened.
Unix sockets stay allowed (they never leave the machine).
"""

from __future__ import annotations

import os
import runpy
import socket
import sys

_ATTEMPTS_FILE = os.environ.get("OFFLINE_ATTEMPTS_FILE", "")
_INTERNET = {socket.AF_INET, socket.AF_INET6}
_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex


def _record(what: str) -> None:
    if _ATTEMPTS_FILE:
        with open(_ATTEMPTS_FILE, "a", encoding="utf-8") as handle:
            handle.write(what + "\n")


def _refuse(sock: socket.socket, address: object) -> None:
    _record(f"connect {address!r}")
    raise ConnectionRefusedError(f"network blocked in this test: connect to {address!r}")


def _connect(sock: socket.socket, address: object) -> None:
    if sock.family in _INTERNET:
        _refuse(sock, address)
    _original_connect(sock, address)  # type: ignore[arg-type]


def _connect_ex(sock: socket.socket, address: object) -> int:
    if sock.family in _INTERNET:
        _refuse(sock, address)
    return _original_connect_ex(sock, address)  # type: ignore[arg-type]


def _getaddrinfo(*args: object, **kwargs: object) -> list[object]:
    _record(f"getaddrinfo {args[:2]!r}")
    raise socket.gaierror(socket.EAI_NONAME, "name lookups blocked in this test")


socket.socket.connect = _connect  # type: ignore[method-assign]
socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _getaddrinfo  # type: ignore[assignment]

if __name__ == "__main__":
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
