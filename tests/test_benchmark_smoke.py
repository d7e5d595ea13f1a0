"""benchmarks/run.py --quick on toy sizes: it still runs end to end and writes every number and ratio.

No timing is asserted here (the benchmark is not a test); only that the script works and that its
results are complete and consistent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONTENDERS = {"load_model", "from_pretrained", "restore_from", "floor", "load_model_plain"}


@pytest.mark.slow  # the benchmark's own run, at toy sizes
def test_quick_benchmark_writes_complete_results(tmp_path: Path):
    results_path, doc_path = tmp_path / "results.json", tmp_path / "benchmarks.md"
    doc_path.write_text("# Old report\n\n## Soak\n\nFigures from the soak test.\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "run.py"),
            "--quick",
            "--workdir",
            str(tmp_path / "work"),
            "--results",
            str(results_path),
            "--doc",
            str(doc_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(results_path.read_text())

    assert results["quick"] is True and results["rounds"] == 1
    assert {"cpu", "cores", "memory_gib", "torch", "nemo_toolkit"} <= set(results["machine"])
    assert results["model"]["parameters"] > 0 and results["model"]["weights_bytes"] > 0

    ready = results["time_to_ready"]
    assert set(ready) == CONTENDERS
    for name, entry in ready.items():
        (run,) = entry["runs"]
        assert run["contender"] == name and run["on_meta"] == 0 and run["output_length"] >= 0
        assert 0 < run["imports_s"] <= run["load_s"] <= run["ready_s"]
        assert entry["median"]["ready_s"] == run["ready_s"]
        assert run["temp_files_left"] == 0
    # NeMo untars the whole archive per load; the loader maps the weights and writes no weight bytes.
    weights = results["model"]["weights_bytes"]
    assert ready["restore_from"]["median"]["disk_written_during_load"] >= weights
    assert ready["from_pretrained"]["median"]["disk_written_during_load"] >= weights
    assert ready["load_model"]["median"]["disk_written_during_load"] < weights / 2

    ratios = results["ratios"]
    ours = ready["load_model"]["median"]
    for other in CONTENDERS - {"load_model"}:
        expected = ours["ready_s"] / ready[other]["median"]["ready_s"]
        assert abs(ratios[f"ready_vs_{other}"] - expected) < 1e-3
        assert f"load_vs_{other}" in ratios
    assert abs(ratios["peak_rss_ready_vs_weights"] - ours["peak_rss_ready"] / weights) < 1e-3

    overhead = results["overhead"]
    assert len(overhead["engine_s"]) == len(overhead["model_s"]) == 1
    assert abs(overhead["ratio"] - overhead["engine_median_s"] / overhead["model_median_s"]) < 1e-3
    assert overhead["rtfx_engine"] > 0 and overhead["rtfx_model"] > 0

    downloads = results["downloads"]
    first, again = downloads["first_export"], downloads["re_export"]
    assert first["rc"] == 0 and abs(first["bytes_vs_file_size"] - 1) < 0.01
    assert again["bytes_sent"] == 0 and again["requests"] == 0
    assert downloads["verify"]["vs_sha256sum"] > 0
    assert results["gpu"]["available"] is False

    # The Canary-sized SALM: exported through the test hub, loaded three ways, each generated 4 tokens.
    canary = results["canary"]
    assert set(canary["time_to_ready"]) == {"canary_load_model", "canary_from_pretrained", "canary_floor"}
    for name, entry in canary["time_to_ready"].items():
        (run,) = entry["runs"]
        assert run["contender"] == name and run["on_meta"] == 0 and run["output_length"] == 4
        assert run["parameters"] == canary["model"]["parameters"] > canary["model"]["lora_parameters"] > 0
    export = canary["export"]
    assert export["rc"] == 0 and abs(export["bytes_sent"] / export["file_bytes"] - 1) < 0.01
    assert canary["model"]["safetensors_bytes"] < export["file_bytes"]

    names = {target["name"] for target in results["targets"]}
    assert len(names) == len(results["targets"]) >= 10
    assert all(isinstance(target["met"], bool) for target in results["targets"])

    doc = doc_path.read_text()
    headings = ("## Targets", "## Time to ready", "## Engine overhead", "## Canary", "## Downloads", "## GPU")
    for heading in headings:
        assert heading in doc
    # The hand-written soak section survives a new report; the old report does not.
    assert doc.endswith("## Soak\n\nFigures from the soak test.\n") and "# Old report" not in doc
