"""The access settings from the environment reach the real app: LOCALSTT_AUTH (the page's password) and
LOCALSTT_API_KEY (the API's key), read in localstt/environment.py and used by localstt/web/launch.py
where --auth and --api-key are not given."""

from __future__ import annotations

import httpx
import openai
import pytest
from gradio_client import Client, handle_file
from openai import OpenAI

from testkit.app import launch_app
from testkit.store_env import Project
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
KEY = "env-key-5c2e"
USER, PASSWORD = "alice", "env-pw-91d3"


@pytest.mark.slow  # the real app in its own process
def test_the_page_password_and_the_api_key_come_from_the_environment(
    exported_project: Project, tmp_path, monkeypatch
):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")  # gradio_client here: no telemetry thread
    env = {"LOCALSTT_AUTH": f"{USER}:{PASSWORD}", "LOCALSTT_API_KEY": KEY}
    with launch_app(exported_project, tmp_path / "app", env=env) as app:  # no --auth, no --api-key
        assert "--auth" not in app.process.args and "--api-key" not in app.process.args  # type: ignore[operator]

        # The API: without a key, with a wrong one, then with the environment's.
        missing = httpx.get(f"{app.url}v1/models", timeout=30)
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            OpenAI(base_url=f"{app.url}v1", api_key="not-the-key", max_retries=0).models.list()
        client = OpenAI(base_url=f"{app.url}v1", api_key=KEY, max_retries=0, timeout=300)
        with PHRASE_WAV.open("rb") as audio:
            text = client.audio.transcriptions.create(file=audio, model="parakeet", response_format="text")
        assert str(text).strip() == PHRASE

        # The page: nothing without the login, no session for a wrong password, all with the right one.
        assert httpx.get(f"{app.url}config", timeout=30).status_code == 401
        wrong = httpx.post(f"{app.url}login", data={"username": USER, "password": "not-it"}, timeout=30)
        assert wrong.status_code == 400 and not wrong.cookies
        with httpx.Client(base_url=app.url, timeout=30) as session:
            assert session.post("login", data={"username": USER, "password": PASSWORD}).status_code == 200
            assert session.get("config").status_code == 200
        page = Client(app.url, auth=(USER, PASSWORD), verbose=False)
        result = page.predict(
            [handle_file(str(PHRASE_WAV))], None, "parakeet", ["txt"], api_name="/transcribe"
        )
        assert result[0] == PHRASE
