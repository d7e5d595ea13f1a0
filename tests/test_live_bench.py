"""benchmarks/live.py --quick (the tiny model's latency at NVIDIA's three settings), so the script
cannot rot: it runs, writes its results and its section of the doc, and its live text is the offline
text at every setting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.store_env import REPO_ROOT

pytestmark = pytest.mark.slow


def test_the_live_benchmark_runs_and_writes_its_section(tmp_path: Path):
    doc, results = tmp_path / "benchmarks.md", tmp_path / "live.json"
    doc.write_text("# Benchmarks\n\n## Live\n\nold figures\n\n## After\n\nkept\n", encoding="utf-8")
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "live.py"), "--quick"]
    command += ["--workdir", str(tmp_path / "work"), "--doc", str(doc), "--results", str(results)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(results.read_text(encoding="utf-8"))["latency"]
    assert [row["setting"] for row in rows] == ["0.8-9.6-1.6", "2-10-2", "4.8-1.6-1.6"]
    assert all(row["same_as_offline"] and row["words"] == 36 for row in rows)
    assert all(0 < row["word_p50_s"] <= row["word_p95_s"] for row in rows)
    text = doc.read_text(encoding="utf-8")
    assert "old figures" not in text and "## After\n\nkept" in text
    assert "| 0.8-9.6-1.6 |" in text
