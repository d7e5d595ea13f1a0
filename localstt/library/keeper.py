"""What the page, the API, live sessions and the command line call to keep a transcript: `Keeper`.

A library that cannot be used (turned off, FTS5 missing, a damaged file, one from a newer version)
never stops a transcription: `keep` then does nothing, and `problem` is the one sentence the page and
the command line show. A failure while keeping one transcript is logged and said in one sentence; the
transcript itself is still delivered. The retention (`keep_days`) runs when the keeper starts and
then once a day, on a background thread that `stop` ends.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from pathlib import Path

import numpy as np
import soundfile as sf

from localstt.audio import decode_audio
from localstt.errors import LibraryError
from localstt.hashing import sha256_file
from localstt.library.database import Library
from localstt.library.settings import LibrarySettings
from localstt.logfile import report_unexpected
from localstt.transcript import Transcript

logger = logging.getLogger(__name__)

DAY_S = 86400.0
SAMPLE_RATE = 16000
OFF = "The library is off (enabled = false under [library] in config.toml): transcripts are not kept."


class Keeper:
    """The library for one process, or the sentence that says why there is none."""

    def __init__(
        self,
        settings: LibrarySettings | None,
        config_path: Path,
        *,
        on: bool | None = None,
        retention_every_s: float = DAY_S,
    ) -> None:
        """`on`: keep or not whatever `settings.enabled` says (the command line's --library)."""
        self.settings = settings
        self.config_path = config_path
        self.library: Library | None = None
        self.problem = ""
        self._retention_every_s = retention_every_s
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        wanted = settings is not None and (settings.enabled if on is None else on)
        if settings is None or not wanted:
            self.problem = OFF
            return
        try:
            self.library = Library(settings)
        except LibraryError as error:
            self.problem = str(error)
            logger.warning("%s", error)
            return
        self.enforce_retention()

    @property
    def available(self) -> bool:
        return self.library is not None

    def status_line(self) -> str:
        """One line for the status panel: where the library is and how to turn it off, or why there is
        none."""
        if self.library is None:
            return self.problem
        audio = " with their recordings" if self.library.settings.keep_audio else ""
        return (
            f"Transcripts are kept{audio} in the library {self.library.path} (the Library tab); "
            "enabled = false under [library] in config.toml turns that off."
        )

    def keep(
        self,
        transcript: Transcript,
        origin: str,
        *,
        source: Path | None = None,
        samples: np.ndarray | None = None,
        sha256: str | None = None,
    ) -> str:
        """Keep `transcript`, made by `origin` from the file `source` or the `samples` (16 kHz mono);
        returns "" or, when it could not be kept, the one sentence that says so (the details in the
        log). With keep_audio the recording is kept too, as the model heard it (16 kHz mono FLAC).
        `sha256`: the file's, when the caller has it already."""
        if self.library is None:
            return ""
        try:
            if samples is not None:
                pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
                self._add(transcript, origin, hashlib.sha256(pcm.tobytes()).hexdigest(), samples)
            else:
                readable = source is not None and source.is_file()
                if sha256 is None:
                    sha256 = sha256_file(source) if source is not None and readable else ""
                audio = None
                if source is not None and readable and self.library.settings.keep_audio:
                    audio = decode_audio(source, None).samples
                self._add(transcript, origin, sha256, audio)
        except LibraryError as error:
            logger.warning("%s", error)
            return f"{transcript.source_name}: not kept in the library: {error}"
        except Exception as error:
            sentence = report_unexpected(error, f"keeping {transcript.source_name}", self.config_path)
            return f"{transcript.source_name}: not kept in the library: {sentence}"
        return ""

    def _add(self, transcript: Transcript, origin: str, sha256: str, samples: np.ndarray | None) -> None:
        """Into the library; with keep_audio, `samples` (16 kHz mono) as a FLAC file beside it."""
        assert self.library is not None
        if not self.library.settings.keep_audio or samples is None or not len(samples):
            self.library.add(transcript, origin, sha256)
            return
        with tempfile.TemporaryDirectory(prefix="localstt-keep-") as folder:
            flac = Path(folder) / "recording.flac"
            sf.write(str(flac), np.clip(samples, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
            self.library.add(transcript, origin, sha256, flac)

    def enforce_retention(self) -> int:
        """Remove what `keep_days` says is too old, and recordings no transcript names; returns how
        many transcripts went."""
        if self.library is None:
            return 0
        removed = 0
        try:
            if self.library.settings.keep_days > 0:
                removed = self.library.remove_older_than(self.library.settings.keep_days)
            self.library.remove_stray_audio()
        except LibraryError as error:
            logger.warning("%s", error)
        except Exception as error:
            report_unexpected(error, "removing old transcripts from the library", self.config_path)
        if removed:
            logger.info(
                "library: %d transcript(s) older than %g days removed",
                removed,
                self.library.settings.keep_days,
            )
        return removed

    def start_retention(self) -> None:
        """Enforce the retention every `retention_every_s` (a day) on a background thread."""
        if self.library is None or self._sweeper is not None:
            return

        def sweep() -> None:
            while not self._stop.wait(self._retention_every_s):
                self.enforce_retention()

        self._sweeper = threading.Thread(target=sweep, name="library-retention", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join()
            self._sweeper = None
