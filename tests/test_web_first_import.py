"""The web wing makes the process offline and switches Gradio's analytics off before anything can
import gradio or the hub client (localstt/web/__init__.py): the switches are read at import time, so
the order is the whole defence."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from testkit.store_env import REPO_ROOT

# Records the environment at the moment each watched library is first imported, then imports `target`.
WATCH = """
import importlib.abc, json, os, sys

WATCHED = ("gradio", "huggingface_hub")
SWITCHES = ("GRADIO_ANALYTICS_ENABLED", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")
seen = {}

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in WATCHED and name not in seen:
            seen[name] = {switch: os.environ.get(switch) for switch in SWITCHES}
        return None

sys.meta_path.insert(0, Watch())
__import__(sys.argv[1])
print(json.dumps(seen))
"""


@pytest.mark.parametrize("target", ["transcribe_ui", "localstt.web.page", "localstt.web.server"])
def test_gradio_and_the_hub_client_are_imported_only_after_the_switches(target):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GRADIO_", "TRANSFORMERS_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-c", WATCH, target],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(seen) == {"gradio", "huggingface_hub"}  # both imported, so the order mattered
    for library, switches in seen.items():
        assert switches == {
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }, library
