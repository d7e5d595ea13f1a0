"""Who may connect: the app listens on loopback only, unless the person starting it says otherwise
and guards it (a page password and an API key, or --allow-no-auth on purpose)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class Access:
    """What guards the app: the page's password (user, password) and the API's key, each or None."""

    auth: tuple[str, str] | None
    api_key: str | None


class AccessRefused(ValueError):
    """The command line asks for something the access policy does not allow; the message says what."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """`user:password` as a pair, None for none; AccessRefused for anything else."""
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise AccessRefused("--auth takes user:password.")
    return user, password


def check_exposure(host: str, share: bool, access: Access, allow_no_auth: bool) -> tuple[str, str]:
    """(a warning to print before serving on `host` with `share`, or "";
    why the app must not start, or ""): it must not be reachable from other machines without a
    password and an API key, unless `allow_no_auth` says so on purpose."""
    if is_loopback(host) and not share:
        return "", ""
    warning = f"WARNING: the app will be reachable from other machines ({host}, share={share})."
    if access.auth is None and not allow_no_auth:
        return warning, "add --auth user:password (or --allow-no-auth if you really mean it)."
    if access.api_key is None and not allow_no_auth:
        return warning, "add --api-key KEY for the API under /v1 (or --allow-no-auth if you really mean it)."
    return warning, ""
