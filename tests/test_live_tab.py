"""The Live tab's handlers, called as Gradio calls them: on a busy machine the microphone's first
pieces reach the server before the page knows its session's key (seen in a fresh clone's run: 31 s
of them), and none of the recording may be lost for it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from localstt.config import load_config
from localstt.web.app import TranscriptionApp
from localstt.web.live_tab import LiveTab
from testkit.store_env import Project
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
BROWSER_RATE = 48000  # what Chromium's microphone gives


def pieces(seconds: float = 0.1) -> list[tuple[int, np.ndarray]]:
    """The phrase, then a second of quiet (the end of speech the decoder waits for), as the browser
    sends it: 48 kHz int16 pieces."""
    speech, rate = sf.read(PHRASE_WAV, dtype="float32")
    audio = soxr.resample(np.concatenate([speech, np.zeros(rate, np.float32)]), rate, BROWSER_RATE)
    samples = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    size = int(BROWSER_RATE * seconds)
    return [(BROWSER_RATE, samples[start : start + size]) for start in range(0, len(samples), size)]


@contextmanager
def live_app(model_store: Any, project: Project, tmp_path: Path) -> Iterator[TranscriptionApp]:
    config = load_config(project.config)
    app = TranscriptionApp(config, tmp_path / "outputs", upload_root=tmp_path / "uploads")
    app.store = model_store
    try:
        yield app
    finally:
        app.close()


def test_pieces_that_come_before_the_page_knows_its_session_are_kept(
    model_store, exported_project: Project, tmp_path: Path
):
    with live_app(model_store, exported_project, tmp_path) as app:
        text, seconds, sent_s = early_and_late(app)
    assert text == PHRASE
    assert abs(seconds - sent_s) < 0.01  # every piece, once


def early_and_late(app: TranscriptionApp) -> tuple[str, float, float]:
    """(the text, the recording's seconds, the seconds sent) of a recording whose first pieces come
    while Record is opening the session, the next ones without the page's key."""
    tab = LiveTab(app)
    page: Any = SimpleNamespace(session_hash="page-1")  # gr.Request: Gradio's handle on the browser page
    audio = pieces()
    early, late, rest = audio[:12], audio[12:20], audio[20:]
    opening = app.live.open

    def slow_open(*args: Any, **kwargs: Any) -> Any:
        # While Record is still opening the session, the stream sends pieces with no key yet.
        for piece in early:
            tab.chunk(piece, None, page)
        return opening(*args, **kwargs)

    app.live.open = slow_open  # type: ignore[method-assign]
    key, _ = tab.start("parakeet", request=page)
    for piece in late:  # the session is open, but the page's state has not caught up: still no key
        tab.chunk(piece, None, page)
    for piece in rest:
        tab.chunk(piece, key, page)
    _, text, _, files = tab.stop(None, ["txt"], False, "", page)  # Stop, too, before the key arrived
    recording = next(Path(f) for f in files if f.endswith(".wav"))
    return text, sf.info(str(recording)).duration, sum(len(piece) for _, piece in audio) / BROWSER_RATE


def test_pieces_after_stop_are_not_taken_into_the_next_recording(
    model_store, exported_project: Project, tmp_path: Path
):
    with live_app(model_store, exported_project, tmp_path) as app:
        text, seconds, sent_s = stop_and_start_again(app)
    assert text == PHRASE
    assert abs(seconds - sent_s) < 0.01  # the second recording only


def stop_and_start_again(app: TranscriptionApp) -> tuple[str, float, float]:
    tab = LiveTab(app)
    page: Any = SimpleNamespace(session_hash="page-2")
    audio = pieces()
    first, _ = tab.start("parakeet", request=page)
    for piece in audio:
        tab.chunk(piece, first, page)
    tab.stop(first, ["txt"], False, "", page)
    for piece in audio[:10]:  # the stream's last pieces, after Stop, with the old key
        tab.chunk(piece, first, page)
    second, _ = tab.start("parakeet", request=page)
    for piece in audio:
        tab.chunk(piece, second, page)
    _, text, _, files = tab.stop(second, ["txt"], False, "", page)
    recording = next(Path(f) for f in files if f.endswith(".wav"))
    return text, sf.info(str(recording)).duration, sum(len(p) for _, p in audio) / BROWSER_RATE
