"""benchmarks/gpu_check.py at tiny sizes on the CPU: the script a GPU machine runs cannot rot before
one is lent. No timing is asserted; the figures must be complete and agree with each other and with
the files the check was given."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import soundfile as sf

from benchmarks.gpu_check import LONG_LADDER, step_down
from testkit.tiny_models import TINY_PARAKEET_NEMO, TINY_SORTFORMER_NEMO

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}


def _checkpoint_floats(nemo: Path) -> int:
    """How many floating-point numbers a .nemo's checkpoint holds, read with torch alone (not NeMo)."""
    import torch

    with tarfile.open(nemo) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("model_weights.ckpt"))
        state = torch.load(io.BytesIO(tar.extractfile(member).read()), map_location="cpu", weights_only=True)
    return sum(t.numel() for t in state.values() if t.is_floating_point())


@pytest.fixture(scope="module")
def check(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("gpu-check")
    audio, results, doc = work / "audio", work / "gpu-results.json", work / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Soak\n\nUntouched.\n", encoding="utf-8")
    prepared = subprocess.run(
        [sys.executable, str(SCRIPT), "--prepare-audio", str(audio)],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--workdir", str(work / "scratch")]
        + ["--audio", str(audio), "--results", str(results), "--doc", str(doc)],
        capture_output=True,
        text=True,
        timeout=900,
        env=_env(),
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"results": json.loads(results.read_text()), "stdout": done.stdout, "audio": audio, "doc": doc}


@pytest.mark.slow  # the GPU check's smoke run
def test_every_step_ran_and_names_the_machine(check):
    report, steps = check["results"], check["results"]["steps"]
    assert report["machine"]["device"] == "cpu" and report["sizes"] == "tiny"
    assert report["machine_line"].startswith("CPU (") and "torch " in report["machine_line"]
    wanted = {
        "parakeet_export",
        "canary-qwen_export",
        "sortformer_export",
        "parakeet_load",
        "parakeet_decoder",
        "parakeet_weights",
        "canary_pooled",
    }
    wanted |= {"parakeet_throughput", "parakeet_full_attention", "parakeet_local_attention", "canary_load"}
    wanted |= {"canary_windows", "switching", "speakers_load", "speakers_diarize"}
    assert set(steps) == wanted  # nothing failed, nothing skipped
    for name, step in steps.items():
        for entry in step if isinstance(step, list) else [step]:
            assert entry["on"] == report["machine_line"], name
    assert f"GPU check on {report['machine_line']} (tiny sizes)" in check["stdout"]
    text = check["doc"].read_text()
    assert "## Soak\n\nUntouched." in text and "## GPU check" in text and "parakeet batch 4" in text


@pytest.mark.slow  # the GPU check's smoke run
def test_exports_came_from_the_test_hub(check):
    steps = check["results"]["steps"]
    for kind, nemo in (("parakeet", TINY_PARAKEET_NEMO), ("sortformer", TINY_SORTFORMER_NEMO)):
        assert steps[f"{kind}_export"]["requests"] > 0
        assert steps[f"{kind}_export"]["bytes_sent"] >= nemo.stat().st_size
    canary = steps["canary-qwen_export"]
    assert canary["requests"] > 0 and canary["bytes_sent"] > 0 and canary["parameters"] > 0


@pytest.mark.slow  # the GPU check's smoke run
def test_load_figures_count_every_parameter(check):
    steps = check["results"]["steps"]
    parakeet, canary, speakers = steps["parakeet_load"], steps["canary_load"], steps["speakers_load"]
    # every parameter float32 on the CPU; the loaded models hold exactly what the exports' checkpoints hold
    assert parakeet["parameters_by_dtype"] == {"float32": parakeet["weights_bytes"] // 4}
    assert parakeet["state_dict_floats"] == _checkpoint_floats(TINY_PARAKEET_NEMO)
    assert speakers["state_dict_floats"] == _checkpoint_floats(TINY_SORTFORMER_NEMO)
    assert canary["parameters_by_dtype"] == {"float32": steps["canary-qwen_export"]["parameters"]}
    for load in (parakeet, canary, speakers):
        assert load["parameter_devices"] == ["cpu"] and load["precision"] == "float32"
        assert 0 < load["load_s"] <= load["ready_s"] and load["peak_rss_bytes"] > load["weights_bytes"]
    assert parakeet["method"] == "mapped" and speakers["method"] == "plain"
    assert parakeet["first_job_s"] > 0 and parakeet["second_job_s"] > 0


@pytest.mark.slow  # the GPU check's smoke run
def test_throughput_is_measured_on_the_given_utterances(check):
    steps = check["results"]["steps"]
    durations = [sf.info(path).duration for path in sorted(check["audio"].glob("utterance-*.flac"))]
    assert len(durations) == 16
    rows = steps["parakeet_throughput"]
    assert [row["batch"] for row in rows] == [1, 4]
    for row in rows:
        assert row["recordings"] == 8
        assert row["audio_s"] == pytest.approx(sum(durations[:8]), abs=0.01)
        assert consistent(row["engine_rtfx"], row["audio_s"], row["engine_s"], rate_step=0.1)
        assert consistent(row["model_rtfx"], row["audio_s"], row["model_s"], rate_step=0.1)
    decoder = steps["parakeet_decoder"]
    assert decoder["strategy"] == "greedy_batch" and decoder["class"] == "GreedyBatchedTDTInfer"
    assert decoder["cuda_graphs_mode"] is not None
    # an answer either way: True, or why cuda.bindings does not import here
    assert decoder["cuda_bindings_import"] is True or "Error" in decoder["cuda_bindings_import"]
    # bfloat16 weights against float32 + autocast: on a bfloat16 GPU only, and it says so
    assert steps["parakeet_weights"]["skipped"] == (
        "float32 weights on cpu: only a bfloat16 GPU load compares"
    )


def consistent(
    rate: float, amount: float, seconds: float, rate_step: float, amount_step: float = 0.001
) -> bool:
    """Whether `rate` is `amount` / `seconds` as far as their rounding allows (each to its step; seconds
    to 1 ms): a run of the tiny models may take well under a second, where a fixed relative
    tolerance would not hold."""
    slowest = (amount - amount_step / 2) / (seconds + 0.0005) - rate_step / 2
    fastest = (amount + amount_step / 2) / max(seconds - 0.0005, 1e-9) + rate_step / 2
    return slowest <= rate <= fastest


@pytest.mark.slow  # the GPU check's smoke run
def test_long_recordings_take_the_attention_they_ask_for(check):
    steps = check["results"]["steps"]
    full, local = steps["parakeet_full_attention"], steps["parakeet_local_attention"]
    assert (full["minutes"], local["minutes"]) == (0.5, 1.0) and full["step_down"] == local["step_down"] == ""
    assert full["attention"].startswith("full attention") and local["attention"].startswith("local attention")
    assert full["segments"] > 0 and local["segments"] > 0


@pytest.mark.slow  # the GPU check's smoke run
def test_canary_windows_and_the_model_switches(check):
    steps = check["results"]["steps"]
    windows = steps["canary_windows"]
    assert windows["windows"] == math.ceil(60 / windows["window_seconds"])
    assert windows["window_batch_setting"] == "auto" and windows["window_batch"] == 8  # "auto" on the CPU
    # 24 short clips: pooled, their windows fill batches of 8 (3 calls against 24), the same texts.
    alone, pooled = steps["canary_pooled"]["arms"]
    assert (alone["model_calls"], alone["largest_call"]) == (24, 1)
    assert (pooled["model_calls"], pooled["largest_call"]) == (3, 8)
    assert pooled["same_texts"] is True
    assert consistent(windows["windows_per_s"], windows["windows"], windows["wall_s"], 0.001, amount_step=0)
    switching = steps["switching"]
    assert [s["loaded"] for s in switching["sequence"]] == [["parakeet"], ["canary-qwen"], ["parakeet"]]
    assert switching["passed"] is None  # GPU memory is compared on a GPU only
    (diarized,) = steps["speakers_diarize"]
    assert diarized["minutes"] == 0.5 and diarized["turns"] > 0


def test_a_long_recording_steps_down_to_what_the_time_left_holds():
    # 60 min at 60x needs ~90 s with the margin; 80 s is 0.8 of the 100 s left: 30 min (45 s) fits
    length, note = step_down(60.0, 60.0, 100.0, 0.8)
    assert length == 30.0 and note.startswith("stepped down from 60 to 30 minutes")
    assert step_down(60.0, 60.0, 1000.0, 0.8) == (60.0, "")
    length, note = step_down(60.0, 1.0, 10.0, 0.8)
    assert length == 0.0 and f"{LONG_LADDER[-1]:g} minute" in note


def test_without_a_gpu_the_cuda_check_says_so_in_one_sentence(tmp_path: Path):
    env = _env() | {"PATH": str(tmp_path)}  # no nvidia-smi on it
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--workdir", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 2 and done.stderr == ""
    assert done.stdout.strip() == (
        "No NVIDIA GPU found (nvidia-smi answers nothing); run with --device cpu --tiny for the CPU."
    )
    assert not (tmp_path / "w").exists()
