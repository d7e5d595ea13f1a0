"""The real web app, launched on 127.0.0.1 and used over HTTP (gradio_client) and in headless Chromium.

The app runs with a spy on the model (testkit/overlap.py) that counts the forward passes and how many
ran at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import srt
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from testkit.app import RunningApp, launch_app
from testkit.store_env import REPO_ROOT, Project, config_on
from testkit.tiny_models import (
    PHRASE_DE_TXT,
    PHRASE_DE_WAV,
    PHRASE_DIALOGUE_JSON,
    PHRASE_DIALOGUE_WAV,
    PHRASE_TXT,
    PHRASE_WAV,
)

PHRASE = PHRASE_TXT.read_text().strip()
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.slow  # an app process, and Chromium


@pytest.fixture(scope="module")
def app(exported_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    config = config_on(exported_project, "cpu")  # these tests mean the CPU ("loaded on cpu")
    with launch_app(
        exported_project, tmp_path_factory.mktemp("app"), config=config, spy_on_model=True
    ) as running:
        yield running


def transcribe_over_http(app: RunningApp, path: Path, formats: list[str]) -> tuple:
    client = Client(app.url, verbose=False)
    return client.predict([handle_file(str(path))], None, "parakeet", formats, api_name="/transcribe")


def test_upload_transcribe_and_download_srt(app: RunningApp):
    text, segments, downloads, status = transcribe_over_http(app, PHRASE_WAV, ["srt", "txt"])
    assert text == PHRASE
    assert segments["headers"] == ["file", "start", "end", "text"]
    assert [row[3] for row in segments["data"]] == [PHRASE]
    srt_path = next(Path(d) for d in downloads if str(d).endswith(".srt"))
    cues = list(srt.parse(srt_path.read_text(encoding="utf-8")))
    assert " ".join(c.content.replace("\n", " ") for c in cues) == PHRASE
    assert "loaded on cpu" in status  # its config.toml says device = "cpu"
    assert app.audio_left_behind() == []  # the upload was deleted when the job ended


def test_two_clients_at_once_get_their_own_results(app: RunningApp, tmp_path: Path):
    speech, rate = sf.read(PHRASE_WAV, dtype="float32")
    twice = tmp_path / "twice.wav"
    sf.write(twice, np.concatenate([speech, np.zeros(rate, dtype=np.float32), speech]), rate)
    before = app.model_runs()
    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(transcribe_over_http, app, PHRASE_WAV, ["txt"])
        two = pool.submit(transcribe_over_http, app, twice, ["txt"])
        assert one.result(timeout=300)[0] == PHRASE
        assert two.result(timeout=300)[0] == f"{PHRASE} {PHRASE}"
    runs = app.model_runs()
    assert runs.calls - before.calls >= 2, (before, runs)  # both jobs ran the model...
    assert runs.most_at_once == 1, runs  # ...one after the other (the page's "gpu" queue, GpuQueue)


def test_bad_upload_gets_a_clear_message_and_the_app_keeps_serving(app: RunningApp, tmp_path: Path):
    fake = tmp_path / "recording.wav"
    fake.write_text("this is not a recording\n" * 50)
    with pytest.raises(AppError) as caught:
        transcribe_over_http(app, fake, ["txt"])
    assert "not an audio file" in str(caught.value)
    assert "Traceback" not in str(caught.value)
    assert transcribe_over_http(app, PHRASE_WAV, ["txt"])[0] == PHRASE
    assert app.process.poll() is None


def launch_chromium(playwright: Any) -> Any:
    """Debian's chromium, headless, asking nothing of the network."""
    assert os.path.exists(CHROMIUM), "chromium is installed by scripts/test.sh"
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
        ],
    )


def test_in_a_real_browser(app: RunningApp):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app.url)
        page.locator("input[type=file]").first.set_input_files(str(PHRASE_WAV))
        page.get_by_role("button", name="Transcribe", exact=True).click()
        expect(page.locator("#transcript textarea")).to_have_value(PHRASE, timeout=120_000)
        cells = page.locator("#segments").get_by_role("row").nth(1).get_by_role("gridcell")
        expect(cells).to_have_text(
            ["phrase.wav", "0:00.000", re.compile(r"0:0\d\.\d{3}"), PHRASE], timeout=30_000
        )
        expect(page.get_by_text("loaded on cpu")).to_be_visible()  # the config says device = "cpu"
        page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "app.png").stat().st_size > 10_000


def dialogue_truth() -> list[dict]:
    return json.loads(PHRASE_DIALOGUE_JSON.read_text(encoding="utf-8"))


def test_identify_speakers_over_http(app: RunningApp):
    truth = dialogue_truth()
    client = Client(app.url, verbose=False)
    text, segments, downloads, _ = client.predict(
        [handle_file(str(PHRASE_DIALOGUE_WAV))],
        None,
        "parakeet",
        ["txt", "vtt"],
        True,
        "Ana, Ben",
        api_name="/transcribe",
    )
    names = ["Ana", "Ben"]
    assert text == "\n\n".join(f"{names[t['speaker']]}: {t['text']}" for t in truth)
    assert segments["headers"] == ["file", "start", "end", "speaker", "text"]
    assert [(row[3], row[4]) for row in segments["data"]] == [(names[t["speaker"]], t["text"]) for t in truth]
    # the downloads carry the names
    txt = next(Path(d) for d in downloads if str(d).endswith(".txt"))
    assert txt.read_text(encoding="utf-8") == text + "\n"
    vtt = next(Path(d) for d in downloads if str(d).endswith(".vtt"))
    assert "<v Ana>" in vtt.read_text(encoding="utf-8") and "<v Ben>" in vtt.read_text(encoding="utf-8")


def test_identify_speakers_in_a_real_browser(app: RunningApp):
    from playwright.sync_api import expect, sync_playwright

    truth = dialogue_truth()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(app.url)
        page.locator("input[type=file]").first.set_input_files(str(PHRASE_DIALOGUE_WAV))
        page.get_by_label("Identify speakers").check()
        page.locator("#speaker-names textarea, #speaker-names input").first.fill("Ana, Ben")
        page.get_by_role("button", name="Transcribe", exact=True).click()
        names = ["Ana", "Ben"]
        want = "\n\n".join(f"{names[t['speaker']]}: {t['text']}" for t in truth)
        expect(page.locator("#transcript textarea")).to_have_value(want, timeout=120_000)
        cells = page.locator("#segments").get_by_role("row").nth(2).get_by_role("gridcell")
        expect(cells).to_have_text(
            [
                "phrase-dialogue.wav",
                re.compile(r"0:0\d\.\d{3}"),
                re.compile(r"0:0\d\.\d{3}"),
                "Ben",
                truth[1]["text"],
            ],
            timeout=30_000,
        )
        page.screenshot(path=str(ARTIFACTS / "app-speakers.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "app-speakers.png").stat().st_size > 10_000


def test_the_language_choice_is_offered_only_for_a_model_of_many_languages(app: RunningApp):
    """Over HTTP: the page's config says the choices are hidden for the first model (English only);
    with parakeet-v3 and German given, the job gives the German phrase."""
    client = Client(app.url, verbose=False)
    shown = {c["props"].get("elem_id"): c["props"].get("visible", True) for c in client.config["components"]}
    assert shown["files-language"] is False and shown["files-translate-to"] is False
    text, segments, _, _ = client.predict(
        files_value=[handle_file(str(PHRASE_DE_WAV))],
        recording_value=None,
        key="parakeet-v3",
        formats_value=["json"],
        language_value="de",
        api_name="/transcribe",
    )
    assert text == PHRASE_DE_TXT.read_text(encoding="utf-8").strip()
    with pytest.raises(AppError) as refused:  # what the hidden choice would have refused anyway
        client.predict(
            files_value=[handle_file(str(PHRASE_WAV))],
            recording_value=None,
            key="parakeet",
            formats_value=["txt"],
            language_value="de",
            api_name="/transcribe",
        )
    assert "parakeet transcribes English, not German" in str(refused.value)


def test_the_language_choice_follows_the_model_in_a_real_browser(app: RunningApp):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app.url)
        language = page.locator("#files-language")
        expect(page.locator("#files-tab").get_by_label("Model")).to_be_visible()
        expect(language).to_be_hidden()  # parakeet: English only
        page.locator("#files-tab").get_by_label("Model").click()
        page.get_by_role("option", name="parakeet-v3").click()
        expect(language).to_be_visible(timeout=30_000)
        expect(language.locator("input")).to_have_value("Detect")
        expect(page.locator("#files-translate-to")).to_be_hidden()  # it does not translate
        page.locator("input[type=file]").first.set_input_files(str(PHRASE_DE_WAV))
        page.get_by_role("button", name="Transcribe", exact=True).click()
        german = PHRASE_DE_TXT.read_text(encoding="utf-8").strip()
        expect(page.locator("#transcript textarea")).to_have_value(german, timeout=120_000)
        # The model that translates: told the language (no Detect), and the translation offered.
        page.reload()  # a fresh page: no recording left from the job before
        page.locator("#files-tab").get_by_label("Model").click()
        page.get_by_role("option", name="canary-1b-v2").click()
        translate = page.locator("#files-translate-to")
        expect(translate).to_be_visible(timeout=30_000)
        expect(language.locator("input")).to_have_value("English")
        language.locator("input").click()
        language.get_by_role("option", name="German", exact=True).click()
        expect(language.locator("input")).to_have_value("German")
        translate.locator("input").click()
        translate.get_by_role("option", name="English", exact=True).click()
        expect(translate.locator("input")).to_have_value("English")
        page.locator("input[type=file]").first.set_input_files(str(PHRASE_DE_WAV))
        page.get_by_role("button", name="Transcribe", exact=True).click()
        expect(page.locator("#transcript textarea")).to_have_value(PHRASE, timeout=120_000)
        page.screenshot(path=str(ARTIFACTS / "app-translate.png"), full_page=True)
        page.locator("#files-tab").get_by_label("Model").click()
        page.get_by_role("option", name="parakeet", exact=True).click()
        expect(language).to_be_hidden(timeout=30_000)
        expect(translate).to_be_hidden()
        browser.close()
