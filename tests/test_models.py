"""The model families (localstt/models/): the registry, a fourth family plugged in from a test module
alone, and the store's use of a model while other threads load another."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
from openai import OpenAI

from localstt.audio import decode_audio
from localstt.config import ConfigError, load_config
from localstt.engine import TranscribeOptions, transcribe
from localstt.manifest import MANIFEST_NAME, FileRecord, Manifest, atomic_write_text, record_verified
from localstt.models import Answerer, families, family_for, register
from localstt.models.parakeet import ParakeetOptions
from localstt.store import ModelStore
from testkit.app import launch_app
from testkit.clip_length_family import CLIP_LENGTH, KIND, WORDS, ClipLengthOptions
from testkit.hubserver import HubServer
from testkit.store_env import Project
from testkit.tiny_models import PHRASE_WAV

REPO = "test/clip-length"
WORD_LIST = b"Length: of the clip\n"
CONFIG = f"""models_dir = "local_models"

[models.clip]
kind = "{KIND}"
repo = "{REPO}"
revision = ""

[transcription]
clip_length_digits = 2
"""


def test_the_shipped_families_and_one_from_a_test_are_registered():
    kinds = [family.kind for family in families()]
    assert {"nemo-asr", "salm", KIND} <= set(kinds)
    assert family_for(KIND) is CLIP_LENGTH
    assert isinstance(family_for("salm"), Answerer) and not isinstance(family_for("nemo-asr"), Answerer)
    with pytest.raises(ConfigError, match="model kind must be one of .*nemo-asr.*salm.*, not 'whisper'"):
        family_for("whisper")


def test_a_family_whose_option_names_clash_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Clashing(ParakeetOptions):
        pass

    class Copycat(type(CLIP_LENGTH)):  # type: ignore[misc]
        kind = "test-copycat"
        options_type = Clashing

    with pytest.raises(ValueError, match="option names already taken: attention_memory_fraction"):
        register(Copycat())
    assert "test-copycat" not in [family.kind for family in families()]


def test_an_unknown_kind_in_config_is_one_sentence(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.replace(KIND, "whisper"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[models.clip\].kind is 'whisper'; use one of: .*nemo-asr"):
        load_config(config)


def test_a_family_setting_outside_its_limit_is_one_sentence(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.replace("clip_length_digits = 2", "clip_length_digits = 7"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"clip_length_digits = 7 in .*; use a whole number from 0 to 3\."):
        load_config(config)


def run_with_family(project: Project, *argv: str) -> subprocess.CompletedProcess[str]:
    """export_models.py's main in a process where the test family is registered."""
    code = "import sys, export_models, testkit.clip_length_family; sys.exit(export_models.main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, "--config", str(project.config), *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=project.env(),
    )


@pytest.mark.slow  # an export, the CLI and the app, each in its own process
def test_a_fourth_family_is_exported_loaded_and_run_through_the_cli_and_the_api(hub: HubServer, tmp_path):
    """Export (test hub), pin, verify, offline load, the CLI, the options in config.toml and in the JSON,
    and the API of the real app: nothing outside testkit/clip_length_family.py knows this family."""
    hub.add_commit(REPO, {WORDS: WORD_LIST, "README.md": b"# a word list\n"})
    project = Project(tmp_path / "project", hub)
    project.root.mkdir()
    project.config.write_text(CONFIG, encoding="utf-8")

    exported = run_with_family(project, "clip")
    assert exported.returncode == 0, exported.stderr
    commit = hub.ref(REPO)
    assert f"clip: pinning {REPO} at main = {commit}" in exported.stdout
    assert f'revision = "{commit}"' in project.config.read_text(encoding="utf-8")
    export_dir = project.models_dir / "clip"
    assert sorted(p.name for p in export_dir.iterdir()) == [".verified.json", MANIFEST_NAME, WORDS]
    assert (export_dir / WORDS).read_bytes() == WORD_LIST
    manifest = json.loads((export_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert (manifest["kind"], manifest["revision"]) == (KIND, commit)
    assert manifest["files"][0]["sha256"] == hashlib.sha256(WORD_LIST).hexdigest()

    hub.clear_log()
    again = run_with_family(project, "clip")
    assert again.returncode == 0 and "nothing to download" in again.stdout
    assert hub.count() == 0  # exported once: the second run asks the hub nothing

    out = tmp_path / "out"
    # --local: this process loads the family itself; no running app is asked, not even on loopback
    argv = [str(PHRASE_WAV), "--model", "clip", "--format", "txt,json", "--out", str(out), "--local"]
    script = (
        f"import sys, testkit.clip_length_family\nfrom localstt.cli import main\nsys.exit(main({argv!r}))\n"
    )
    transcribed = project.run_offline(script)
    assert transcribed.returncode == 0, transcribed.stderr
    assert project.blocked_attempts() == []
    seconds = sf.info(str(PHRASE_WAV)).duration
    assert (out / "phrase.txt").read_text(encoding="utf-8").strip() == f"Length: {seconds:.2f} seconds"
    record = json.loads((out / "phrase.json").read_text(encoding="utf-8"))
    options = {
        "max_audio_minutes": 180.0,
        "batch_minutes": 10.0,
        "speakers": False,
        "speaker_names": [],
        "clip_length_digits": 2,
        "clip_length_pause_s": 0.0,
    }
    assert record["options"] == options  # config.toml's setting, recorded with the transcript
    assert record["revision"] == commit and record["model_key"] == "clip"
    assert record["notes"] == [f"counted {round(seconds * 16000)} samples"]

    # The API: the real app, started in a process where only this module registered the family.
    runner = tmp_path / "with_family.py"
    runner.write_text(APP_WITH_FAMILY, encoding="utf-8")
    with launch_app(project, tmp_path / "app", runner=runner) as app:
        client = OpenAI(base_url=f"{app.url}v1", api_key="unused-on-loopback")
        assert "clip" in [model.id for model in client.models.list()]
        with PHRASE_WAV.open("rb") as audio:
            reply = client.audio.transcriptions.create(file=audio, model="clip")
        assert reply.text == f"Length: {seconds:.2f} seconds"


# Registers the test family, then runs the script named by the first argument (the app) as __main__.
APP_WITH_FAMILY = """
import runpy, sys
import testkit.clip_length_family
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


# --------------------------------------------------------------------------- the store, in use


def hand_made_store(tmp_path: Path, keys: tuple[str, ...], keep_all_loaded: bool = False) -> ModelStore:
    """A store of test-family models, each exported by hand exactly as the export leaves it."""
    commit = "c" * 40
    table = '\n[models.{key}]\nkind = "{kind}"\nrepo = "{repo}"\nrevision = "{commit}"\n'
    tables = "".join(table.format(key=key, kind=KIND, repo=REPO, commit=commit) for key in keys)
    runtime = f"[runtime]\nkeep_all_loaded = {str(keep_all_loaded).lower()}\n"
    config = tmp_path / "config.toml"
    config.write_text(f'models_dir = "local_models"\n{runtime}{tables}', encoding="utf-8")
    for key in keys:
        export_dir = tmp_path / "local_models" / key
        export_dir.mkdir(parents=True)
        words = f"{key}: words\n".encode()
        (export_dir / WORDS).write_bytes(words)
        record = FileRecord(WORDS, len(words), hashlib.sha256(words).hexdigest(), "hand")
        manifest = Manifest(key, KIND, REPO, commit, (record,))
        atomic_write_text(export_dir / MANIFEST_NAME, manifest.to_json())
        record_verified(export_dir, manifest)
    return ModelStore(load_config(config))


def start(target: Any) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_loading_another_model_waits_until_the_one_in_use_is_done(tmp_path, monkeypatch):
    store = hand_made_store(tmp_path, ("a", "b"))
    CLIP_LENGTH.events.clear()
    in_use, finish, waiting = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, Any] = {}
    wait = store._released.wait

    def noted_wait(timeout: float | None = None) -> bool:
        waiting.set()
        return wait(timeout)

    monkeypatch.setattr(store._released, "wait", noted_wait)

    def use_a() -> None:
        with store.use("a") as loaded:
            seen["a"] = loaded
            in_use.set()
            finish.wait(60)
            seen["a still loaded at its end"] = store.loaded("a") is loaded
            CLIP_LENGTH.events.append("a done")

    def use_b() -> None:
        with store.use("b") as loaded:
            seen["b"] = loaded

    first = start(use_a)
    assert in_use.wait(60)
    second = start(use_b)
    assert waiting.wait(60)  # b's load is waiting for a's use to end...
    assert "b" not in seen and store.loaded("a") is seen["a"]  # ...and a is still there
    finish.set()
    first.join(60)
    second.join(60)
    assert seen["a still loaded at its end"]
    assert CLIP_LENGTH.events == ["load a", "a done", "load b"]
    assert store.loaded("a") is None and store.loaded("b") is seen["b"]
    assert seen["a"].model is None and seen["b"].model is not None  # a's memory was let go


def test_a_thread_that_holds_a_model_may_load_another_and_keeps_using_the_first(tmp_path, caplog):
    store = hand_made_store(tmp_path, ("a", "b"))
    audio = decode_audio(PHRASE_WAV, max_seconds=None)
    options = TranscribeOptions()
    caplog.set_level("INFO", logger="localstt.store")
    with store.use("a") as first:
        second = transcribe(audio, "b", options, store)  # no deadlock: this thread holds "a"
        assert store.loaded("a") is None and store.loaded("b") is not None  # a left the store...
        assert "a: unloaded" not in caplog.text  # ...but is not freed while it is in use
        segments, _ = first.family.transcribe(first, audio, options.of(ClipLengthOptions), lambda f, m: None)
        assert first.model is not None
    assert "a: unloaded" in caplog.text and first.model is None
    assert segments[0].text.startswith("a: ") and second.text.startswith("b: ")


def test_one_model_never_runs_two_requests_at_once(tmp_path):
    store = hand_made_store(tmp_path, ("a",))
    audio = decode_audio(PHRASE_WAV, max_seconds=None)
    options = TranscribeOptions.build(clip_length_pause_s=0.2)
    CLIP_LENGTH.most_running = 0
    texts: list[str] = []
    threads = [start(lambda: texts.append(transcribe(audio, "a", options, store).text)) for _ in range(4)]
    for thread in threads:
        thread.join(60)
    assert len(texts) == 4 and len(set(texts)) == 1
    assert CLIP_LENGTH.most_running == 1  # the model's own lock kept them one after another


def test_keep_all_loaded_keeps_both(tmp_path):
    store = hand_made_store(tmp_path, ("a", "b"), keep_all_loaded=True)
    with store.use("a") as a, store.use("b") as b:
        assert store.loaded("a") is a and store.loaded("b") is b
    assert store.loaded("a") is a and store.loaded("b") is b
