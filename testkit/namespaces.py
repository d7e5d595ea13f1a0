"""Unprivileged user namespaces (`unshare --map-root-user`), for the tests that mount a small tmpfs
or take a private network: probed once per kind, and such a test is skipped only where the kernel
refuses them (e.g. "unshare: unshare failed: Operation not permitted" under a container's seccomp
profile, kernel.unprivileged_userns_clone=0, user.max_user_namespaces=0 or AppArmor's
restrict_unprivileged_userns). Anywhere they work, the tests run."""

from __future__ import annotations

import functools
import subprocess

import pytest

# What unshare(1) prints when the kernel says no: EPERM, EACCES, ENOSPC (max_user_namespaces = 0).
REFUSALS = ("Operation not permitted", "Permission denied", "No space left on device")


@functools.cache
def refusal(kind: str) -> str | None:
    """unshare's error where the kernel refuses `unshare --map-root-user --<kind> true`, else None
    (also for any other failure, which the test itself then shows)."""
    try:
        result = subprocess.run(
            ["unshare", "--map-root-user", f"--{kind}", "true"], capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        return None  # no unshare(1) at all: not the kernel's refusal; the test fails and says so
    message = result.stderr.strip()
    if result.returncode != 0 and any(text in message for text in REFUSALS):
        return message
    return None


def require_user_namespace(kind: str) -> None:
    """Skip the calling test where the kernel refuses an unprivileged user namespace with `--<kind>`
    (mount, net); do nothing where it allows one."""
    reason = refusal(kind)
    if reason is not None:
        pytest.skip(
            f"this kernel refuses unprivileged user namespaces (`unshare --map-root-user --{kind} true`: "
            f"{reason})"
        )
