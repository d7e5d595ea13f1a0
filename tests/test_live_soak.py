"""100 short live sessions one after another on the tiny Parakeet: no thread, open file or memory
left behind by any of them (each is the phrase, 100 ms at a time, then closed)."""

from __future__ import annotations

import gc
import threading

import numpy as np
import psutil
import pytest
import soundfile as sf

from localstt.config import load_config
from localstt.live.service import LiveService
from localstt.store import ModelStore
from testkit.store_env import Project
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
SESSIONS = 100
# Measured here: RSS grows by about 24 MB over the first 50 sessions (torch's and the allocator's
# caches filling), then by 0.5 to 1.3 MB per 50 more; a session that kept its audio (3.4 s, 220 kB)
# would add 22 MB over 100, and NeMo's pipeline built anew for each session left about 100 MB per
# session to the cyclic garbage collector (1.2 to 3.4 GB over 100).
WARM_UP = 50
RSS_BOUND = 8 << 20

pytestmark = pytest.mark.slow


def session(live: LiveService, audio: np.ndarray) -> str:
    opened = live.open("parakeet", lambda event: None)
    for start in range(0, len(audio), 1600):
        live.feed(opened, audio[start : start + 1600])
    return live.close(opened).text


def test_a_hundred_sessions_leave_nothing_behind(exported_project: Project):
    store = ModelStore(load_config(exported_project.config))
    live = LiveService(store, store.config.live)
    audio = np.asarray(sf.read(str(PHRASE_WAV), dtype="float32")[0])
    process = psutil.Process()
    try:
        for _ in range(WARM_UP):  # the model loaded, its decoder built, the caches full
            assert session(live, audio) == PHRASE
        gc.collect()
        threads, files, rss = threading.active_count(), process.num_fds(), process.memory_info().rss
        texts = [session(live, audio) for _ in range(SESSIONS)]
        gc.collect()
        grown = process.memory_info().rss - rss
        assert texts == [PHRASE] * SESSIONS
        assert threading.active_count() == threads
        assert process.num_fds() == files
        assert grown < RSS_BOUND, f"RSS grew by {grown / 1e6:.1f} MB over {SESSIONS} sessions"
        assert live.open_sessions() == 0
    finally:
        live.stop()
