"""Every error the project raises on purpose: one base class, one subclass per kind of trouble.

Each message is one sentence for the person at the keyboard: what is wrong and what to do. Entry
points (the CLI, the web app, the export script) catch `LocalSttError` and show `str(error)`; anything
else is unexpected and goes, with its traceback, to the log file (localstt/logfile.py).

`per_file` says how far an error reaches when many recordings are transcribed in one run:

* per file (AudioError, EngineError): only this recording failed; the others go on.
* the whole run (ConfigError, ExportError, HubError, LoadError, DeviceError): the model or the
  configuration is unusable, so the run stops with this one sentence.

Each subclass keeps the built-in base it always had (ConfigError is a ValueError, LoadError a
RuntimeError, ...), so code that caught those still does.

    LocalSttError
    ├── ConfigError          config.toml is missing, malformed or asks for something impossible
    ├── ExportError          an export is missing, stale or damaged; names the command that fixes it
    │   └── HubError         a hub problem during the export (network, access, revision, disk)
    ├── LoadError            an export that passed its checks still cannot be loaded
    │   └── DeviceError      the device config.toml asks for is not there (no CUDA GPU)
    ├── AudioError           a recording cannot be read                         (per file)
    ├── EngineError          transcription failed in a way the user can act on  (per file)
    ├── LiveError            a live session cannot start or go on (full, too long, ended)  (per session)
    ├── VocabularyError      a phrase or a replacement rule the job was given cannot be used
    ├── LanguageError        a language the model does not transcribe, a translation it does not make
    ├── LibraryError         the library of transcripts cannot be used, or an edit of it cannot be made
    ├── QueueFull            too many requests already wait for the model; try again later
    └── FastPathUnavailable  a fast loader cannot be used here; the plain loader runs instead (never
                             reaches the user)
"""

from __future__ import annotations

from typing import ClassVar


class LocalSttError(Exception):
    """Something the user can act on; the message says what."""

    per_file: ClassVar[bool] = False


class ConfigError(LocalSttError, ValueError):
    """config.toml is missing, malformed or asks for something impossible."""


class ExportError(LocalSttError, RuntimeError):
    """An export is missing, stale or damaged. The message names the command that fixes it."""


class HubError(ExportError):
    """A hub problem, worded for the person running the export."""


class LoadError(LocalSttError, RuntimeError):
    """A model cannot be loaded; the message says why and what to run."""


class DeviceError(LoadError):
    """The device config.toml asks for is not available."""


class AudioError(LocalSttError, ValueError):
    """The recording cannot be read; the message says why and what to do."""

    per_file = True


class EngineError(LocalSttError, RuntimeError):
    """Transcription failed in a way the user can act on; the message says how."""

    per_file = True


class LiveError(LocalSttError):
    """A live session cannot start or go on; the message says why (the others go on)."""

    per_file = True


class VocabularyError(LocalSttError, ValueError):
    """A phrase or a replacement rule cannot be used; the message names it and says what to do."""


class LanguageError(LocalSttError, ValueError):
    """A language the model does not transcribe, or a translation it does not make; the message says
    what it can do instead. `about`: "language" (the spoken one) or "translate_to"."""

    def __init__(self, message: str, about: str = "language") -> None:
        super().__init__(message)
        self.about = about


class LibraryError(LocalSttError):
    """The library of transcripts (localstt/library/) cannot be used, or an edit of it cannot be
    made; the message says why and what to do. Transcription goes on without it."""


class QueueFull(LocalSttError):
    """Too many requests already wait for the model (the API answers 503 with Retry-After)."""


class FastPathUnavailable(LocalSttError):
    """A fast loader cannot be used here; the plain load is used instead (same result)."""
