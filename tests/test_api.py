"""OpenAI's transcription API under /v1, driven by the official `openai` client against the real app
on 127.0.0.1 (the same process that serves the page), with every socket off loopback blocked."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf
import srt
import webvtt
from gradio_client import Client, handle_file
from openai import OpenAI

from localstt.audio import decode_audio
from localstt.config import load_config
from localstt.errors import AudioError
from localstt.manifest import export_command
from localstt.store import ModelStore
from localstt.web.gpu_queue import GpuQueue
from localstt.web.openai_api import ApiServer
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
KEY = "test-key-7d1f"
SLOW = pytest.mark.slow  # the real app in its own process

# Runs the app with every socket off loopback refused, and each attempt written down; and with the
# spy on the model (testkit/overlap.py).
BLOCKED_RUNNER = textwrap.dedent(
    """
    import runpy, sys
    from testkit import offline, overlap
    offline.block_network(allow_loopback=True)
    overlap.install()
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
    """
)


@pytest.fixture(scope="module")
def app(exported_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    workdir = tmp_path_factory.mktemp("api")
    runner = workdir / "blocked_runner.py"
    runner.write_text(BLOCKED_RUNNER)
    attempts = workdir / "network-attempts.log"
    env = {"OFFLINE_ATTEMPTS_FILE": str(attempts)}
    config = config_on(exported_project, "cpu")
    with launch_app(
        exported_project,
        workdir / "app",
        "--api-key",
        KEY,
        config=config,
        runner=runner,
        env=env,
        spy_on_model=True,
    ) as running:
        yield running
        assert running.process.poll() is None, running.log.read_text()
    assert not attempts.exists(), attempts.read_text()  # nothing tried to leave the machine
    assert "Traceback" not in running.log.read_text()


@pytest.fixture
def client(app: RunningApp) -> OpenAI:
    return OpenAI(base_url=f"{app.url}v1", api_key=KEY, max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The phrase, a second of silence, the phrase again."""
    speech, rate = sf.read(PHRASE_WAV, dtype="float32")
    path = tmp_path_factory.mktemp("audio") / "twice.wav"
    sf.write(path, np.concatenate([speech, np.zeros(rate, dtype=np.float32), speech]), rate)
    return path


def said(error: openai.APIStatusError) -> str:
    """The error's sentence, as the server sent it in OpenAI's shape."""
    assert isinstance(error.body, dict), error.body
    return str(error.body["message"])


def transcribe(client: OpenAI, path: Path = PHRASE_WAV, **fields: object) -> object:
    with path.open("rb") as audio:
        return client.audio.transcriptions.create(file=audio, **{"model": "parakeet", **fields})  # type: ignore[call-overload]


@SLOW
def test_json_is_the_exact_phrase(client: OpenAI):
    result = transcribe(client)
    assert isinstance(result, openai.types.audio.Transcription)
    assert result.text == PHRASE
    assert result.usage is not None and result.usage.seconds == pytest.approx(
        sf.info(PHRASE_WAV).duration, abs=1e-3
    )


@SLOW
def test_text_srt_and_vtt_are_plain_strings_that_parse(client: OpenAI):
    assert transcribe(client, response_format="text") == PHRASE + "\n"
    cues = list(srt.parse(transcribe(client, response_format="srt")))  # type: ignore[arg-type]
    assert " ".join(cue.content.replace("\n", " ") for cue in cues) == PHRASE
    assert cues[0].start.total_seconds() >= 0 and cues[-1].end.total_seconds() <= sf.info(PHRASE_WAV).duration
    captions = webvtt.from_buffer(io.StringIO(transcribe(client, response_format="vtt")))  # type: ignore[arg-type]
    assert " ".join(caption.text.replace("\n", " ") for caption in captions) == PHRASE


@SLOW
@pytest.mark.parametrize(
    "granularities", [[], ["word"], ["segment"], ["word", "segment"]], ids=["none", "word", "segment", "both"]
)
def test_verbose_json_with_each_granularity(client: OpenAI, twice: Path, granularities: list[str]):
    duration = sf.info(twice).duration
    result = transcribe(client, twice, response_format="verbose_json", timestamp_granularities=granularities)
    assert isinstance(result, openai.types.audio.TranscriptionVerbose)
    assert result.text == f"{PHRASE} {PHRASE}"
    assert result.language == "english"
    assert result.duration == pytest.approx(duration, abs=1e-3)
    if granularities == ["word"]:  # as OpenAI: only the words when only words are asked for
        assert result.segments is None
    else:
        assert result.segments is not None
        assert " ".join(s.text for s in result.segments) == result.text
        assert [s.id for s in result.segments] == list(range(len(result.segments)))
        assert all(0 <= s.start <= s.end <= duration for s in result.segments)
    if "word" in granularities:
        assert result.words is not None
        assert " ".join(w.word for w in result.words) == result.text
        starts = [w.start for w in result.words]
        assert starts == sorted(starts)
        assert all(0 <= w.start <= w.end <= duration for w in result.words)
        # the second phrase begins after the second of silence
        assert result.words[9].start >= sf.info(PHRASE_WAV).duration
    else:
        assert result.words is None


@SLOW
def test_word_timestamps_need_verbose_json(client: OpenAI):
    with pytest.raises(openai.BadRequestError) as caught:
        transcribe(client, response_format="json", timestamp_granularities=["word"])
    assert said(caught.value) == "Word timestamps come only with response_format=verbose_json."
    assert caught.value.param == "timestamp_granularities"  # type: ignore[attr-defined]


@SLOW
def test_streaming_deltas_join_to_the_text(client: OpenAI, twice: Path):
    with twice.open("rb") as audio:
        events = list(client.audio.transcriptions.create(file=audio, model="parakeet", stream=True))
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert len(deltas) >= 2  # one per segment
    assert "".join(deltas) == f"{PHRASE} {PHRASE}"
    assert len(done) == 1 and done[0].text == f"{PHRASE} {PHRASE}" and events[-1] is done[0]


@SLOW
def test_canary_qwen_gives_windows_and_no_words(client: OpenAI):
    result = transcribe(client, model="canary-qwen", response_format="verbose_json")
    assert isinstance(result, openai.types.audio.TranscriptionVerbose)
    assert result.segments is not None and result.words is None
    assert " ".join(s.text for s in result.segments) == result.text
    assert all(0 <= s.start <= s.end <= result.duration for s in result.segments)
    with PHRASE_WAV.open("rb") as audio:
        events = list(client.audio.transcriptions.create(file=audio, model="canary-qwen", stream=True))
    assert "".join(e.delta for e in events if e.type == "transcript.text.delta") == result.text
    assert events[-1].type == "transcript.text.done" and events[-1].text == result.text
    with pytest.raises(openai.BadRequestError) as caught:
        transcribe(
            client, model="canary-qwen", response_format="verbose_json", timestamp_granularities=["word"]
        )
    assert "canary-qwen gives no word timestamps" in said(caught.value)


@SLOW
def test_the_repo_name_is_a_model_id_too(client: OpenAI):
    assert transcribe(client, model="nvidia/parakeet-tdt-0.6b-v2").text == PHRASE  # type: ignore[attr-defined]


@SLOW
def test_models_are_listed_with_their_pins(client: OpenAI, exported_project: Project):
    pins = dict(
        re.findall(
            r'(?ms)^\[models\.([\w-]+)\].*?^revision = "([0-9a-f]{40})"', exported_project.config.read_text()
        )
    )
    models = {model.id: model for model in client.models.list()}
    assert (
        set(models)
        == {"parakeet", "parakeet-v3", "canary-qwen", "canary-1b-v2"}
        == set(pins) - {"sortformer"}
    )  # the diarizer transcribes nothing
    for key, model in models.items():
        extra = model.model_extra or {}
        assert extra["revision"] == pins[key] and extra["exported"] is True
    # Each card says what `language` may be, from what the model's family declares.
    v3 = models["parakeet-v3"].model_extra or {}
    assert len(v3["languages"]) == 25 and "de" in v3["languages"] and v3["detects_language"] is True
    v2 = models["parakeet"].model_extra or {}
    assert (v2["languages"], v2["detects_language"], v2["translations"]) == (["en"], False, [])
    canary = models["canary-1b-v2"].model_extra or {}
    assert canary["detects_language"] is False and {"from": "de", "to": "en"} in canary["translations"]
    by_repo = client.models.retrieve("nvidia/canary-qwen-2.5b")
    assert by_repo.id == "canary-qwen" and by_repo.owned_by == "nvidia"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("whisper-1")


@SLOW
def test_the_multilingual_model_hears_german_and_records_the_language(client: OpenAI):
    """parakeet-v3 (a tiny model of the real class that knows the phrase in English and German)."""
    german = PHRASE_DE_TXT.read_text(encoding="utf-8").strip()
    given = transcribe(
        client, PHRASE_DE_WAV, model="parakeet-v3", language="de", response_format="verbose_json"
    )
    assert isinstance(given, openai.types.audio.TranscriptionVerbose)
    assert (given.text, given.language) == (german, "german")
    # Left out, the model hears it by itself; it says not which, so nothing is invented.
    heard = transcribe(client, PHRASE_DE_WAV, model="parakeet-v3", response_format="verbose_json")
    assert (heard.text, heard.language) == (german, "auto")  # type: ignore[attr-defined]
    english = transcribe(client, PHRASE_WAV, model="nvidia/parakeet-tdt-0.6b-v3", language="en")
    assert english.text == PHRASE  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError) as on_v2:
        transcribe(client, PHRASE_DE_WAV, model="parakeet", language="de")
    assert said(on_v2.value) == "parakeet transcribes English, not German; send en or leave the language out."
    with pytest.raises(openai.BadRequestError) as unknown:
        transcribe(client, PHRASE_DE_WAV, model="parakeet-v3", language="tlh")
    assert said(unknown.value) == "'tlh' is not a language code these models know; use e.g. en, de or fr."


@SLOW
def test_translations_with_the_official_client(client: OpenAI):
    """Canary-1B-v2 (a tiny model of the real class trained to translate the phrase) through OpenAI's
    translations endpoint, the spoken language in the documented extra field."""
    german = PHRASE_DE_TXT.read_text(encoding="utf-8").strip()
    with PHRASE_DE_WAV.open("rb") as audio:
        english = client.audio.translations.create(
            file=audio, model="canary-1b-v2", extra_body={"language": "de"}
        )
    assert english.text == PHRASE
    with PHRASE_DE_WAV.open("rb") as audio:
        verbose = client.audio.translations.create(
            file=audio, model="whisper-1", response_format="verbose_json", extra_body={"language": "de"}
        )
    assert (verbose.text, verbose.language) == (PHRASE, "english")  # type: ignore[union-attr]
    assert (verbose.model_extra or {})["task"] == "translate"  # type: ignore[union-attr]
    with PHRASE_DE_WAV.open("rb") as audio:
        cues = client.audio.translations.create(
            file=audio, model="canary-1b-v2", response_format="srt", extra_body={"language": "de"}
        )
    assert " ".join(cue.content.replace("\n", " ") for cue in srt.parse(str(cues))) == PHRASE
    with PHRASE_DE_WAV.open("rb") as audio, pytest.raises(openai.BadRequestError) as named:
        client.audio.translations.create(file=audio, model="parakeet-v3", extra_body={"language": "de"})
    assert said(named.value) == "parakeet-v3 does not translate; use canary-1b-v2."
    # Into another language than English, through the transcriptions endpoint's own field.
    back = transcribe(
        client, PHRASE_WAV, model="canary-1b-v2", language="en", extra_body={"translate_to": "de"}
    )
    assert back.text == german  # type: ignore[attr-defined]
    same = transcribe(client, PHRASE_DE_WAV, model="canary-1b-v2", language="de")
    assert same.text == german  # type: ignore[attr-defined]


@SLOW
def test_refusals_are_openai_errors_and_the_server_keeps_serving(
    client: OpenAI, app: RunningApp, tmp_path: Path
):
    fake = tmp_path / "recording.wav"
    fake.write_text("this is not a recording\n" * 50)
    with pytest.raises(openai.BadRequestError) as caught:
        transcribe(client, fake)
    with pytest.raises(AudioError) as direct:  # what the CLI says of the same file
        decode_audio(fake, None)
    assert said(caught.value) == str(direct.value)
    assert "'recording.wav' is not an audio file" in said(caught.value)

    with pytest.raises(openai.NotFoundError) as not_found:
        transcribe(client, model="whisper-1")
    assert (
        said(not_found.value) == "The model 'whisper-1' does not exist here; the models are: "
        "parakeet, parakeet-v3, canary-qwen, canary-1b-v2."
    )
    assert not_found.value.code == "model_not_found"

    with pytest.raises(openai.BadRequestError) as french:
        transcribe(client, language="fr")
    assert (french.value.code, french.value.param) == ("unsupported_value", "language")
    assert (
        said(french.value) == "parakeet transcribes English, not French; send en or leave the language out."
    )
    assert transcribe(client, language="en", prompt="Fox.", temperature=0.2).text == PHRASE  # type: ignore[attr-defined]

    for refused, param in [
        ({"chunking_strategy": "auto"}, "chunking_strategy"),
        (
            {"known_speaker_names": ["Ana"], "known_speaker_references": ["data:audio/wav;base64,AAAA"]},
            "known_speaker_references",
        ),
    ]:
        with pytest.raises(openai.BadRequestError) as unsupported:
            transcribe(client, **refused)
        assert (unsupported.value.code, unsupported.value.param) == ("unsupported_value", param)  # type: ignore[attr-defined]

    with PHRASE_WAV.open("rb") as audio, pytest.raises(openai.BadRequestError) as translation:
        client.audio.translations.create(file=audio, model="whisper-1")  # OpenAI's own model name
    assert translation.value.param == "language"  # type: ignore[attr-defined]
    assert said(translation.value) == (  # the endpoint has no such field: one sentence names the extra one
        "canary-1b-v2 must be told the spoken language to translate it: send its code in the field "
        '`language` (with OpenAI\'s SDK, extra_body={"language": "de"}).'
    )
    with pytest.raises(openai.BadRequestError) as into:
        transcribe(client, model="parakeet-v3", extra_body={"translate_to": "en", "language": "de"})
    assert (into.value.param, said(into.value)) == (  # type: ignore[attr-defined]
        "translate_to",
        "parakeet-v3 does not translate; leave the translation out.",
    )

    assert transcribe(client).text == PHRASE  # type: ignore[attr-defined]
    assert app.process.poll() is None


@SLOW
def test_diarized_json_in_openais_shape(client: OpenAI):
    truth = json.loads(PHRASE_DIALOGUE_JSON.read_text(encoding="utf-8"))
    result = transcribe(client, PHRASE_DIALOGUE_WAV, response_format="diarized_json")
    assert isinstance(result, openai.types.audio.TranscriptionDiarized)
    assert result.task == "transcribe"
    assert result.duration == pytest.approx(sf.info(PHRASE_DIALOGUE_WAV).duration, abs=1e-3)
    # OpenAI's labels without known names: A, B, ... in order of first appearance
    assert [(s.speaker, s.text) for s in result.segments] == [("AB"[t["speaker"]], t["text"]) for t in truth]
    assert all(s.type == "transcript.text.segment" and s.start < s.end for s in result.segments)
    assert [s.id for s in result.segments] == [f"seg_{n}" for n in range(len(truth))]
    assert result.text == " ".join(t["text"] for t in truth)

    named = transcribe(
        client, PHRASE_DIALOGUE_WAV, response_format="diarized_json", known_speaker_names=["Ana", "Ben"]
    )
    assert [s.speaker for s in named.segments] == [["Ana", "Ben"][t["speaker"]] for t in truth]  # type: ignore[attr-defined]
    # known names with another format label its segments too
    verbose = transcribe(
        client, PHRASE_DIALOGUE_WAV, response_format="verbose_json", known_speaker_names=["Ana"]
    )
    assert [(s.model_extra or {}).get("speaker") for s in verbose.segments] == [  # type: ignore[attr-defined]
        ["Ana", "Speaker 2"][t["speaker"]] for t in truth
    ]
    with pytest.raises(openai.BadRequestError) as streamed:
        transcribe(client, PHRASE_DIALOGUE_WAV, response_format="diarized_json", stream=True)
    assert streamed.value.param == "stream"  # type: ignore[attr-defined]


@SLOW
def test_the_key_is_required(app: RunningApp):
    with pytest.raises(openai.AuthenticationError) as wrong:
        transcribe(OpenAI(base_url=f"{app.url}v1", api_key="not-the-key", max_retries=0))
    assert said(wrong.value) == "Incorrect API key provided."
    missing = httpx.get(f"{app.url}v1/models", timeout=30)
    assert missing.status_code == 401
    error = missing.json()["error"]
    assert error["code"] == "invalid_api_key" and "Authorization: Bearer" in error["message"]
    assert httpx.get(app.url, timeout=30).status_code == 200  # the page needs no API key


@SLOW
def test_a_ui_job_and_two_api_requests_at_once(client: OpenAI, app: RunningApp, twice: Path):
    def ui_job() -> str:
        ui = Client(app.url, verbose=False)
        return str(
            ui.predict([handle_file(str(twice))], None, "parakeet", ["txt"], api_name="/transcribe")[0]
        )

    before = app.model_runs()
    with ThreadPoolExecutor(3) as pool:
        page = pool.submit(ui_job)
        one = pool.submit(transcribe, client, PHRASE_WAV, response_format="text")
        two = pool.submit(transcribe, client, twice, response_format="text")
        assert page.result(timeout=300) == f"{PHRASE} {PHRASE}"
        assert one.result(timeout=300) == PHRASE + "\n"
        assert two.result(timeout=300) == f"{PHRASE} {PHRASE}\n"
    runs = app.model_runs()
    assert runs.calls - before.calls >= 3, (before, runs)  # the three ran the model...
    assert runs.most_at_once == 1, runs  # ...one after the other (GpuQueue, the model's lock)
    assert app.audio_left_behind() == []
    assert list(app.tmp_dir.rglob("localstt-api-*")) == []  # each upload went with its request


# In this process: the API's ASGI app over a real store, through Starlette's TestClient (an
# httpx.Client) handed to the official client, for what needs a limit or a queue held by the test.


def in_process_client(store: ModelStore, **settings: object) -> tuple[OpenAI, ApiServer]:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    api = ApiServer(store, store.config.transcription, GpuQueue(max_waiting=16), **settings)  # type: ignore[arg-type]
    http = TestClient(Starlette(routes=[Mount("/v1", api.app())]), base_url="http://127.0.0.1/v1/")
    return OpenAI(base_url="http://127.0.0.1/v1", api_key=KEY, http_client=http, max_retries=0), api


def test_every_response_format_in_process(model_store: ModelStore, twice: Path):
    """The fast tier's pass over each format (the real app's tests above check each in depth)."""
    client, _ = in_process_client(model_store)
    assert transcribe(client, response_format="text") == PHRASE + "\n"
    cues = list(srt.parse(transcribe(client, response_format="srt")))  # type: ignore[arg-type]
    assert " ".join(cue.content.replace("\n", " ") for cue in cues) == PHRASE
    captions = webvtt.from_buffer(io.StringIO(transcribe(client, response_format="vtt")))  # type: ignore[arg-type]
    assert " ".join(caption.text.replace("\n", " ") for caption in captions) == PHRASE
    verbose = transcribe(
        client, twice, response_format="verbose_json", timestamp_granularities=["word", "segment"]
    )
    assert verbose.text == f"{PHRASE} {PHRASE}"  # type: ignore[attr-defined]
    assert " ".join(w.word for w in verbose.words) == verbose.text  # type: ignore[attr-defined]
    assert " ".join(s.text for s in verbose.segments) == verbose.text  # type: ignore[attr-defined]
    truth = json.loads(PHRASE_DIALOGUE_JSON.read_text(encoding="utf-8"))
    diarized = transcribe(client, PHRASE_DIALOGUE_WAV, response_format="diarized_json")
    assert [(s.speaker, s.text) for s in diarized.segments] == [  # type: ignore[attr-defined]
        ("AB"[t["speaker"]], t["text"]) for t in truth
    ]
    with PHRASE_WAV.open("rb") as audio:
        events = list(client.audio.transcriptions.create(file=audio, model="parakeet", stream=True))
    assert "".join(e.delta for e in events if e.type == "transcript.text.delta") == PHRASE
    assert events[-1].type == "transcript.text.done" and events[-1].text == PHRASE


def test_translation_without_the_translating_model_is_one_sentence(model_store: ModelStore, tmp_path: Path):
    """Its table in config.toml but not exported: what to run; no table: that nothing here translates."""
    text = model_store.config.path.read_text(encoding="utf-8")
    unexported = tmp_path / "unexported" / "config.toml"
    unexported.parent.mkdir()
    unexported.write_text(text.replace('models_dir = "', 'models_dir = "nothing-here-', 1), encoding="utf-8")
    client, _ = in_process_client(ModelStore(load_config(unexported)))
    with PHRASE_DE_WAV.open("rb") as audio, pytest.raises(openai.APIStatusError) as missing:
        client.audio.translations.create(file=audio, model="whisper-1", extra_body={"language": "de"})
    assert missing.value.code == "model_not_exported"  # type: ignore[attr-defined]
    assert said(missing.value).startswith("canary-1b-v2 is not exported to ")
    assert said(missing.value).endswith("config.toml canary-1b-v2` once to export it.")
    assert "Traceback" not in said(missing.value)
    without = tmp_path / "without" / "config.toml"
    without.parent.mkdir()
    table = text[text.index("[models.canary-1b-v2]") : text.index("[models.sortformer]")]
    without.write_text(text.replace(table, ""), encoding="utf-8")
    client, _ = in_process_client(ModelStore(load_config(without)))
    with PHRASE_DE_WAV.open("rb") as audio, pytest.raises(openai.BadRequestError) as none:
        client.audio.translations.create(file=audio, model="whisper-1", extra_body={"language": "de"})
    assert said(none.value) == "No model of this app translates into English; use /v1/audio/transcriptions."


def test_a_full_queue_is_503_with_retry_after(model_store: ModelStore):
    client, api = in_process_client(model_store)
    api.queue.max_waiting = 0
    with api.queue.turn(), pytest.raises(openai.InternalServerError) as caught:  # someone else's turn
        transcribe(client)
    assert caught.value.status_code == 503
    assert caught.value.response.headers["Retry-After"] == "10"
    assert said(caught.value) == "0 requests are already waiting for the model; try again in a moment."
    assert transcribe(client).text == PHRASE  # type: ignore[attr-defined]  # once the turn is free


def test_an_upload_over_the_limit_is_413_and_nothing_is_kept(model_store: ModelStore, tmp_path: Path):
    client, api = in_process_client(model_store, max_upload_bytes=1 << 20)
    big = tmp_path / "long.wav"
    sf.write(big, np.zeros(16_000 * 40, dtype=np.float32), 16_000)  # 1.28 MB of 16-bit samples
    with pytest.raises(openai.APIStatusError) as caught:
        transcribe(client, big)
    assert caught.value.status_code == 413
    assert said(caught.value) == (
        "The upload is larger than this server's limit of 1 MB (max_upload_mb in config.toml)."
    )

    # Without a Content-Length (sent in chunks): stopped once the limit is passed.
    def chunks() -> Iterator[bytes]:
        boundary = b"--b0undary\r\n"
        yield boundary + b'Content-Disposition: form-data; name="model"\r\n\r\nparakeet\r\n'
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="long.wav"\r\n\r\n'
        yield from (big.read_bytes()[i : i + 8192] for i in range(0, big.stat().st_size, 8192))
        yield b"\r\n--b0undary--\r\n"

    http = client._client  # the TestClient
    reply = http.post(
        "audio/transcriptions",
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "file_too_large"
    assert list(Path(tempfile.gettempdir()).glob("localstt-api-*")) == []
    assert transcribe(client).text == PHRASE  # type: ignore[attr-defined]


def test_a_model_not_exported_is_503_naming_the_export_command(exported_project: Project, tmp_path: Path):
    text = exported_project.config.read_text()
    config = tmp_path / "config.toml"
    config.write_text(re.sub(r"(?m)^models_dir = .*$", f'models_dir = "{tmp_path / "empty"}"', text))
    store = ModelStore(load_config(config))
    client, _ = in_process_client(store)
    with pytest.raises(openai.InternalServerError) as caught:
        transcribe(client)
    assert caught.value.status_code == 503 and caught.value.code == "model_not_exported"  # type: ignore[attr-defined]
    assert f"run `{export_command('parakeet', config)}`" in said(caught.value)
    card = client.models.retrieve("parakeet").model_extra or {}
    assert card["exported"] is False and card["export_command"] == export_command("parakeet", config)


@SLOW
def test_serving_elsewhere_needs_an_api_key_too(exported_project: Project):
    command = [sys.executable, str(REPO_ROOT / "transcribe_ui.py"), "--config", str(exported_project.config)]
    command += ["--host", "0.0.0.0", "--auth", "alice:pw", "--port", "9"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=exported_project.env())
    assert result.returncode == 2
    assert (
        "error: add --api-key KEY for the API under /v1 (or --allow-no-auth if you really mean it)."
        in result.stderr
    )


def test_an_unexpected_error_is_one_sentence_naming_the_log(
    model_store: ModelStore, tmp_path: Path, monkeypatch
):
    from localstt.models.parakeet import Parakeet

    monkeypatch.setenv("LOCALSTT_LOG_DIR", str(tmp_path / "logs"))
    client, _ = in_process_client(model_store)
    original = Parakeet.transcribe

    def broken(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(Parakeet, "transcribe", broken)
    with pytest.raises(openai.InternalServerError) as caught:
        transcribe(client)
    log = tmp_path / "logs" / "localstt.log"
    assert caught.value.status_code == 500
    assert said(caught.value) == (
        "The recording could not be transcribed: unexpected RuntimeError (CUDA error: an illegal memory "
        f"access was encountered); details are in {log}."
    )
    assert "Traceback" in log.read_text() and "Traceback" not in said(caught.value)
    monkeypatch.setattr(Parakeet, "transcribe", original)
    assert transcribe(client).text == PHRASE  # type: ignore[attr-defined]
