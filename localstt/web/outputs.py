"""What a page job leaves behind, and for how long.

    <Gradio's upload folder>/
    ├── <hash>/meeting.wav            an upload: deleted as soon as the job that used it ends
    └── localstt-out-XXXX/            `JobFolders.root`: the app's outputs (inside the upload folder,
        ├── job-abc123/meeting.srt    so Gradio serves them without a second copy)
        └── job-def456/...            each job's files, deleted `keep_s` after the job ends

A job folder is never swept while its job runs. The sweeper is a background thread that removes old
folders even when no new job comes; `stop()` ends it (the app does at shutdown, tests after each use).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path


def gradio_upload_folder() -> Path:
    """Where Gradio stores uploads (and serves files from): GRADIO_TEMP_DIR, else <tmp>/gradio."""
    from gradio.utils import get_upload_folder  # gradio is heavy: only the page needs it

    return Path(get_upload_folder())


def remove_uploads(paths: Sequence[str], upload_root: Path, keep: Path) -> None:
    """Delete a job's uploaded files, and the per-upload folder Gradio made for each once it is empty.

    Only files inside Gradio's upload folder are touched (the paths come from the client), and never
    the app's own output folder inside it.
    """
    root = Path(os.path.realpath(upload_root))
    for path in paths:
        upload = Path(os.path.abspath(path))
        folder = Path(os.path.realpath(upload.parent))
        if not folder.is_relative_to(root) or folder.is_relative_to(os.path.realpath(keep)):
            continue
        with contextlib.suppress(OSError):
            upload.unlink(missing_ok=True)
        if folder != root:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty


class JobFolders:
    """One folder per page job under `root`, each removed `keep_s` after its job ended."""

    def __init__(self, root: Path, keep_s: float) -> None:
        self.root = root
        self.keep_s = keep_s
        self._running: set[str] = set()  # names of the job folders still being written
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._stop = threading.Event()

    def start_job(self) -> Path:
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)  # a temp-folder cleaner may have removed it
            job_dir = Path(tempfile.mkdtemp(prefix="job-", dir=self.root))
            self._running.add(job_dir.name)
        return job_dir

    def end_job(self, job_dir: Path) -> None:
        with self._lock:
            self._running.discard(job_dir.name)
            with contextlib.suppress(OSError):
                os.utime(job_dir)  # the folder's age counts from the end of its job

    def remove_old(self) -> None:
        """Delete the folders of jobs that ended more than `keep_s` ago (never a running one)."""
        cutoff = time.time() - self.keep_s
        with self._lock:
            for job_dir in self.root.glob("job-*"):
                with contextlib.suppress(OSError):
                    if job_dir.name not in self._running and job_dir.stat().st_mtime < cutoff:
                        shutil.rmtree(job_dir)

    def start_sweeper(self) -> None:
        """One background thread that removes old job folders even when no new job comes."""
        if self._sweeper is not None:
            return
        interval = min(60.0, max(0.5, self.keep_s / 2))

        def sweep() -> None:
            while not self._stop.wait(interval):
                self.remove_old()

        self._sweeper = threading.Thread(target=sweep, name="remove-old-outputs", daemon=True)
        self._sweeper.start()

    def stop(self, remove_all: bool = False) -> None:
        """End the sweeper (waiting for it); with `remove_all`, delete `root` and everything in it."""
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join()
        if remove_all:
            shutil.rmtree(self.root, ignore_errors=True)
