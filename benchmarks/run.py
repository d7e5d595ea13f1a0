"""Benchmarks: time to ready, memory, temp disk, engine overhead and downloads, against NeMo's own loading.

    uv run python benchmarks/run.py            # full size: about 2 hours on 2 CPU cores
    uv run python benchmarks/run.py --resume   # only the phases missing from WORKDIR/partial.json
    uv run python benchmarks/run.py --quick    # toy sizes, one round: checks the script still works

Everything is measured in one run: the loaders alternate round by round, each load in a fresh
process, medians over the rounds. Results go to benchmarks/results.json and docs/benchmarks.md
(--quick: to benchmarks/work/quick/ unless --results/--doc say otherwise). Nothing is downloaded
from the internet: models are random-weight builds of the real architectures (benchmarks/models.py,
benchmarks/canary.py) and downloads go to the test hub on 127.0.0.1 (testkit/hubserver.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

from benchmarks.report import console_table, summarize  # noqa: E402
from benchmarks.write_doc import write_doc  # noqa: E402
from localstt.compat import tarfile_with_extraction_filters  # noqa: E402

tarfile_with_extraction_filters()  # extractall(filter="data") below: PEP 706, missing before Python 3.11.4
import tarfile  # noqa: E402

REPO_ID = "nvidia/parakeet-tdt-0.6b-v2"
NEMO_NAME = "parakeet-tdt-0.6b-v2.nemo"
CONTENDERS = ["load_model", "from_pretrained", "restore_from", "floor", "load_model_plain"]


def child(
    mode: str, args: dict[str, Any], env: dict[str, str], *extra: str, timeout: float | None = 3600
) -> list[dict[str, Any]]:
    """Run benchmarks/child.py in a fresh process; its RESULT lines."""
    command = [sys.executable, str(HERE / "child.py"), mode, *extra, json.dumps(args)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"child {mode} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return [json.loads(line[7:]) for line in done.stdout.splitlines() if line.startswith("RESULT ")]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Phases:
    """Each phase's result, start/end time and machine load, saved after every phase to partial.json.

    With --resume, phases already in partial.json are not run again (their own times are kept).
    """

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.done: dict[str, Any] = json.loads(path.read_text()) if resume and path.exists() else {}

    def run(self, name: str, work: Callable[[], Any]) -> Any:
        if name in self.done:
            print(f"{name}: reusing the result measured at {self.done[name]['started']}", flush=True)
            return self.done[name]["result"]
        print(f"{name} ...", flush=True)
        started, load = now(), os.getloadavg()[0]
        result = work()
        self.done[name] = {"started": started, "finished": now(), "loadavg_start": load}
        self.done[name] |= {"loadavg_end": os.getloadavg()[0], "result": result}
        self.path.write_text(json.dumps(self.done, indent=1) + "\n", encoding="utf-8")
        return result

    def timeline(self) -> dict[str, Any]:
        return {name: {k: v for k, v in entry.items() if k != "result"} for name, entry in self.done.items()}


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem = int(
        next(
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    )
    versions = {p: metadata.version(p) for p in ("torch", "nemo_toolkit", "huggingface_hub")}
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        **versions,
        "gpu": "none (CPU only)",
    }


def base_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(workdir / "hf-home"),
        HF_HUB_CACHE=str(workdir / "hf-cache"),
        HF_HUB_DISABLE_TELEMETRY="1",
        NEMO_TELEMETRY="0",
        PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]),
        PYTHONUNBUFFERED="1",
    )
    return env


def downloads(nemo: Path, workdir: Path, verify_rounds: int) -> dict[str, Any]:
    """Export from the local test hub, export again, seed an HF cache, time --verify against sha256sum."""
    from testkit.hubserver import run_hub
    from testkit.store_env import make_project

    root = workdir / "project"
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(workdir / "hf-cache", ignore_errors=True)
    size = nemo.stat().st_size
    results: dict[str, Any] = {}
    with run_hub() as hub:
        hub.add_commit(REPO_ID, {"README.md": b"# model card\n", NEMO_NAME: nemo.read_bytes()})
        project = make_project(root, hub)
        export = {"argv": ["--config", str(project.config), "parakeet"]}
        for name in ("first_export", "re_export"):
            hub.clear_log()
            started = time.perf_counter()
            (run,) = child("export", export, project.env())
            wall = time.perf_counter() - started
            if run["rc"] != 0:
                raise RuntimeError(f"export_models.py failed in {name}")
            results[name] = {
                **run,
                "wall_s": wall,
                "bytes_sent": hub.bytes_sent,
                "requests": len(hub.requests),
                "file_bytes": size,
            }
        hub.clear_log()
        seed = {"files": [[REPO_ID, NEMO_NAME]], "cache": str(workdir / "hf-cache")}
        (run,) = child("seed", seed, project.env())
        results["hf_hub_download"] = {**run, "bytes_sent": hub.bytes_sent, "requests": len(hub.requests)}
    exported = root / "local_models" / "parakeet" / NEMO_NAME
    verify: dict[str, list[float]] = {"main_s": [], "sha256sum_s": []}
    for _ in range(verify_rounds):
        (run,) = child(
            "export", {"argv": ["--config", str(project.config), "--verify", "parakeet"]}, project.env()
        )
        if run["rc"] != 0:
            raise RuntimeError("export_models.py --verify failed")
        verify["main_s"].append(run["main_s"])
        started = time.perf_counter()
        subprocess.run(["sha256sum", str(exported)], check=True, capture_output=True)
        verify["sha256sum_s"].append(time.perf_counter() - started)
    results["verify"] = {**verify, "file_bytes": size}
    results["config"] = str(project.config)
    return results


def extract_for_floor(nemo: Path, workdir: Path) -> Path:
    """The floor reads the same bytes from plain files: the archive extracted once."""
    folder = workdir / "extracted"
    if not (folder / "model_weights.ckpt").exists():
        shutil.rmtree(folder, ignore_errors=True)
        with tarfile.open(nemo, "r:") as tar:
            tar.extractall(folder, filter="data")
    return folder


def warm(paths: list[Path]) -> None:
    """Read the files once so every contender starts with the page cache warm."""
    for path in paths:
        with path.open("rb") as handle:
            while handle.read(64 << 20):
                pass


def time_to_ready(args: argparse.Namespace, files: dict[str, Path], env: dict[str, str]) -> dict[str, Any]:
    arguments = {key: str(value) for key, value in files.items()} | {"repo": REPO_ID}
    cached = next((Path(env["HF_HUB_CACHE"])).rglob(f"snapshots/*/{NEMO_NAME}"))
    to_warm = [files["nemo"], files["extracted"] / "model_weights.ckpt", cached.resolve()]
    return alternate_loads(args, CONTENDERS, arguments, to_warm, env)


def alternate_loads(
    args: argparse.Namespace,
    contenders: list[str],
    arguments: dict[str, str],
    to_warm: list[Path],
    env: dict[str, str],
) -> dict[str, Any]:
    """Every contender once per round, each in a fresh process, the order rotating round by round."""
    results: dict[str, Any] = {name: {"runs": []} for name in contenders}
    for round_ in range(args.rounds):
        shift = round_ % len(contenders)
        order = contenders[shift:] + contenders[:shift]
        batches = [order] if args.quick else [[name] for name in order]
        for batch in batches:
            warm(to_warm)
            tmp = args.workdir / "tmp" / f"{batch[0]}-{round_}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            run_env = env | {"TMPDIR": str(tmp)}  # the child sets LOCALSTT_FAST_LOAD per contender
            load = os.getloadavg()[0]
            for run in child("load", arguments, run_env, str(time.time()), ",".join(batch)):
                results[run["contender"]]["runs"].append({**run, "round": round_, "loadavg_1m": load})
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"  round {round_ + 1}/{args.rounds} done (load average {os.getloadavg()[0]:.2f})", flush=True)
    return results


def available_gib() -> float:
    with open("/proc/meminfo", encoding="ascii") as handle:
        fields = dict(line.split(":", 1) for line in handle)
    return int(fields["MemAvailable"].split()[0]) / 1024**2


def canary_export(built: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Export canary-qwen (and its LLM's config and tokenizer) from the test hub; seed an HF cache."""
    from benchmarks.canary import SEED_FILES, canary_hub_files
    from testkit.hubserver import run_hub
    from testkit.store_env import make_project
    from testkit.tiny_models import LLM_FILES, QWEN_REPO_ID

    root, cache = workdir / "canary-project", workdir / "hf-cache-canary"
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    canary_files, llm_files = canary_hub_files(built)
    with run_hub() as hub:
        hub.add_commit("nvidia/canary-qwen-2.5b", {**canary_files, "README.md": b"# model card\n"})
        hub.add_commit(QWEN_REPO_ID, llm_files)
        del canary_files, llm_files
        project = make_project(root, hub)
        started = time.perf_counter()
        (run,) = child("export", {"argv": ["--config", str(project.config), "canary-qwen"]}, project.env())
        if run["rc"] != 0:
            raise RuntimeError("export_models.py canary-qwen failed")
        manifest = json.loads((root / "local_models" / "canary-qwen" / "manifest.json").read_text())
        result = {**run, "wall_s": time.perf_counter() - started, "bytes_sent": hub.bytes_sent}
        result |= {"requests": len(hub.requests), "file_bytes": sum(f["size"] for f in manifest["files"])}
        hub.clear_log()
        files = [*SEED_FILES, *([QWEN_REPO_ID, name] for name in LLM_FILES)]
        (seeded,) = child("seed", {"files": files, "cache": str(cache)}, project.env())
    return result | {
        "config": str(project.config),
        "export_dir": str(root / "local_models" / "canary-qwen"),
        "hf_cache": str(cache),
        "seeded": seeded["paths"],
    }


def canary_phases(
    args: argparse.Namespace, phases: Phases, env: dict[str, str], clip: Path
) -> dict[str, Any]:
    """Canary-Qwen-2.5B-sized SALM: build, export, then alternating loads (if memory allows)."""
    from benchmarks.canary import CANARY_CONTENDERS, CANARY_MEMORY_GIB, PUBLISHED_CANARY_PARAMETERS

    needed, free = CANARY_MEMORY_GIB["quick" if args.quick else "full"], available_gib()
    if free < needed:
        return {"skipped": f"Not run: it needs about {needed:g} GiB of free memory; {free:.1f} GiB was free."}
    build = {"workdir": str(args.workdir), "quick": args.quick}
    built = phases.run("canary_build", lambda: child("build_canary", build, env)[0])
    export = phases.run("canary_export", lambda: canary_export(built, args.workdir))
    weights = Path(export["export_dir"]) / "model.safetensors"
    arguments = {"config": export["config"], "canary_export": export["export_dir"], "clip": str(clip)}
    to_warm = [weights, *(Path(path).resolve() for path in export["seeded"])]
    loads_env = env | {"HF_HUB_CACHE": export["hf_cache"]}
    ready = phases.run(
        "canary_time_to_ready",
        lambda: alternate_loads(args, CANARY_CONTENDERS, arguments, to_warm, loads_env),
    )
    model = {**built, "published_parameters": PUBLISHED_CANARY_PARAMETERS}
    return {"model": model, "export": export, "time_to_ready": ready}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes, one round (smoke test)")
    parser.add_argument("--rounds", type=int, help="rounds of every measurement (default 5, --quick 1)")
    parser.add_argument("--audio-seconds", type=float, help="engine overhead audio (default 600, --quick 8)")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default benchmarks/work/[quick|full])")
    parser.add_argument("--results", type=Path, help="results.json to write")
    parser.add_argument("--doc", type=Path, help="markdown report to write")
    parser.add_argument(
        "--resume", action="store_true", help="reuse the phases saved in WORKDIR/partial.json"
    )
    args = parser.parse_args(argv)
    scratch = HERE / "work" / ("quick" if args.quick else "full")
    args.workdir = (args.workdir or scratch).resolve()
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.audio_seconds = args.audio_seconds or (8.0 if args.quick else 600.0)
    results_path = args.results or (scratch / "results.json" if args.quick else HERE / "results.json")
    doc_path = args.doc or (scratch / "benchmarks.md" if args.quick else REPO / "docs" / "benchmarks.md")
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = base_env(args.workdir)

    phases = Phases(args.workdir / "partial.json", args.resume)
    results: dict[str, Any] = {
        "quick": args.quick,
        "rounds": args.rounds,
        "started": now(),
        "loadavg_start": os.getloadavg(),
        "machine": machine(),
    }
    build = {"workdir": str(args.workdir), "quick": args.quick}
    built = phases.run("build", lambda: child("build", build, env)[0])
    nemo = Path(built["nemo"])
    with tarfile.open(nemo, "r:") as tar:
        weights = next(m for m in tar.getmembers() if m.name.endswith("model_weights.ckpt")).size
    results["model"] = {
        "parameters": built["parameters"],
        "published_parameters": 0.6e9,
        "nemo_bytes": nemo.stat().st_size,
        "weights_bytes": weights,
        "blank_bias_shift": built["blank_bias_shift"],
    }
    results["downloads"] = phases.run("downloads", lambda: downloads(nemo, args.workdir, args.rounds))
    config = Path(results["downloads"]["config"])
    env["LOCALSTT_CONFIG"] = str(config)
    from benchmarks.models import make_speech

    files = {
        "config": config,
        "nemo": config.parent / "local_models" / "parakeet" / NEMO_NAME,
        "extracted": extract_for_floor(nemo, args.workdir),
        "clip": make_speech(args.workdir, 5.0),
    }
    results["time_to_ready"] = phases.run("time_to_ready", lambda: time_to_ready(args, files, env))
    audio = make_speech(args.workdir, args.audio_seconds)
    overhead = {"config": str(config), "audio": str(audio), "clip": str(files["clip"]), "rounds": args.rounds}
    results["overhead"] = phases.run("overhead", lambda: child("overhead", overhead, env, timeout=None)[-1])
    results["canary"] = canary_phases(args, phases, env, files["clip"])
    results["gpu"] = {"available": False, "note": "No GPU on this machine: GPU numbers were not measured."}
    results["loadavg_end"] = os.getloadavg()
    results["finished"] = now()
    results["phases"] = phases.timeline()
    summarize(results)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    write_doc(results, doc_path)
    print(console_table(results))
    print(f"\nwrote {results_path} and {doc_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
