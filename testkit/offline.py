"""Block network access in a Python process, and write down every attempt.

    python testkit/offline.py [--allow-loopback] SCRIPT.py [ARGS...]   # SCRIPT runs blocked
    offline.block_network(allow_loopback=False)                       # this process from now on

Blocked: connect(), connect_ex(), sendto() and sendmsg() to an address on an internet (IPv4/IPv6)
socket, socket.create_connection and socket.getaddrinfo; each raises an OSError. With
allow_loopback, loopback addresses (127.0.0.0/8, ::1, "localhost") still work, and so does
getaddrinfo(None, ...), which never leaves the machine. Unix sockets always work. Each refused
attempt is appended to $OFFLINE_ATTEMPTS_FILE (when set), so a test can assert that none happened.
"""

from __future__ import annotations

import ipaddress
import os
import runpy
import socket
import sys
from typing import Any

_INTERNET = {socket.AF_INET, socket.AF_INET6}
_ORIGINAL_CONNECT = socket.socket.connect
_ORIGINAL_CONNECT_EX = socket.socket.connect_ex
_ORIGINAL_SENDTO = socket.socket.sendto
_ORIGINAL_SENDMSG = socket.socket.sendmsg
_ORIGINAL_CREATE_CONNECTION = socket.create_connection
_ORIGINAL_GETADDRINFO = socket.getaddrinfo


def is_loopback(host: object) -> bool:
    """Whether `host` (a name or address, str or bytes) is "localhost" or a loopback address."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def block_network(allow_loopback: bool = False, attempts_file: str | None = None) -> None:
    """From now on, refuse network access in this process (see the module docstring).

    Attempts go to `attempts_file`, by default $OFFLINE_ATTEMPTS_FILE; calling again replaces
    the earlier settings.
    """
    log = attempts_file if attempts_file is not None else os.environ.get("OFFLINE_ATTEMPTS_FILE", "")

    def allowed(address: object) -> bool:
        return allow_loopback and isinstance(address, tuple) and bool(address) and is_loopback(address[0])

    def refused(what: str) -> str:
        """Write the attempt down; returns the error message."""
        if log:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(what + "\n")
        return f"network blocked in this test: {what}"

    def check(sock: socket.socket, call: str, address: object) -> None:
        if sock.family in _INTERNET and not allowed(address):
            raise ConnectionRefusedError(refused(f"{call} {address!r}"))

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, "connect", address)
        _ORIGINAL_CONNECT(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, "connect_ex", address)
        return _ORIGINAL_CONNECT_EX(sock, address)

    def sendto(sock: socket.socket, data: Any, *flags_and_address: Any) -> int:
        check(sock, "sendto", flags_and_address[-1] if flags_and_address else None)
        return _ORIGINAL_SENDTO(sock, data, *flags_and_address)

    def sendmsg(sock: socket.socket, buffers: Any, *rest: Any) -> int:
        if len(rest) >= 3:  # (ancdata, flags, address): sent to an address, not the connected peer
            check(sock, "sendmsg", rest[2])
        return _ORIGINAL_SENDMSG(sock, buffers, *rest)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if not allowed(address):
            raise ConnectionRefusedError(refused(f"create_connection {address!r}"))
        return _ORIGINAL_CREATE_CONNECTION(address, *args, **kwargs)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if not (allow_loopback and (host is None or is_loopback(host))):
            raise socket.gaierror(socket.EAI_NONAME, refused(f"getaddrinfo {(host, port)!r}"))
        return _ORIGINAL_GETADDRINFO(host, port, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = sendto  # type: ignore[method-assign,assignment]
    socket.socket.sendmsg = sendmsg  # type: ignore[method-assign]
    socket.create_connection = create_connection  # type: ignore[assignment]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def main(argv: list[str]) -> None:
    """``[--allow-loopback] SCRIPT.py [ARGS...]``: run SCRIPT as __main__ with the network blocked."""
    allow_loopback = bool(argv) and argv[0] == "--allow-loopback"
    argv = argv[1:] if allow_loopback else argv
    block_network(allow_loopback=allow_loopback)
    sys.argv = argv
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
