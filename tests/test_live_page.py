"""The page's Live tab in real headless Chromium, its microphone a fake one that plays the phrase's
WAV (`--use-file-for-fake-audio-capture`): the words appear while it plays, and after Stop the
transcript, the segments table and the files (with the recording) are there."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from openai import OpenAI

from testkit.app import RunningApp, launch_app
from testkit.store_env import Project
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WAIT_MS = 120_000
STREAM_START_S = 20.0  # the page's stream starts well within this after Record (under a second here)
LIVE_TABLE = """[live]
chunk_seconds = 0.8
left_seconds = 9.6
right_seconds = 1.6
endpoint_ms = 800
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(exported_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    text = exported_project.config.read_text(encoding="utf-8")
    text = re.sub(r"^\[live\]\n(?:(?!\[).*\n)*", LIVE_TABLE + "\n", text, flags=re.M)
    config = exported_project.root / "live-page.toml"
    config.write_text(text, encoding="utf-8")
    with launch_app(exported_project, tmp_path_factory.mktemp("live-page"), config=config) as running:
        yield running


def microphone_wav(folder: Path) -> Path:
    """The phrase with a second of quiet before it and a pause after it (longer than the endpointing's
    800 ms), as the fake microphone plays it, over and over: a capture that starts late, or a beat
    lost on a busy machine, costs a repetition, never the test."""
    phrase, rate = sf.read(str(PHRASE_WAV), dtype="int16")
    quiet = np.zeros(rate, dtype=np.int16)
    path = folder / "microphone.wav"
    sf.write(str(path), np.concatenate([quiet, phrase, quiet, quiet[: rate // 2]]), rate, subtype="PCM_16")
    return path


def chromium_with_a_microphone(playwright: Any, wav: Path) -> Any:
    """Debian's chromium, headless, asking nothing of the network, its microphone playing `wav` in a
    loop."""
    assert os.path.exists(CHROMIUM), "chromium is installed by scripts/test.sh"
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
        ],
    )


def watch_until_final(page: Any, text: str) -> list[str]:
    """Look at the live view every 50 ms until its final part holds `text`; the style of each partial
    (grey) text seen on the way."""
    deadline = time.monotonic() + WAIT_MS / 1000
    greys: list[str] = []
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        seen = page.evaluate(
            """() => {
                const view = document.querySelector('#live-view');
                const partial = view && view.querySelector('.live-partial');
                const final = view && view.querySelector('.live-final');
                return {partial: partial ? [partial.textContent, partial.getAttribute('style')] : null,
                        final: final ? final.textContent : ''};
            }"""
        )
        if seen["partial"] and seen["partial"][0].strip():
            greys.append(seen["partial"][1])
        if text in seen["final"]:
            return greys
        time.sleep(0.05)
    pytest.fail(
        f"the live view never showed {text!r} as final within {WAIT_MS / 1000:.0f} s; it showed {seen}"
    )


def record_until_it_streams(page: Any, microphone: Any, joins: list[str]) -> None:
    """Press Record; if the page never starts its stream (no queued call at all, so not one piece
    reaches the app), Stop and Record once more. Headless Chromium's fake microphone does that now
    and then (start_recording reaches the app, then nothing), also before the Live tab's fixes; a
    stream that starts and whose text never comes still fails the test."""
    for attempt in range(2):
        microphone.get_by_role("button", name="Record").click()
        deadline = time.monotonic() + STREAM_START_S
        while not joins and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        if joins:
            return
        print(f"the page sent no piece within {STREAM_START_S:g} s of Record (try {attempt + 1}); again")
        microphone.get_by_role("button", name="Stop").click()
        page.wait_for_timeout(2000)
    pytest.fail(f"the page never streamed the microphone after Record, twice ({STREAM_START_S:g} s each)")


def test_the_live_tab_writes_while_it_hears_and_keeps_everything_at_stop(app: RunningApp, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = chromium_with_a_microphone(playwright, microphone_wav(tmp_path))
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["microphone"])
        page = context.new_page()
        joins: list[str] = []  # the page's queued calls: the microphone's stream goes through them
        page.on("request", lambda r: joins.append(r.url) if "/gradio_api/queue/join" in r.url else None)
        page.goto(app.url)
        page.get_by_role("tab", name="Live").click()
        microphone = page.locator("#live-mic")
        # The page lists the microphones once the browser has given it one; Record before then opens a
        # session that never hears a piece.
        page.wait_for_function(
            "() => [...document.querySelectorAll('#live-mic select option')].some(o => o.value)",
            timeout=WAIT_MS,
        )
        record_until_it_streams(page, microphone, joins)
        # The words come while the microphone is still on: partial (grey) while they may change, then
        # final (normal type) after the pause that follows the phrase.
        greys = watch_until_final(page, PHRASE)
        assert greys and all(style == "color: #888" for style in greys)
        microphone.get_by_role("button", name="Stop").click()
        expect(page.locator("#live-transcript textarea")).to_have_value(
            re.compile(re.escape(PHRASE)), timeout=WAIT_MS
        )
        rows = page.locator("#live-segments").get_by_role("row")
        expect(rows.filter(has_text=PHRASE).first).to_be_visible(timeout=WAIT_MS)
        files = page.locator("#live-files")

        def link(name: str) -> Any:
            return files.locator(f"a[href$='/{name}']")

        for name in ("live.txt", "live.srt", "live.vtt", "live-recording.wav"):
            expect(link(name)).to_be_visible(timeout=WAIT_MS)
        page.screenshot(path=str(ARTIFACTS / "app-live.png"), full_page=True)
        recording, text_file = tmp_path / "live-recording.wav", tmp_path / "live.txt"
        for name, target in (("live-recording.wav", recording), ("live.txt", text_file)):
            with page.expect_download() as download:
                link(name).click()
            download.value.save_as(target)
        browser.close()
    assert PHRASE in text_file.read_text(encoding="utf-8")
    # The recording as heard (after the browser's own audio processing), whole: offline, the same
    # app finds the phrase in it too.
    assert sf.info(str(recording)).duration > sf.info(str(PHRASE_WAV)).duration
    client = OpenAI(base_url=f"{app.url}v1", api_key="unused-on-loopback", max_retries=0)
    with recording.open("rb") as audio:
        assert PHRASE in client.audio.transcriptions.create(file=audio, model="parakeet").text
    assert (ARTIFACTS / "app-live.png").stat().st_size > 10_000
