"""The API's overhead: the same recording through OpenAI's client and /v1, against the engine called
directly, in one process with one loaded model, alternating round by round.

    uv run python benchmarks/api_overhead.py                 # tiny Parakeet: the worst case
    uv run python benchmarks/api_overhead.py --model full    # full-size random-weight Parakeet

The server is the app's own: localstt/api.py under uvicorn on 127.0.0.1, in a thread of this
process, over the same ModelStore, so both contenders share the model, its weights and its warm
caches; what differs is the upload, the multipart parsing, the queue and the reply. The model comes
from the test hub on 127.0.0.1 through the real export script, as in the tests. The figures go to
the "API overhead" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

from benchmarks.report import machine_name, replace_section, section_text  # noqa: E402
from localstt.compat import tarfile_with_extraction_filters  # noqa: E402

tarfile_with_extraction_filters()

SECTION = "## API overhead"
TARGET = 1.05


def exported_project(workdir: Path, nemo: Path) -> Path:
    """A config.toml with only Parakeet, exported from the test hub through export_models.py."""
    from testkit.hubserver import run_hub
    from testkit.store_env import NEMO_NAME, Project
    from testkit.tiny_models import PARAKEET_REPO_ID

    root = workdir / "project"
    config = root / "config.toml"
    if (root / "local_models" / "parakeet" / "manifest.json").exists():
        return config
    root.mkdir(parents=True, exist_ok=True)
    config.write_text(
        'models_dir = "local_models"\n\n[app]\npreload = []\n\n'
        f'[models.parakeet]\nrepo = "{PARAKEET_REPO_ID}"\nrevision = ""\nkind = "nemo-asr"\n'
    )
    with run_hub() as hub:
        hub.add_commit(PARAKEET_REPO_ID, {NEMO_NAME: nemo.read_bytes()})
        project = Project(root, hub)
        done = project.export(timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
    return config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the espeak-ng recording")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()

    import torch
    import uvicorn
    from openai import OpenAI
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from benchmarks.models import FULL, build_parakeet_nemo, make_speech
    from localstt import engine
    from localstt.config import load_config
    from localstt.store import ModelStore
    from localstt.web.gpu_queue import GpuQueue
    from localstt.web.openai_api import ApiServer
    from testkit.tiny_models import TINY_PARAKEET_NEMO

    workdir = HERE / "work" / f"api-{args.model}"
    workdir.mkdir(parents=True, exist_ok=True)
    nemo = TINY_PARAKEET_NEMO if args.model == "tiny" else build_parakeet_nemo(workdir, FULL)[0]
    config = exported_project(workdir, nemo)
    audio = make_speech(workdir, args.seconds)

    store = ModelStore(load_config(config))
    options = store.config.transcription
    loaded = store.load("parakeet")
    api = ApiServer(store, options, GpuQueue(max_waiting=16))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Mount("/v1", api.app())]), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=3600)

    def direct() -> str:
        return engine.transcribe(audio, "parakeet", options, store).text

    def through_api() -> str:
        with audio.open("rb") as handle:
            return client.audio.transcriptions.create(file=handle, model="parakeet").text

    contenders = {"engine": direct, "api": through_api}
    texts = {name: call() for name, call in contenders.items()}  # warm-up: first-call costs aside
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(args.rounds):
        order = list(contenders.items())
        for name, call in order if round_ % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            texts[name] = call()
            times[name].append(time.perf_counter() - started)
    server.should_exit = True

    import soundfile as sf

    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["api"] / medians["engine"]
    result: dict[str, Any] = {
        "model": args.model,
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "audio_s": sf.info(str(audio)).duration,
        "upload_bytes": audio.stat().st_size,
        "device": loaded.device,
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "seconds": times,
        "median_s": medians,
        "ratio": ratio,
        "same_text": texts["engine"] == texts["api"],
        "machine": machine_name(loaded.device),
    }
    print(json.dumps(result, indent=2))
    (workdir / "result.json").write_text(json.dumps(result, indent=2))
    write_section(args.doc, result)


def write_section(doc: Path, result: dict[str, Any]) -> None:
    """Replace (or add) this benchmark's part of docs/benchmarks.md; one row per model size."""
    old = section_text(doc.read_text(encoding="utf-8"), SECTION)
    rows = dict(re.findall(r"(?m)^\| (tiny|full) Parakeet (.*)$", old))
    medians = result["median_s"]
    pairs = zip(result["seconds"]["engine"], result["seconds"]["api"], strict=True)
    rows[result["model"]] = " | ".join(
        [
            f"({result['parameters'] / 1e6:.1f} M parameters)",
            f"{result['audio_s']:.0f} s ({result['upload_bytes'] / 1e6:.2f} MB)",
            f"{medians['engine']:.3f} s",
            f"{medians['api']:.3f} s",
            f"**{result['ratio']:.3f}x**",
            "yes" if result["same_text"] else "NO",
            ", ".join(f"{a:.3f}/{b:.3f}" for a, b in pairs) + " |",
        ]
    )
    section = "\n".join(
        [
            SECTION,
            "",
            "`benchmarks/api_overhead.py`: the same espeak-ng recording (a 16 kHz WAV) through the official "
            "`openai` client and `/v1`, against `localstt.engine.transcribe` called directly, in one process "
            "with one loaded model (uvicorn on 127.0.0.1 in a thread), alternating round by round after a "
            f"warm-up call of each; {result['device']}, {result['threads']} torch threads, on "
            f"{result['machine']}. Target: at most {TARGET}x.",
            "",
            "| model | audio (upload) | engine (median) | API (median) | API ÷ engine | same text | "
            "runs, engine/API (s) |",
            "|---|---|---|---|---|---|---|",
            *(f"| {size} Parakeet {row}" for size, row in sorted(rows.items(), reverse=True)),
            "",
        ]
    )
    replace_section(doc, SECTION, section)


if __name__ == "__main__":
    main()
