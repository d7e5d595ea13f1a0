"""The suite passes on any machine: on a simulated GPU (testkit/simulated_gpu.py) the device and the
precision follow the card, and the tests that mean the CPU (their config.toml says device = "cpu")
still pass. Tests of the GPU path itself carry the `gpu` marker and skip, saying why, without one;
the `slow` marker and the fast tier's bound are checked here too."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from localstt.config import load_config
from localstt.models import family_for
from localstt.precision import Precision
from localstt.store import pick_device_and_precision
from testkit.simulated_gpu import CARDS, ENV, simulated_gpu
from testkit.store_env import REPO_ROOT
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
ASR, SPEECH_LLM = "nemo-asr", "salm"
# What each card runs with dtype = "auto": docs/install.md ("Which precision runs where"). On a card
# with native bfloat16, an ASR family whose makeup asks for bfloat16 weights is cast whole to it;
# another keeps float32 weights under bfloat16 autocast.
ASR_ON_BF16_CARDS = (
    Precision("bfloat16")
    if getattr(family_for(ASR).makeup, "bfloat16_weights", False)
    else Precision("float32", autocast="bfloat16")
)
EXPECTED = {
    "h100": {
        ASR: ASR_ON_BF16_CARDS,
        SPEECH_LLM: Precision("bfloat16", autocast="bfloat16", llm="bfloat16"),
    },
    "t4": {
        ASR: Precision("float32", encoder_autocast="float16"),
        SPEECH_LLM: Precision("float32", encoder_autocast="float16", llm="float32"),
    },
}
ON_THE_CPU = {ASR: Precision("float32"), SPEECH_LLM: Precision("float32", llm="float32")}


def shipped_config_on(tmp_path: Path, device: str) -> Path:
    text = (REPO_ROOT / "config.toml").read_text(encoding="utf-8")
    text, changed = re.subn(r'(?m)^device = "\w*"$', f'device = "{device}"', text, count=1)
    assert changed == 1
    path = tmp_path / f"config-{device}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def pick(config: Path, kind: str) -> tuple[str, Precision]:
    device, precision = pick_device_and_precision(load_config(config), family_for(kind))
    return device, dataclasses.replace(precision, note="")


@pytest.mark.parametrize("card", sorted(EXPECTED))
def test_auto_takes_the_simulated_gpu_and_the_precision_of_its_card(card: str, tmp_path: Path):
    auto, cpu, cuda = (shipped_config_on(tmp_path, device) for device in ("auto", "cpu", "cuda"))
    with simulated_gpu(CARDS[card]), warnings.catch_warnings():
        warnings.simplefilter("error")  # no "No CUDA GPU found" warning
        assert torch.cuda.is_available() and torch.cuda.get_device_name() == CARDS[card].name
        for kind in (ASR, SPEECH_LLM):
            assert pick(auto, kind) == ("cuda", EXPECTED[card][kind]), kind
            assert pick(cuda, kind) == ("cuda", EXPECTED[card][kind]), kind
            assert pick(cpu, kind) == ("cpu", ON_THE_CPU[kind]), kind
    assert not torch.cuda.is_available()  # the simulation ends with its block


def run_pytest(*args: str, simulate: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest in its own process, over this checkout, with the simulated card `simulate` if any."""
    environment = {k: v for k, v in os.environ.items() if k != ENV} | env
    if simulate:
        environment[ENV] = simulate
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "testkit.simulated_gpu"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=900, cwd=REPO_ROOT, env=environment
    )


@pytest.mark.slow  # a second pytest over the engine's and the batches' tests
def test_the_tests_that_mean_the_cpu_pass_on_a_simulated_gpu(tmp_path: Path):
    """tests/test_engine.py and tests/test_batch.py run the tiny models in the pytest process itself
    (the session's store, whose config.toml says device = "cpu"), so the simulation reaches them:
    NeMo and the app ask torch.cuda about the card there, and nothing may run on it."""
    done = run_pytest(
        "tests/test_engine.py", "tests/test_batch.py", "--basetemp", str(tmp_path / "run"), simulate="h100"
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "simulated GPU: NVIDIA H100 80GB HBM3, compute capability 9.0 (no kernel runs)" in done.stdout
    summary = done.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
    assert passed >= 25 and not re.search(r"failed|error|skipped", summary), summary


GPU_TEST = "test_on_a_real_gpu_the_store_loads_there_in_the_precision_of_its_card"


@pytest.mark.gpu
def test_on_a_real_gpu_the_store_loads_there_in_the_precision_of_its_card(exported_project, tmp_path: Path):
    from localstt.audio import decode_audio
    from localstt.engine import TranscribeOptions, transcribe
    from localstt.precision import choose_precision
    from localstt.store import ModelStore
    from testkit.store_env import config_on

    store = ModelStore(load_config(config_on(exported_project, "auto")))
    with store.use("parakeet") as loaded:
        family = family_for(ASR)
        chosen = choose_precision("cuda", torch.cuda.get_device_capability(), "auto", family.makeup)
        assert loaded.device == "cuda" and loaded.precision == chosen
        assert next(loaded.model.parameters()).device.type == "cuda"
    assert transcribe(decode_audio(PHRASE_WAV, None), "parakeet", TranscribeOptions(), store).text == PHRASE


@pytest.mark.parametrize("simulate", [None, "t4"], ids=["no GPU", "simulated GPU"])
def test_a_gpu_test_is_skipped_with_its_reason_without_a_real_gpu(simulate: str | None, tmp_path: Path):
    if simulate is None and torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the gpu test runs here")  # the other case still runs
    test = f"{Path(__file__).relative_to(REPO_ROOT)}::{GPU_TEST}"
    done = run_pytest(test, "-rs", "--basetemp", str(tmp_path / "run"), simulate=simulate)
    assert done.returncode == 0, done.stdout[-3000:]
    reason = "is simulated, no kernel runs on it" if simulate else "torch.cuda.is_available() is False"
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and "needs a CUDA GPU" in skipped[0] and reason in skipped[0], done.stdout
    assert "1 skipped" in done.stdout.splitlines()[-1]


TIERED = """
import pytest

def test_unmarked():
    pass

@pytest.mark.slow
def test_marked():
    pass
"""


def test_the_fast_tier_fails_an_unmarked_test_over_its_bound_and_leaves_out_the_slow(tmp_path: Path):
    """conftest.py's bound, set to 0 s here so that any test is over it: under -m "not slow" the
    unmarked test fails and names the marker, the slow one is left out; the full run passes both."""
    tests = tmp_path / "test_tiered.py"
    tests.write_text(TIERED, encoding="utf-8")
    common = ("-p", "conftest", "-c", str(REPO_ROOT / "pyproject.toml"), str(tests))
    path = os.pathsep.join([str(REPO_ROOT / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {"LOCALSTT_FAST_TIER_BOUND_S": "0", "PYTHONPATH": path}
    fast = run_pytest(*common, "-m", "not slow", "--basetemp", str(tmp_path / "fast"), **env)
    assert fast.returncode == 1, fast.stdout[-3000:]
    assert "over the fast tier's bound of 0 s: mark it @pytest.mark.slow" in fast.stdout
    assert "1 failed, 1 deselected" in fast.stdout.splitlines()[-1]
    full = run_pytest(*common, "--basetemp", str(tmp_path / "full"), **env)
    assert full.returncode == 0 and "2 passed" in full.stdout.splitlines()[-1], full.stdout[-3000:]
