"""What Windows does differently from Linux and macOS, handled in one place.

* A file is replaced (`os.replace`) while another program reads it: Windows refuses with a sharing
  violation (WinError 32) or "access denied" (WinError 5), often for a moment only (an antivirus
  scanning a file that was just written). `replace_with_retry` retries those refusals with a short
  backoff; on Linux and macOS nothing is retried (there a PermissionError is lasting). Every file the
  app writes whole (manifests, stamps, config.toml's pins) goes through `atomic_write_text`.
* A folder is renamed: Windows never renames a folder over an existing one (POSIX only over an empty
  one), and refuses to rename a folder while any file in it is open or memory-mapped (a running app
  maps the model files it loaded). `move_folder` never relies on replacing a folder, retries brief
  refusals, and raises; `is_sharing_violation` tells the caller to say "close the app first".
* Hard links are missing on FAT32/exFAT and on many network shares, and never cross devices: callers
  catch `LINK_ERRORS` and copy, or create the file exclusively (`write_new_file`).
* File names: CON, PRN, AUX, NUL, COM0-9, LPT0-9 (with any extension, any case, trailing dots or
  spaces) name devices, not files, on Windows. `safe_file_stem` renames them on every platform, so
  an output folder written on Linux can be copied to Windows.
* Paths of 260 characters or more fail on Windows unless long paths are enabled (`long_path_problem`).

`IS_WINDOWS` is read at call time everywhere, so tests set it to run the Windows branches on Linux.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

IS_WINDOWS = os.name == "nt"
# ERROR_ACCESS_DENIED, ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION: "another program has it open".
SHARING_WINERRORS = frozenset({5, 32, 33})
REPLACE_RETRY_DELAYS_S = (0.05, 0.1, 0.2, 0.4, 0.8)  # about 1.5 s in all, then the error stands
# os.link: no hard links on this file system (FAT32, exFAT, SMB/NFS shares), or across devices.
LINK_ERRORS = (OSError, NotImplementedError)
WINDOWS_MAX_PATH = 259  # MAX_PATH (260) less the terminating NUL
MAX_STEM_BYTES = 200  # a name is at most 255 bytes (Linux, UTF-8) or 255 UTF-16 units (Windows)
RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{digit}" for port in ("COM", "LPT") for digit in (*"0123456789", "¹", "²", "³")}
)

_sleep: Callable[[float], None] = time.sleep  # tests record the delays instead of sleeping


def is_sharing_violation(error: BaseException) -> bool:
    """True for Windows refusing because a program has the file, or a file in the folder, open."""
    if not IS_WINDOWS or not isinstance(error, OSError):
        return False
    winerror = getattr(error, "winerror", None)
    if winerror is not None:
        return winerror in SHARING_WINERRORS
    return isinstance(error, PermissionError)


def replace_with_retry(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    delays: Sequence[float] = REPLACE_RETRY_DELAYS_S,
) -> None:
    """`os.replace(source, target)`, retrying Windows' sharing refusals (see `is_sharing_violation`)
    after each of `delays`; the last refusal, and every other error, is raised as it is."""
    for delay in (*delays, None):
        try:
            os.replace(source, target)
            return
        except OSError as error:
            if delay is None or not is_sharing_violation(error):
                raise
            logger.debug("replacing %s refused (%s); retrying in %.2f s", target, error, delay)
            _sleep(delay)


def write_temporary(beside: Path, data: bytes) -> Path:
    """`data` in a new hidden file with a unique name next to `beside`, flushed to the disk; the
    caller moves it into place or removes it. Created exclusively, with the usual permissions."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = beside.with_name(f".{beside.name}.{secrets.token_hex(4)}.tmp")
        try:
            descriptor = os.open(temporary, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temp file beside `path` and rename it over `path` (retried while Windows
    refuses because a reader has `path` open). "\n" is written as is on every OS, so the bytes do not
    depend on where they were written."""
    temporary = write_temporary(path, text.encode("utf-8"))
    try:
        replace_with_retry(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def move_folder(source: Path, target: Path, delays: Sequence[float] = REPLACE_RETRY_DELAYS_S) -> None:
    """Rename folder `source` to `target`, which must not exist (FileExistsError otherwise).

    Replacing a folder is never relied on: Windows refuses it always and POSIX unless it is empty.
    A Windows refusal because a file inside is open is retried briefly, then raised (callers test it
    with `is_sharing_violation`); `source` is then left exactly as it was.
    """
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "A folder is already there", str(target))
    replace_with_retry(source, target, delays)


def free_name(folder: Path) -> Path:
    """`folder`, or `folder.1`, `folder.2`... the first that does not exist."""
    candidate, number = folder, 0
    while os.path.lexists(candidate):
        number += 1
        candidate = folder.with_name(f"{folder.name}.{number}")
    return candidate


def link_or_copy(source: Path, target: Path) -> bool:
    """Hard-link `source` at `target`, or copy it where links are refused. True when linked."""
    try:
        os.link(source, target)
        return True
    except FileExistsError:
        raise
    except LINK_ERRORS as error:
        logger.debug("no hard link for %s (%s); copying", target, error)
    shutil.copy2(source, target)
    return False


def write_new_file(temporary: Path, target: Path, data: bytes) -> None:
    """Put `data` (already complete in `temporary`) at `target`, never replacing a file already there.

    A hard link publishes the whole file at once; where the file system has none, `target` is
    created exclusively (O_EXCL, CREATE_NEW on Windows) and written, so a file that appeared in the
    meantime is still never overwritten. FileExistsError when `target` exists.
    """
    try:
        os.link(temporary, target)
        return
    except FileExistsError:
        raise
    except LINK_ERRORS as error:
        logger.debug("no hard link for %s (%s); creating it exclusively", target, error)
    with open(target, "xb") as handle:
        try:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            handle.close()
            target.unlink(missing_ok=True)
            raise


def safe_file_stem(stem: str, fallback: str = "transcript") -> str:
    """`stem` usable as a file name on Windows, macOS and Linux alike.

    Control characters and <>:"/\\|?* become "_"; leading/trailing dots and spaces go; a reserved
    device name (CON, nul, COM1, LPT9, AUX..., also as the part before the first dot, as in
    "con.backup") gets "_" appended to that part ("CON_", "con_.backup"); the result is cut to
    MAX_STEM_BYTES of UTF-8 so that "<stem>-<n>.<ext>" and a temp name beside it still fit.
    """
    safe = re.sub(r'[\x00-\x1f<>:"/\\|?*]', "_", stem).strip(" .") or fallback
    head, dot, tail = safe.partition(".")
    if head.rstrip(" .").upper() in RESERVED_NAMES:
        safe = f"{head.rstrip(' ')}_{dot}{tail}"
    encoded = safe.encode("utf-8")
    if len(encoded) > MAX_STEM_BYTES:
        safe = encoded[:MAX_STEM_BYTES].decode("utf-8", errors="ignore").rstrip(" .") or fallback
    return safe


def _long_paths_enabled() -> bool:
    """Windows 10+ with LongPathsEnabled set (python.exe itself declares it is long-path aware)."""
    if sys.platform == "win32":
        import winreg  # Windows only

        try:
            with winreg.OpenKey(
                winreg.HKEY_LOCAL_MACHINE, r"SYSTEM\CurrentControlSet\Control\FileSystem"
            ) as key:
                return bool(winreg.QueryValueEx(key, "LongPathsEnabled")[0])
        except OSError:
            return False
    return False


def long_path_problem(paths: Iterable[str | os.PathLike[str]]) -> str | None:
    """On Windows without long paths: why the longest of `paths` cannot be used, else None."""
    if not IS_WINDOWS:
        return None
    longest = max((os.path.abspath(p) for p in paths), key=len, default="")
    if len(longest) <= WINDOWS_MAX_PATH or _long_paths_enabled():
        return None
    return (
        f"{longest} would be {len(longest)} characters long, over Windows' limit of {WINDOWS_MAX_PATH}: "
        "set models_dir in config.toml to a shorter folder (for example C:\\models), or enable long "
        "paths (LongPathsEnabled, see Microsoft's 'Maximum Path Length Limitation'), then run the same "
        "command again"
    )


def interrupt_on_ctrl_break() -> None:
    """On Windows, make Ctrl-Break end the program like Ctrl-C (KeyboardInterrupt), not kill it."""
    ctrl_break = getattr(signal, "SIGBREAK", None)
    if ctrl_break is not None:
        signal.signal(ctrl_break, signal.default_int_handler)
