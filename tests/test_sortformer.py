"""The speaker diarizer as a model of the store (localstt/models/sortformer.py): the tiny Sortformer
exported once from the test hub at a pinned commit, verified, then loaded offline beside Parakeet."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from test_export import gets_of

from testkit.store_env import SORTFORMER_NEMO_NAME, Project
from testkit.tiny_models import (
    PHRASE_DIALOGUE_JSON,
    PHRASE_DIALOGUE_WAV,
    SORTFORMER_REPO_ID,
    TINY_SORTFORMER_NEMO,
)

TRUTH: list[dict[str, Any]] = json.loads(PHRASE_DIALOGUE_JSON.read_text(encoding="utf-8"))

DIARIZE = """
import json, sys
from pathlib import Path
from localstt import engine
from localstt.audio import decode_audio
from model_loader import default_store

store = default_store()
parakeet = store.load("parakeet")
turns = engine.diarize(decode_audio(Path(sys.argv[1]), None), store)
sortformer = store.loaded("sortformer")
result = {
    "class": type(sortformer.model).__name__,
    "method": sortformer.method,
    "turns": [[t.start, t.end, t.speaker] for t in turns],
    "parakeet_still_loaded": store.loaded("parakeet") is parakeet,
    "again_is_cached": store.load("sortformer") is sortformer,
    "status": {row.key: row.exported for row in store.status()},
}
print("RESULT " + json.dumps(result))
"""


def test_exported_once_at_the_pin_and_verified(project: Project):
    result = project.export("sortformer")
    assert result.returncode == 0, result.stderr
    pinned = project.hub.ref(SORTFORMER_REPO_ID)
    assert f'revision = "{pinned}"' in project.config.read_text()
    manifest = json.loads((project.models_dir / "sortformer" / "manifest.json").read_text())
    assert (manifest["kind"], manifest["repo"], manifest["revision"]) == (
        "sortformer",
        SORTFORMER_REPO_ID,
        pinned,
    )
    nemo = TINY_SORTFORMER_NEMO.read_bytes()
    assert [(f["path"], f["size"], f["sha256"]) for f in manifest["files"]] == [
        (SORTFORMER_NEMO_NAME, len(nemo), hashlib.sha256(nemo).hexdigest())
    ]
    assert (project.models_dir / "sortformer" / SORTFORMER_NEMO_NAME).read_bytes() == nemo
    # the .nemo's body came down once (an LFS blob, addressed by its sha256); the README never
    assert gets_of(project.hub, SORTFORMER_REPO_ID, SORTFORMER_NEMO_NAME, nemo) == 1
    assert not any("README.md" in r.path for r in project.hub.requests if r.method == "GET")

    project.hub.clear_log()
    again = project.export("sortformer")
    assert again.returncode == 0 and project.hub.requests == []


def test_loaded_offline_beside_parakeet_and_it_tells_the_voices_apart(project: Project):
    assert project.export().returncode == 0
    project.hub.clear_log()
    result = project.run_offline(DIARIZE, str(PHRASE_DIALOGUE_WAV))
    assert result.returncode == 0, result.stderr[-3000:]
    assert project.blocked_attempts() == []
    assert project.hub.requests == []
    values = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert values["class"] == "SortformerEncLabelModel"
    assert values["method"] == "plain"  # its class cannot be built on the meta device
    assert "Traceback" not in result.stderr and "instantiation failed" not in result.stderr
    assert values["parakeet_still_loaded"] is True  # keep_all_loaded = false drops no transcriber for it
    assert values["again_is_cached"] is True
    assert values["status"] == {
        "parakeet": True,
        "parakeet-v3": True,
        "canary-qwen": True,
        "canary-1b-v2": True,
        "sortformer": True,
    }
    turns = values["turns"]
    assert turns == sorted(turns) and {speaker for _, _, speaker in turns} == {0, 1}
    for truth in TRUTH:
        a, b = truth["start"], truth["end"]
        right = sum(max(0.0, min(b, e) - max(a, s)) for s, e, k in turns if k == truth["speaker"])
        wrong = sum(max(0.0, min(b, e) - max(a, s)) for s, e, k in turns if k != truth["speaker"])
        assert right > 0.8 * (b - a) and wrong < 0.2 * (b - a), (truth, turns)
