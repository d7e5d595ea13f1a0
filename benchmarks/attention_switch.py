"""The switch to local attention and back that every long recording makes, in a folder of 4 long
recordings: NeMo's `change_attention_model` there and back for each (how it was done before), against
the kept local modules (localstt/models/parakeet_attention.py): seconds and the process's peak memory
per recording, side by side, on the full-size random-weight Parakeet.

    uv run python benchmarks/attention_switch.py

Only the switch is timed (what a recording's transcription costs on top of it does not change; the
transcripts are the same, tests/test_attention_switch.py). The model is exported from the test hub
and loaded by the app's store; `--workdir benchmarks/work/live` reuses the live benchmark's model.
The two ways run in processes of their own, so that one's memory does not stand in the other's
figures. Results go to benchmarks/attention-switch-results.json; docs/benchmarks.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.report import machine_name

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RECORDINGS = 4


class PeakRss:
    """The process's highest resident memory while the block runs (sampled every 5 ms)."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRss:
        self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def switch_rows(workdir: Path, way: str) -> list[dict[str, Any]]:
    """Per recording: seconds of the switch there and back, and the peak RSS above the loaded model."""
    import localstt.offline  # noqa: F401  # before NeMo and the hub client
    from benchmarks.live import exported_store
    from benchmarks.models import FULL, build_parakeet_nemo
    from localstt.models.parakeet_attention import LOCAL, local_attention

    nemo, _, _ = build_parakeet_nemo(workdir, FULL)
    store = exported_store(workdir, nemo)
    loaded = store.load("parakeet")
    model = loaded.model
    full = (model.cfg.encoder.self_attention_model, list(model.cfg.encoder.att_context_size))
    rows = []
    for number in range(RECORDINGS):
        with PeakRss() as rss:
            base = rss.peak
            started = time.perf_counter()
            if way == "kept":
                with local_attention(loaded, True):
                    pass
            else:
                model.change_attention_model(*LOCAL)
                model.change_attention_model(*full)
            seconds = time.perf_counter() - started
        rows.append(
            {
                "way": way,
                "recording": number + 1,
                "switch_s": round(seconds, 3),
                "peak_above_mb": round((rss.peak - base) / 2**20),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=str(HERE / "work" / "live" / "full"))
    parser.add_argument("--results", default=str(HERE / "attention-switch-results.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(switch_rows(Path(args.workdir), args.child)))
        return
    rows = []
    for way in ("rebuilt each time", "kept"):
        command = [
            sys.executable,
            "-m",
            "benchmarks.attention_switch",
            "--child",
            way,
            "--workdir",
            args.workdir,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
        rows += json.loads(done.stdout.strip().splitlines()[-1])
    for row in rows:
        print(row, flush=True)
    results = {"machine": machine_name("cpu"), "date": time.strftime("%Y-%m-%d"), "rows": rows}
    Path(args.results).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
