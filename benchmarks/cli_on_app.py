"""`transcribe` from start to exit with the app running and ready (the job goes to its warm model),
against `--local` (this process imports torch and NeMo and loads the model): one 5 s file, and 20.

    uv run python benchmarks/cli_on_app.py              # the full-size random-weight Parakeet
    uv run python benchmarks/cli_on_app.py --quick      # the tiny Parakeet

The model is exported from the test hub (benchmarks/live.py's `exported_store`; `--workdir
benchmarks/work/live` reuses the live benchmark's full-size model), the app started on it with
transcribe_ui.py on a free port and waited for until its model is loaded and warm. The two ways
take turns, `--rounds` times; each figure is the median. Results go to
benchmarks/cli-on-app-results.json; docs/benchmarks.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.report import machine_name

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def ready(url: str, process: subprocess.Popen[bytes], timeout: float = 600) -> None:
    """Wait until the app says its first model is loaded (its warm-up run done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the app ended before it was ready")
        try:
            cards = httpx.get(f"{url}/v1/models", timeout=2).json()["data"]
            if cards and cards[0].get("loaded"):
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the app was not ready within {timeout:.0f} s")


def timed_cli(config: Path, out: Path, files: list[Path], *how: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "localstt.cli", *map(str, files), "--config", str(config)]
    started = time.perf_counter()
    done = subprocess.run([*command, "--out", str(out), *how], capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny Parakeet")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", default=str(HERE / "work" / "live"))
    parser.add_argument("--results", default=str(HERE / "cli-on-app-results.json"))
    args = parser.parse_args()

    import numpy as np
    import soundfile as sf

    from benchmarks.live import exported_store
    from benchmarks.models import FULL, build_parakeet_nemo, make_speech
    from testkit.app import free_port
    from testkit.tiny_models import PHRASE_WAV, TINY_PARAKEET_NEMO

    workdir = Path(args.workdir) / ("tiny" if args.quick else "full")
    nemo = TINY_PARAKEET_NEMO if args.quick else build_parakeet_nemo(workdir, FULL)[0]
    config = exported_store(workdir, nemo).config.path
    scratch = Path(tempfile.mkdtemp(prefix="cli-on-app-"))
    speech, rate = sf.read(str(PHRASE_WAV if args.quick else make_speech(workdir, 60.0)), dtype="float32")
    clips = []
    for number in range(20):  # 5 s each, each different (a copy would be skipped as done)
        start = (number * rate // 2) % max(1, len(speech) - 5 * rate)
        clip = speech[start : start + 5 * rate]
        if len(clip) < 5 * rate:
            clip = np.pad(clip, (0, 5 * rate - len(clip)))
        clips.append(scratch / f"clip-{number:02d}.wav")
        sf.write(str(clips[-1]), clip, rate, subtype="PCM_16")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = subprocess.Popen(
        [sys.executable, str(REPO / "transcribe_ui.py"), "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    rows: dict[str, list[float]] = {}
    try:
        ready(url, app)
        for _ in range(args.rounds):
            for files in (clips[:1], clips):
                for way, how in (("with the app", ("--server", url)), ("--local", ("--local",))):
                    key = f"{len(files)} file{'s' if len(files) > 1 else ''}, {way}"
                    rows.setdefault(key, []).append(timed_cli(config, scratch / "out", files, *how))
                    print(key, round(rows[key][-1], 2), flush=True)
    finally:
        app.terminate()
        app.wait(timeout=60)
        shutil.rmtree(scratch, ignore_errors=True)
    medians = {key: round(statistics.median(values), 2) for key, values in rows.items()}
    results: dict[str, Any] = {
        "machine": machine_name("cpu"),
        "date": time.strftime("%Y-%m-%d"),
        "model": "tiny Parakeet" if args.quick else "full-size random-weight Parakeet (617.8 M parameters)",
        "rounds": {key: [round(v, 2) for v in values] for key, values in rows.items()},
        "median_s": medians,
        "ratio_1_file": round(medians["1 file, with the app"] / medians["1 file, --local"], 3),
        "ratio_20_files": round(medians["20 files, with the app"] / medians["20 files, --local"], 3),
    }
    print(json.dumps(results, indent=1))
    Path(args.results).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
