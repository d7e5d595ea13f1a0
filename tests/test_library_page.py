"""The Library tab in real Chromium (headless, Debian's): search, open a hit, edit a segment's text in
its cell, rename a speaker, download the files, and the file downloaded carries the edits. The
screenshot it takes is docs/library.png."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import srt
from gradio_client import Client, handle_file

import localstt.web  # noqa: F401,I001  # first: gradio_client's analytics off in this process
from testkit.app import RunningApp, launch_app
from testkit.store_env import REPO_ROOT, Project, config_on
from testkit.tiny_models import PHRASE_DIALOGUE_WAV

pytestmark = pytest.mark.slow  # an app process, and Chromium
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


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


@pytest.fixture(scope="module")
def app(exported_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    folder = tmp_path_factory.mktemp("kept")
    text = config_on(exported_project, "cpu").read_text(encoding="utf-8")
    text, changed = re.subn(r'(?m)^path = "library.sqlite3"$', f'path = "{folder / "library.sqlite3"}"', text)
    assert changed == 1
    config = exported_project.root / "config-library-page.toml"
    config.write_text(text, encoding="utf-8")
    with launch_app(exported_project, tmp_path_factory.mktemp("app"), config=config) as running:
        client = Client(running.url, verbose=False)
        made = client.predict(
            [handle_file(str(PHRASE_DIALOGUE_WAV))],
            None,
            "parakeet",
            ["txt"],
            True,
            "",
            api_name="/transcribe",
        )
        assert made[0].startswith("Speaker 1: The quick brown fox")
        yield running


def test_search_edit_rename_and_download_in_a_real_browser(app: RunningApp, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1400}, accept_downloads=True)
        page.goto(app.url)
        page.get_by_role("tab", name="Library").click()
        expect(page.locator("#library-list")).to_contain_text("phrase-dialogue.wav", timeout=30_000)

        page.locator("#library-query textarea, #library-query input").first.fill("lazy dog")
        page.get_by_role("button", name="Search", exact=True).click()
        hits = page.locator("#library-hits")
        expect(hits.locator("mark").first).to_have_text(re.compile("lazy", re.I), timeout=30_000)
        hits.get_by_role("row").nth(2).get_by_role("gridcell").nth(1).click()  # the second hit
        expect(page.locator("#library-title")).to_contain_text("phrase-dialogue.wav", timeout=30_000)

        segments = page.locator("#library-segments")
        text_cell = segments.get_by_role("row").nth(2).get_by_role("gridcell").nth(4)
        expect(text_cell).to_have_text("The lazy dog jumps over the quick brown fox.", timeout=30_000)
        text_cell.dblclick()
        editor = segments.locator("textarea, input").first
        editor.fill("The sleepy dog jumps over the quick brown fox.")
        editor.press("Enter")  # leaving the cell saves it
        expect(page.locator("#library-history")).to_contain_text("text of segment 2", timeout=30_000)

        page.locator("#library-speaker input").click()
        page.get_by_role("option", name="Speaker 2", exact=True).click()
        page.locator("#library-new-name textarea, #library-new-name input").first.fill("Ben")
        page.get_by_role("button", name="Rename speaker everywhere").click()
        speaker_cell = segments.get_by_role("row").nth(2).get_by_role("gridcell").nth(3)
        expect(speaker_cell).to_have_text("Ben", timeout=30_000)
        expect(page.locator("#library-history")).to_contain_text("renamed Speaker 2 to Ben")

        page.get_by_role("button", name="Make the files").click()
        row = page.locator("#library-files").get_by_role("row", name=re.compile(r"phrase-dialogue\.srt"))
        link = row.get_by_role("link")
        expect(link).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "library.png"), full_page=True)
        with page.expect_download() as download:
            link.click()
        saved = tmp_path / "downloaded.srt"
        download.value.save_as(saved)
        browser.close()
    cues = [cue.content.replace("\n", " ") for cue in srt.parse(saved.read_text(encoding="utf-8"))]
    assert any(cue.startswith("Ben: The sleepy dog jumps") for cue in cues), cues
    assert not any("lazy dog jumps" in cue and cue.startswith("Ben") for cue in cues[:2]), cues
    assert (ARTIFACTS / "library.png").stat().st_size > 10_000
