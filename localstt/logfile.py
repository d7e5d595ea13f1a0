"""Where the library's messages go: the console lines the user sees, and the log file where an
unexpected error's traceback goes, so that the user sees one sentence.

The library logs through `logging.getLogger(__name__)` and never prints. An entry point calls
`log_to_console()`: INFO lines then go to stdout and warnings to stderr, as the bare message.

The log file: an exception that is not one of the app's own (a LocalSttError already says what to
do) is written with its traceback to ``localstt.log``, and the user gets one sentence naming the
error and the file. The traceback goes only to the file: never to the terminal or the browser.

Where: ``$LOCALSTT_LOG_DIR/localstt.log`` when that variable is set, else ``logs/localstt.log``
beside config.toml. The file is opened on first use (appended to, UTF-8); its folder is made then.
File names and error messages go to the log, transcripts never.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TextIO

from localstt import environment
from localstt.environment import LOG_DIR_ENV

__all__ = ["LOG_DIR_ENV", "log_path", "log_to_console", "report_unexpected"]

LOG_NAME = "localstt.log"
CONSOLE_LOGGER = "localstt"  # the package's loggers are its children
LOGGER_NAME = "localstt.unexpected"  # tracebacks: the log file only (it does not propagate)
_MESSAGE_CHARS = 300  # of the error's own message, in the sentence the user sees

_lock = threading.Lock()


class _LogFileHandler(logging.FileHandler):
    """A FileHandler that remembers a failed write instead of printing "--- Logging error ---"
    with a traceback to stderr (logging's default)."""

    failure: BaseException | None = None

    def take_failure(self) -> BaseException | None:
        """The error that stopped the last write, if any; forgotten once taken."""
        failure, self.failure = self.failure, None
        return failure

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self.failure = sys.exc_info()[1]

    def flush(self) -> None:
        # A full disk often shows only here, when the buffered line is written out.
        try:
            super().flush()
        except OSError as error:
            self.failure = error


class _ConsoleHandler(logging.Handler):
    """INFO to stdout (or stderr, `info_to_stderr`: stdout carries a command's own output), WARNING and
    above to stderr: the streams as they are when a line is written (so a test's captured stdout, or a
    redirected one, gets it)."""

    info_to_stderr = False

    def emit(self, record: logging.LogRecord) -> None:
        to_stderr = record.levelno >= logging.WARNING or self.info_to_stderr
        stream: TextIO = sys.stderr if to_stderr else sys.stdout
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed or broken console never stops the work
            pass


def log_to_console(level: int = logging.INFO, info_to_stderr: bool = False) -> None:
    """Show the library's messages (`localstt.*` loggers) on the console; with `info_to_stderr`, all of
    them on stderr (a command whose stdout is its output: `transcribe --live`). Idempotent."""
    logger = logging.getLogger(CONSOLE_LOGGER)
    logger.setLevel(level)
    _ConsoleHandler.info_to_stderr = info_to_stderr
    with _lock:
        if not any(isinstance(handler, _ConsoleHandler) for handler in logger.handlers):
            handler = _ConsoleHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)


def log_path(config_path: str | os.PathLike[str] | None = None) -> Path:
    """The log file: in $LOCALSTT_LOG_DIR, else in logs/ beside `config_path` (else the working folder)."""
    if (folder := environment.log_dir()) is not None:
        return folder / LOG_NAME
    base = Path(config_path).expanduser().absolute().parent if config_path else Path.cwd()
    return base / "logs" / LOG_NAME


def _handler(path: Path) -> _LogFileHandler:
    """The `localstt` logger's one file handler, for `path` (replacing one for another path)."""
    logger = logging.getLogger(LOGGER_NAME)
    with _lock:
        for handler in logger.handlers:
            if isinstance(handler, _LogFileHandler):
                if Path(handler.baseFilename) == path:
                    return handler
                logger.removeHandler(handler)
                with contextlib.suppress(OSError):  # what it could not write (a full disk) stays unwritten
                    handler.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = _LogFileHandler(path, mode="a", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # the traceback stays in the file, whatever handlers others add
        return handler


def _summary(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return ""
    text = lines[0] + (" ..." if len(lines) > 1 else "")
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 4].rstrip() + " ..."


def report_unexpected(
    error: BaseException, doing: str, config_path: str | os.PathLike[str] | None = None
) -> str:
    """Log `error` with its traceback (`doing`: e.g. "transcribing b.wav with KEY") and return
    the sentence for the user: "unexpected RuntimeError (its message); details are in <log>"."""
    summary = _summary(error)
    what = f"unexpected {type(error).__name__}" + (f" ({summary})" if summary else "")
    path = log_path(config_path)
    try:
        handler = _handler(path)
    except OSError as problem:
        return f"{what}; the log file {path} could not be opened ({problem.strerror or problem})"
    handler.take_failure()  # a failure of an earlier write is not this one's
    logging.getLogger(LOGGER_NAME).error("%s failed", doing, exc_info=error)
    handler.flush()
    if (failure := handler.take_failure()) is not None:
        return f"{what}; the log file {path} could not be written ({failure})"
    return f"{what}; details are in {path}"
