"""Throughput of a batch job: one by one, batched, and Ray Data with 1 and 2 actors, in one run.

    uv run python benchmarks/throughput.py                 # tiny Parakeet
    uv run python benchmarks/throughput.py --model full    # full-size random-weight Parakeet

The same fixed set of short espeak-ng recordings (sentences x speaking rates x voices, 16 kHz WAVs)
goes through:

* one by one: `engine.transcribe` per file, in this process, model already loaded;
* batched: `runs.batch.transcribe_all` (decode threads + the family's batches), same process and model;
* Ray, 1 and 2 actors: `runs.ray.run_on_ray` on a local instance (127.0.0.1 only) that was started
  once; each job starts its own actor pool, each actor loading one model replica, and writes the
  .txt outputs and job.jsonl as the CLI does.

Ray's fixed start-up cost is measured, not guessed: `ray.init` on its own, and for each job the
time until the last actor of its pool had loaded its model (each result carries its actor's load
time and ready time); *steady* throughput counts only the time after that. The model comes from
the test hub on 127.0.0.1 through the real export script, as in benchmarks/api_overhead.py. The
figures go to the "Throughput" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

from benchmarks.report import machine_name, replace_section, section_text  # noqa: E402
from localstt.compat import tarfile_with_extraction_filters  # noqa: E402

tarfile_with_extraction_filters()

SECTION = "## Throughput"
RATES = (140, 175, 210)  # espeak-ng words per minute
VOICES = ("en-us", "en-gb")


def make_recordings(folder: Path) -> list[Path]:
    """One short WAV per sentence, rate and voice (made once)."""
    from benchmarks.models import SENTENCES

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, (sentence, rate, voice) in enumerate(
        (s, r, v) for s in SENTENCES for r in RATES for v in VOICES
    ):
        target = folder / f"clip-{number:02d}.wav"
        if not target.exists():
            raw = folder / "raw.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(raw), sentence], check=True)
            subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(target)], check=True)
            raw.unlink()
        paths.append(target)
    return paths


def figures(seconds: float, files: int, audio_s: float) -> dict[str, float]:
    return {
        "seconds": round(seconds, 3),
        "files_per_s": round(files / seconds, 3),
        "rtfx": round(audio_s / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--repeat", type=int, default=4, help="times the set of clips is transcribed")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each in-process contender (median)")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()

    import soundfile as sf
    import torch

    from benchmarks.api_overhead import exported_project
    from benchmarks.models import FULL, build_parakeet_nemo
    from localstt import engine
    from localstt.config import load_config
    from localstt.runs import ray as ray_job
    from localstt.runs import ray_cluster
    from localstt.runs.batch import transcribe_all
    from localstt.store import ModelStore
    from testkit.tiny_models import TINY_PARAKEET_NEMO

    model_dir = HERE / "work" / f"api-{args.model}"  # shared with api_overhead.py: built once
    model_dir.mkdir(parents=True, exist_ok=True)
    nemo = TINY_PARAKEET_NEMO if args.model == "tiny" else build_parakeet_nemo(model_dir, FULL)[0]
    config = exported_project(model_dir, nemo)
    workdir = HERE / "work" / f"throughput-{args.model}"
    paths = make_recordings(workdir / "clips") * args.repeat
    audio_s = sum(sf.info(str(path)).duration for path in paths)
    count = len(paths)

    store = ModelStore(load_config(config))
    options = store.config.transcription
    loaded = store.load("parakeet")
    engine.transcribe(paths[0], "parakeet", options, store)  # warm-up: first-call costs aside
    results: dict[str, Any] = {}
    texts: dict[str, list[str]] = {}

    def one_by_one() -> list[str]:
        return [engine.transcribe(path, "parakeet", options, store).text for path in paths]

    def batched() -> list[str]:
        return [
            r.transcript.text if r.transcript else ""
            for r in transcribe_all(paths, "parakeet", options, store)
        ]

    in_process = {"one_by_one": one_by_one, "batched": batched}
    times: dict[str, list[float]] = {name: [] for name in in_process}
    for round_ in range(args.rounds):  # alternating, the median of each: a busy machine hits both
        order = list(in_process.items())
        for name, call in order if round_ % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            texts[name] = call()
            times[name].append(time.perf_counter() - started)
    for name, values in times.items():
        results[name] = figures(statistics.median(values), count, audio_s)

    started = time.perf_counter()
    ray_cluster.start_ray(None)
    ray_init_s = time.perf_counter() - started
    import ray

    resources = ray.cluster_resources()
    try:
        for actors in (1, 2):
            name = f"ray_{actors}_actor{'s' if actors > 1 else ''}"
            out = workdir / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)
            arrived: list[float] = []
            began = time.time()
            done = ray_job.run_on_ray(
                paths,
                "parakeet",
                ["txt"],
                out,
                config,
                actors=actors,
                progress=lambda _, arrived=arrived: arrived.append(time.time()),
            )
            seconds = time.time() - began
            texts[name] = [r.transcript.text if r.transcript else "" for r in done]
            actor_facts = {r.ray.actor_pid: r for r in done if r.ray}
            ready = max(
                r.ray.actor_ready_at for r in actor_facts.values() if r.ray
            )  # the whole pool has its model
            results[name] = {
                **figures(seconds, count, audio_s),
                "steady": figures(max(arrived) - ready, count, audio_s),
                "pool_start_s": round(ready - began, 3),
                "actors_used": len(actor_facts),
                "model_loads": sorted(r.ray.actor_loads for r in actor_facts.values() if r.ray),
                "model_load_s": sorted(round(r.ray.load_s, 3) for r in actor_facts.values() if r.ray),
            }
    finally:
        ray_cluster.stop_ray()

    base = results["one_by_one"]["files_per_s"]
    result: dict[str, Any] = {
        "model": args.model,
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "files": count,
        "audio_s": round(audio_s, 2),
        "device": loaded.device,
        "threads": torch.get_num_threads(),
        "ray_resources": {k: v for k, v in resources.items() if k in ("CPU", "GPU")},
        "ray_init_s": round(ray_init_s, 3),
        "results": results,
        "ratios_vs_one_by_one": {name: round(r["files_per_s"] / base, 3) for name, r in results.items()},
        "steady_ratios_vs_one_by_one": {
            name: round(r["steady"]["files_per_s"] / base, 3) for name, r in results.items() if "steady" in r
        },
        "same_text": all(t == texts["one_by_one"] for t in texts.values()),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "machine": machine_name(loaded.device),
    }
    print(json.dumps(result, indent=2))
    (workdir / "result.json").write_text(json.dumps(result, indent=2))
    write_section(args.doc, result)


def write_section(doc: Path, result: dict[str, Any]) -> None:
    """Replace (or add) this benchmark's part of docs/benchmarks.md; one table per model size."""
    old = section_text(doc.read_text(encoding="utf-8"), SECTION)
    blocks = {
        m[1]: m[0].rstrip("\n") + "\n"
        for m in re.finditer(r"(?ms)^### (tiny|full) Parakeet.*?(?=^### |\Z)", old)
    }
    rows = []
    labels = {
        "one_by_one": "one by one (`engine.transcribe`)",
        "batched": "batched (`runs.batch.transcribe_all`)",
        "ray_1_actor": "Ray Data, 1 actor",
        "ray_2_actors": "Ray Data, 2 actors",
    }
    for name, label in labels.items():
        r = result["results"][name]
        steady = r.get("steady")
        rows.append(
            f"| {label} | {r['seconds']:.2f} s | {r['files_per_s']:.2f} | {r['rtfx']:.1f} | "
            f"{result['ratios_vs_one_by_one'][name]:.2f}x | "
            + (
                f"{steady['files_per_s']:.2f} ({result['steady_ratios_vs_one_by_one'][name]:.2f}x) | "
                f"{r['pool_start_s']:.1f} s | {', '.join(f'{s:.1f}' for s in r['model_load_s'])} s |"
                if steady
                else "| | |"
            )
        )
    blocks[result["model"]] = "\n".join(
        [
            f"### {result['model']} Parakeet ({result['parameters'] / 1e6:.1f} M parameters)",
            "",
            f"{result['files']} files, {result['audio_s']:.0f} s of audio; {result['device']}, "
            f"{result['threads']} torch threads in the driver; Ray: {result['ray_resources']}, "
            f"`ray.init` {result['ray_init_s']:.1f} s; same text everywhere: "
            f"{'yes' if result['same_text'] else 'NO'}; load average {result['load_average']} "
            f"({result['machine']}).",
            "",
            "| contender | wall | files/s | RTFx | vs one by one | steady files/s (vs one by one) | "
            "Ray pool start-up | model load per actor |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    section = "\n".join(
        [
            SECTION,
            "",
            "`benchmarks/throughput.py`: the same short espeak-ng recordings (4 sentences x 3 rates x 2 "
            "voices, the set 4 times over) one by one and batched (median of 3 alternating runs each), "
            "and through `localstt.runs.ray.run_on_ray` with 1 and 2 actors on a local Ray instance started "
            "once. Ray's wall time is the whole job: the actor pool's start-up (worker processes, imports, "
            "one model load per actor), then decode tasks, transcription, and the .txt outputs and "
            "job.jsonl lines written by the driver; *steady* counts only the time after the last actor had "
            "its model (until the last file was written). `ray.init` comes on top, once per process. On "
            "CPU, Ray limits each actor's torch to its CPU share (1 thread), while the in-process "
            "contenders use every core.",
            "",
            *(blocks[size] for size in ("tiny", "full") if size in blocks),
        ]
    )
    replace_section(doc, SECTION, section)


if __name__ == "__main__":
    main()
