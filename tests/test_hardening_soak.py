"""Soak: 200 transcriptions in a row in one process, through the web app's own job function.

Each round does what one web request does: an upload appears in the upload folder, the job decodes
it, runs the tiny Parakeet, writes TXT and SRT into a job folder, and deletes the upload; old job
folders are deleted as new jobs start. After a warm-up, memory, open file descriptors and files in
the temp, upload and output folders must not grow.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import torch

from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

ROUNDS = 200
WARM_UP = 20
PHRASE = PHRASE_TXT.read_text().strip()


def open_fds(transient: Path) -> int:
    """Open file descriptors, leaving out the listing's own and the old-output sweeper's (it may be
    in the middle of removing a job folder under `transient`)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            continue  # the listing's own descriptor, closed by now
        count += not target.startswith(str(transient))
    return count


def count_files(folder: Path) -> int:
    """Files under `folder`. The app's sweeper thread may be deleting a job folder in it meanwhile:
    os.walk skips a folder that vanishes (its scandir error is ignored), where Path.rglob raises
    FileNotFoundError. Only files being deleted can be missed, so a leak is still counted."""
    return sum(len(files) for _, _, files in os.walk(folder))


def snapshot(temp: Path, uploads: Path, outputs: Path) -> dict[str, int]:
    gc.collect()
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {
        "rss_kb": int(status["VmRSS"].split()[0]),
        "fds": open_fds(outputs),
        "threads": int(status["Threads"]),
        "files": sum(count_files(folder) for folder in (temp, uploads, outputs)),
    }


@pytest.mark.slow  # the soak
def test_two_hundred_transcriptions_do_not_grow_memory_fds_or_files(
    transcription_app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Defence: localstt.web.app.TranscriptionApp.transcribe deletes each upload in a `finally` and
    removes old job folders as jobs start (JobFolders.remove_old), the engine keeps no per-call state,
    decoding closes its files; so RSS grows < 10 % after warm-up and fds and files do not grow."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # everything this process makes goes here
    uploads, outputs = tmp_path / "uploads", tmp_path / "outputs"
    app = transcription_app(keep_outputs_s=0.0)  # over the session's store: the model may be loaded
    assert (app.output_root, app.upload_root) == (outputs, uploads)

    figures: list[dict[str, float]] = []
    # One intra-op thread: on a busy 2-core machine OpenMP's two threads make each call up to 50x
    # slower (they wait for each other); what is measured here does not depend on it.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    try:
        for round_number in range(1, ROUNDS + 1):
            upload = uploads / f"{round_number:040x}" / "phrase.wav"  # as Gradio stores an upload
            upload.parent.mkdir(parents=True)
            shutil.copyfile(PHRASE_WAV, upload)
            text, rows, written, _ = app.transcribe([str(upload)], None, "parakeet", ["txt", "srt"])
            assert text == PHRASE and len(rows) == 1 and len(written) == 2
            assert not upload.exists() and not upload.parent.exists()
            if round_number in (1, WARM_UP, 100, ROUNDS):
                figures.append({"round": round_number, "seconds": round(time.perf_counter() - started, 1)})
                figures[-1] |= snapshot(temp, uploads, outputs)
    finally:
        torch.set_num_threads(threads)
    print("soak:", json.dumps(figures))

    warm, last = figures[1], figures[-1]
    assert last["rss_kb"] < warm["rss_kb"] * 1.10, figures
    assert last["fds"] <= warm["fds"], figures
    assert last["threads"] <= warm["threads"], figures
    assert last["files"] <= 2 and warm["files"] <= 2, figures  # at most the last job's TXT and SRT
