"""Torch's CPU threads on a busy machine: the tiny Parakeet's time per call with torch's own default,
with `cpu_threads = "auto"` (the physical cores) and with 1 thread, while `stress-ng --cpu N` keeps
every core busy beside it (and, for comparison, on a quiet machine); each under OpenMP's two wait
policies (`OMP_WAIT_POLICY`: ACTIVE spins at each barrier, PASSIVE sleeps), each policy in a process
of its own since OpenMP reads it when torch loads.

    uv run python benchmarks/cpu_threads.py

The model is exported from the test hub and loaded by the app's store (benchmarks/live.py's
`exported_store`). Each setting makes 20 calls on the phrase after 3 untimed ones; the settings take
turns, call by call, so that every one sees the same machine. Results go to
benchmarks/cpu-threads-results.json; docs/benchmarks.md ("## CPU threads") quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.report import machine_name

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CALLS = 20


def per_call(store: Any, settings: dict[str, int], calls: int) -> dict[str, list[float]]:
    """Seconds of each call, per setting, the settings taking turns."""
    import torch

    from localstt import engine
    from testkit.tiny_models import PHRASE_WAV

    options = store.config.transcription
    seconds: dict[str, list[float]] = {name: [] for name in settings}
    for number in range(calls + 3):
        for name, threads in settings.items():
            torch.set_num_threads(threads)
            started = time.perf_counter()
            engine.transcribe(PHRASE_WAV, "parakeet", options, store)
            if number >= 3:
                seconds[name].append(time.perf_counter() - started)
    return seconds


def measure_policy(workdir: Path) -> list[dict[str, Any]]:
    """The rows of this process's OpenMP wait policy (set before torch loaded)."""
    import torch

    import localstt.offline  # noqa: F401  # before NeMo and the hub client
    from benchmarks.live import exported_store
    from localstt.cpu_threads import physical_cores
    from testkit.tiny_models import TINY_PARAKEET_NEMO

    default = torch.get_num_threads()
    store = exported_store(workdir, TINY_PARAKEET_NEMO)
    store.load("parakeet")
    settings = {f"torch's default ({default})": default, f'"auto" ({physical_cores()})': physical_cores()}
    settings["1"] = 1
    cpus = os.cpu_count() or 1
    policy = os.environ.get("OMP_WAIT_POLICY", "")
    rows = []
    for machine in ("quiet", f"stress-ng --cpu {cpus} beside"):
        stress = None
        if machine != "quiet":
            stress = subprocess.Popen(["stress-ng", "--cpu", str(cpus), "--timeout", "900"])
            time.sleep(2)
        try:
            seconds = per_call(store, settings, CALLS)
        finally:
            if stress is not None:
                stress.terminate()
                stress.wait()
        for name, values in seconds.items():
            rows.append(
                {
                    "machine": machine,
                    "wait_policy": policy,
                    "threads": name,
                    "median_ms": round(statistics.median(values) * 1000, 1),
                    "worst_ms": round(max(values) * 1000, 1),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=str(HERE / "work" / "cpu-threads"))
    parser.add_argument("--results", default=str(HERE / "cpu-threads-results.json"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_policy(Path(args.workdir))))
        return
    if shutil.which("stress-ng") is None:
        raise SystemExit("stress-ng is needed (apt install stress-ng)")
    rows = []
    for policy in ("ACTIVE", "PASSIVE"):
        command = [sys.executable, "-m", "benchmarks.cpu_threads", "--child", "--workdir", args.workdir]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            env={**os.environ, "OMP_WAIT_POLICY": policy},
        )
        rows += json.loads(done.stdout.strip().splitlines()[-1])
    for row in rows:
        print(row, flush=True)
    date = time.strftime("%Y-%m-%d")
    results = {"machine": machine_name("cpu"), "date": date, "calls": CALLS, "rows": rows}
    Path(args.results).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
