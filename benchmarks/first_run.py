"""What the app's warm-up saves the first job: the model's first run, made on a second of quiet
before the model is called ready (localstt.store `warm_up`, its family's `first_run`).

    uv run python benchmarks/first_run.py [--rounds 3] [--tiny] [--workdir benchmarks/work/first-run]

The full-size random-weight Parakeet-TDT-0.6B-v2 (benchmarks/models.py; `--tiny`: the tests' tiny
model) is exported from the test hub on 127.0.0.1 with export_models.py. Then, each in a fresh
process, alternating round by round:
* `load`: the store loads the model as a job does (no first run), then a 5 s clip is transcribed
  through localstt.engine, then the same clip again;
* `warm_up`: the store's warm-up (load, then the first run), then the same two jobs.
The first job's seconds after `load` against after `warm_up` is what a user who clicks once the
status says "ready" no longer waits; the second job is the steady state. Prints the table and writes
WORKDIR/first-run.json.
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

CONTENDERS = ("load", "warm_up")
CLIP_SECONDS = 5.0


def child(mode: str, config: str, clip: str) -> None:
    from localstt import engine
    from localstt.config import load_config
    from localstt.store import ModelStore

    store = ModelStore(load_config(config))
    started = time.perf_counter()
    if mode == "warm_up":
        store.warm_up("parakeet")
    else:
        store.load("parakeet")
    ready_s = time.perf_counter() - started
    options = store.config.transcription
    jobs = []
    for _ in range(2):
        mark = time.perf_counter()
        engine.transcribe(Path(clip), "parakeet", options, store)
        jobs.append(time.perf_counter() - mark)
    print(
        "RESULT "
        + json.dumps({"mode": mode, "ready_s": ready_s, "first_job_s": jobs[0], "second_job_s": jobs[1]})
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny Parakeet")
    parser.add_argument("--workdir", type=Path, default=HERE / "work" / "first-run")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    from benchmarks import gpu_check
    from benchmarks.report import machine_name
    from testkit.hubserver import run_hub
    from testkit.store_env import make_project

    work = args.workdir.resolve()
    audio = work / "audio"
    gpu_check.prepare_audio(audio)
    clip = work / "clip.wav"
    import soundfile as sf

    sf.write(
        clip,
        gpu_check.recording(gpu_check.read_utterances(audio), CLIP_SECONDS / 60),
        16000,
        subtype="PCM_16",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env |= {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    shutil.rmtree(work / "project", ignore_errors=True)
    with run_hub() as hub:  # the build is kept in WORKDIR; the export is made anew each run
        project = make_project(work / "project", hub)
        gpu_check.write_project_config(project, "cpu")
        gpu_check.export("parakeet", gpu_check.run_builder("parakeet", work, args.tiny, audio, env), project)
        config = str(project.config)
        del project
    del hub

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    for round_ in range(args.rounds):
        order = CONTENDERS if round_ % 2 == 0 else CONTENDERS[::-1]
        for mode in order:
            command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, config, str(clip)]
            done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                raise RuntimeError(f"{mode} failed: {done.stderr[-3000:]}")
            runs[mode].append(json.loads(lines[-1][7:]))
        print(f"round {round_ + 1}/{args.rounds} done", flush=True)
    medians = {
        mode: {
            key: statistics.median(run[key] for run in runs[mode])
            for key in ("ready_s", "first_job_s", "second_job_s")
        }
        for mode in CONTENDERS
    }
    result = {
        "machine": machine_name("cpu"),
        "model": "tiny" if args.tiny else "full",
        "clip_seconds": CLIP_SECONDS,
        "rounds": args.rounds,
        "runs": runs,
        "medians": medians,
        "first_job_after_warm_up_vs_after_load": medians["warm_up"]["first_job_s"]
        / medians["load"]["first_job_s"],
    }
    (work / "first-run.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(
        f"\n{result['machine']}, {result['model']} Parakeet, {CLIP_SECONDS:g} s clip, "
        f"medians of {args.rounds}:"
    )
    print("| | ready (load or warm-up) | first job | second job |\n|---|---|---|---|")
    for mode in CONTENDERS:
        m = medians[mode]
        print(f"| {mode} | {m['ready_s']:.2f} s | {m['first_job_s']:.2f} s | {m['second_job_s']:.2f} s |")
    print(f"first job after warm_up / after load: {result['first_job_after_warm_up_vs_after_load']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
