"""config.toml's `[runtime] cpu_threads`: the physical cores by default, a number when given, a Ray
actor's share at most, and set in torch when a model loads (the app's and the CLI's store)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from localstt.config import load_config
from localstt.cpu_threads import physical_cores, threads_for
from localstt.errors import ConfigError
from testkit.store_env import Project

CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


def with_threads(tmp_path: Path, value: str) -> Path:
    text, changed = re.subn(r"(?m)^cpu_threads = .*$", f"cpu_threads = {value}", CONFIG.read_text("utf-8"))
    assert changed == 1
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def fake_topology(root: Path, cores: dict[int, str]) -> Path:
    """/sys/devices/system/cpu as Linux draws it: each logical CPU names the CPUs of its core."""
    for cpu, siblings in cores.items():
        topology = root / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "core_cpus_list").write_text(siblings + "\n", encoding="ascii")
    return root


def test_hyper_thread_siblings_count_as_one_core(tmp_path: Path):
    # 4 logical CPUs on 2 cores (0 and 2 share one, 1 and 3 the other)
    sys_cpu = fake_topology(tmp_path, {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"})
    assert physical_cores({0, 1, 2, 3}, sys_cpu) == 2
    assert physical_cores({0, 2}, sys_cpu) == 1  # a process allowed on one core's two threads
    assert physical_cores({0, 1}, sys_cpu) == 2
    # Where the system does not say (no topology files), each logical CPU is a core.
    assert physical_cores({0, 1, 2}, tmp_path / "absent") == 3


def test_a_setting_a_share_and_auto(tmp_path: Path):
    assert threads_for(3) == 3
    assert threads_for(3, share=1.5) == 1  # a Ray actor with 1.5 CPUs: one thread
    assert threads_for(3, share=0.25) == 1  # never none
    assert threads_for(None) == physical_cores()
    assert load_config(with_threads(tmp_path, '"auto"')).runtime.cpu_threads is None
    assert load_config(with_threads(tmp_path, "3")).runtime.cpu_threads == 3


@pytest.mark.parametrize("value", ["0", '"many"', "2.5", "true"])
def test_a_bad_setting_is_one_sentence(tmp_path: Path, value: str):
    with pytest.raises(ConfigError) as caught:
        load_config(with_threads(tmp_path, value))
    message = str(caught.value)
    assert "[runtime].cpu_threads" in message and '"auto"' in message and "\n" not in message


LOAD_AND_REPORT = """
import sys, torch
from localstt.config import load_config
from localstt.store import ModelStore
before = torch.get_num_threads()
ModelStore(load_config(sys.argv[1])).load("parakeet")
print(before, torch.get_num_threads())
"""


@pytest.mark.slow
def test_loading_a_model_sets_torchs_threads(exported_project: Project):
    """In a process of its own (torch's threads are per process): torch starts on its own default,
    and the load sets what config.toml says."""
    config = exported_project.config
    text = config.read_text(encoding="utf-8")
    one_thread = config.with_name("config-one-thread.toml")
    one_thread.write_text(re.sub(r"(?m)^cpu_threads = .*$", "cpu_threads = 1", text), encoding="utf-8")
    for path, expected in ((one_thread, 1), (config, physical_cores())):
        result = subprocess.run(
            [sys.executable, "-c", LOAD_AND_REPORT, str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            env=exported_project.env(),
        )
        assert result.returncode == 0, result.stderr[-2000:]
        before, after = map(int, result.stdout.split()[-2:])
        assert after == expected, (path.name, before, after)
