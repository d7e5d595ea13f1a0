"""The GPU path, measured in one command: bf16 loading, memory after a switch, long audio, throughput.

    python benchmarks/gpu_check.py                          # a CUDA machine: full sizes, ~7 minutes
    python benchmarks/gpu_check.py --device cpu --tiny      # toy sizes on the CPU (the suite's smoke run)
    python benchmarks/gpu_check.py --prepare-audio DIR      # the utterances, for a machine without espeak-ng

What it does, each measuring step in a fresh process of this file (`--child STEP`):
1. builds the models: random weights with the real architectures (Parakeet-TDT-0.6B-v2 from
   benchmarks/models.py, float32 as published; a Canary-Qwen-2.5B-sized SALM from benchmarks/canary.py,
   bfloat16 as published; the full-size Sortformer diarizer from benchmarks/speakers.py). `--tiny`
   takes the tests' tiny models instead.
2. exports them with export_models.py from the local test hub (testkit/hubserver.py, 127.0.0.1), so
   what is measured is the real store loading the real export.
3. `parakeet`: time to ready from process start, peak host RSS, GPU memory after the load against the
   weights' bytes, every parameter's dtype; a 5 s job right after the load and again (what the app's
   warm-up run spares a first job); RTFx through localstt.engine and through
   `model.transcribe` at each batch size on the same utterances, and the decoder's CUDA-graphs mode as
   NeMo reports it; a long recording in local attention and a shorter one in full attention, with
   peak GPU memory and wall time.
   Then Parakeet's bfloat16 weights (the leaderboard's) against float32 weights under bfloat16
   autocast at the largest batch: RTFx and memory side by side (on a bfloat16 GPU), and whether
   `cuda.bindings` (NeMo's fastest CUDA-graph decoder) imports.
4. `canary`: the same load figures for Canary-Qwen; windows per second at its window batch and RTFx;
   24 short clips, each by itself against their windows pooled (benchmarks/canary_pooled.py);
   then switching models in one store (keep_all_loaded = false): Canary-Qwen, Parakeet, Canary-Qwen,
   Parakeet, where the memory of each model the second time must be within 5 % of the first.
5. `speakers`: the diarizer loaded beside Parakeet, and the seconds and peak GPU memory of diarizing.

Steps run in that order while the time budget (`--budget-s`) lasts; a long-audio length that would
not fit is stepped down (the step is recorded), a step with too little time left is skipped (said so).
Writes benchmarks/gpu-results.json (`--results`) and prints a table; the machine (device name, driver,
torch and CUDA versions) is recorded with every step. Random weights make transcripts meaningless but
the work real: Parakeet's blank bias is calibrated to ~4 tokens per second of speech
(models.calibrate_blank_bias) and Canary-Qwen writes `--canary-tokens` tokens per window.
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
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

ANCHORS = {
    "parakeet_rtfx_batch_128": 3380.0,  # the Open ASR Leaderboard's figure for parakeet-tdt-0.6b-v2
    "canary_rtfx": 418.0,  # and for canary-qwen-2.5b
}
SWITCH_TOLERANCE = 0.05
RATE = 16000
VOICES = [("en-us", 150), ("en-us+f3", 170), ("en-gb", 160), ("en-us+m3", 140)]
SIZES = {
    "full": {
        "batches": [1, 8, 32, 128],
        "utterances": 256,
        "long_minutes": 60.0,
        "full_minutes": 10.0,
        "canary_minutes": 5.0,
        "canary_tokens": 160,
        "speaker_minutes": [10.0, 60.0],
    },
    "tiny": {
        "batches": [1, 4],
        "utterances": 8,
        "long_minutes": 1.0,
        "full_minutes": 0.5,
        "canary_minutes": 1.0,
        "canary_tokens": 8,
        "speaker_minutes": [0.5],
    },
}
# Shorter long recordings to fall back to, in order, when the budget would not hold the asked one.
LONG_LADDER = [60.0, 30.0, 15.0, 5.0, 1.0]
# Seconds a step needs at least (the imports and load included) before it is started at all.
RESERVE_S = {"canary": 90.0, "speakers": 45.0}


# --------------------------------------------------------------------------- the machine


def nvidia_smi(*fields: str) -> list[str]:
    """One GPU's `fields` as nvidia-smi reports them; [] without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return []
    done = subprocess.run(
        ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits", "-i", "0"],
        capture_output=True,
        text=True,
    )
    return [part.strip() for part in done.stdout.strip().split(",")] if done.returncode == 0 else []


def machine(device: str) -> dict[str, Any]:
    import torch

    found = nvidia_smi("name", "driver_version", "memory.total") if device == "cuda" else []
    name, driver, total = found if len(found) == 3 else ("none", "none", "0")
    cpu = platform.processor() or platform.machine()
    return {
        "device": device,
        "gpu": name,
        "driver": driver,
        "gpu_memory_mib": int(float(total)),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "python": platform.python_version(),
        "nemo_toolkit": metadata.version("nemo_toolkit"),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
    }


def machine_line(facts: dict[str, Any]) -> str:
    if facts["device"] == "cuda":
        return f"{facts['gpu']}, driver {facts['driver']}, torch {facts['torch']}, CUDA {facts['cuda']}"
    return f"CPU ({facts['cpu']}), torch {facts['torch']}, no GPU"


# --------------------------------------------------------------------------- audio


def prepare_audio(folder: Path) -> list[Path]:
    """Every sentence of benchmarks/models.py in each voice: 16 kHz mono FLAC, made with espeak-ng."""
    import numpy as np
    import soundfile as sf
    import soxr

    from benchmarks.models import SENTENCES

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for v, (voice, speed) in enumerate(VOICES):
        for s, sentence in enumerate(SENTENCES):
            target = folder / f"utterance-{v}-{s}.flac"
            if not target.exists():
                raw = folder / "espeak.wav"
                subprocess.run(
                    ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), sentence], check=True
                )
                samples, rate = sf.read(raw, dtype="float32")
                raw.unlink()
                mono = samples if samples.ndim == 1 else samples.mean(axis=1)
                sf.write(target, np.asarray(soxr.resample(mono, rate, RATE), dtype="float32"), RATE)
            made.append(target)
    return made


def read_utterances(folder: Path) -> list[Any]:
    import soundfile as sf

    return [sf.read(path, dtype="float32")[0] for path in sorted(folder.glob("utterance-*.flac"))]


def decoded(samples: Any) -> Any:
    from localstt.audio import DecodedAudio

    return DecodedAudio.of_samples(samples, "gpu_check")


def recording(utterances: list[Any], minutes: float) -> Any:
    """The utterances one after another, with half a second of quiet between, to `minutes`."""
    import numpy as np

    gap = np.zeros(RATE // 2, dtype="float32")
    once = np.concatenate([part for utterance in utterances for part in (utterance, gap)])
    wanted = int(minutes * 60 * RATE)
    return np.tile(once, wanted // len(once) + 1)[:wanted]


# --------------------------------------------------------------------------- building and exporting


def build(kind: str, workdir: Path, tiny: bool, audio: Path, device: str) -> dict[str, Any]:
    """The files the hub serves for one model (in a child: the builds import NeMo)."""
    from testkit.store_env import NEMO_NAME, SORTFORMER_NEMO_NAME
    from testkit.tiny_models import TINY_PARAKEET_NEMO, TINY_SORTFORMER_NEMO

    if kind == "parakeet":
        if tiny:
            return {"files": {NEMO_NAME: str(TINY_PARAKEET_NEMO)}}
        import soundfile as sf

        from benchmarks.models import FULL, build_parakeet_nemo

        # The blank bias is calibrated on 30 s of the utterances (models.make_speech would need
        # espeak-ng and sox, which a GPU machine may not have): written where make_speech looks.
        speech = workdir / "parakeet" / "speech-30s.wav"
        speech.parent.mkdir(parents=True, exist_ok=True)
        sf.write(speech, recording(read_utterances(audio), 0.5), RATE, subtype="PCM_16")
        nemo, parameters, shift = build_parakeet_nemo(workdir / "parakeet", FULL, device)
        return {"files": {nemo.name: str(nemo)}, "parameters": parameters, "blank_bias_shift": shift}
    if kind == "canary-qwen":
        from benchmarks.canary import CANARY_FULL, CANARY_QUICK, build_canary_repos

        facts = build_canary_repos(workdir / "canary", CANARY_QUICK if tiny else CANARY_FULL)
        return {"canary": facts, "parameters": facts["parameters"]}
    if tiny:
        return {"files": {SORTFORMER_NEMO_NAME: str(TINY_SORTFORMER_NEMO)}}
    target = workdir / "sortformer" / SORTFORMER_NEMO_NAME
    if not target.exists():
        import torch
        from nemo.collections.asr.models import SortformerEncLabelModel
        from omegaconf import OmegaConf

        from benchmarks.speakers import full_size_config

        torch.manual_seed(0)
        model = SortformerEncLabelModel(cfg=OmegaConf.create(full_size_config())).eval()
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        model.save_to(str(partial))
        partial.rename(target)
    return {"files": {SORTFORMER_NEMO_NAME: str(target)}}


def export(kind: str, built: dict[str, Any], project: Any) -> dict[str, Any]:
    """export_models.py KIND from the test hub; the requests and bytes it took."""
    from testkit.tiny_models import CANARY_REPO_ID, PARAKEET_REPO_ID, QWEN_REPO_ID, SORTFORMER_REPO_ID

    hub = project.hub
    repo = {"parakeet": PARAKEET_REPO_ID, "canary-qwen": CANARY_REPO_ID, "sortformer": SORTFORMER_REPO_ID}[
        kind
    ]
    if "canary" in built:  # its repo and its LLM's, as benchmarks/run.py serves them
        from benchmarks.canary import canary_hub_files

        files, llm_files = canary_hub_files(built["canary"])
        hub.add_commit(QWEN_REPO_ID, llm_files)
    else:
        files = {name: Path(path).read_bytes() for name, path in built["files"].items()}
    hub.add_commit(repo, {**files, "README.md": b"# model card\n"})
    del files
    hub.clear_log()
    started = time.perf_counter()
    done = project.export(kind, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"export_models.py {kind} failed: {done.stderr.strip()[-2000:]}")
    return {"export_s": round(time.perf_counter() - started, 2), "requests": len(hub.requests)} | {
        "bytes_sent": hub.bytes_sent
    }


def write_project_config(project: Any, device: str) -> None:
    """The shipped config.toml (every comment kept) on `device`, one transcription model at a time."""
    import tomlkit

    document = tomlkit.parse(project.config.read_text(encoding="utf-8"))
    document["runtime"]["device"] = device  # type: ignore[index]
    document["runtime"]["keep_all_loaded"] = False  # type: ignore[index]
    project.config.write_text(tomlkit.dumps(document), encoding="utf-8")


# --------------------------------------------------------------------------- measuring (children)


def emit(step: str, result: dict[str, Any]) -> None:
    print("RESULT " + json.dumps({"step": step, **result}), flush=True)


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def gpu_memory(device: str) -> dict[str, int]:
    """PyTorch's allocated and reserved bytes and nvidia-smi's used MiB now (zeros on the CPU)."""
    import torch

    if device != "cuda":
        return {"allocated": 0, "reserved": 0, "smi_used_mib": 0}
    torch.cuda.synchronize()
    used = nvidia_smi("memory.used")
    return {
        "allocated": int(torch.cuda.memory_allocated()),
        "reserved": int(torch.cuda.memory_reserved()),
        "smi_used_mib": int(float(used[0])) if used else 0,
    }


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_gpu(device: str) -> int:
    import torch

    return int(torch.cuda.max_memory_allocated()) if device == "cuda" else 0


def load_figures(store: Any, key: str, spawned: float, device: str) -> tuple[Any, dict[str, Any]]:
    """Load `key` from the store; time to ready from process start, memory, dtypes."""
    from benchmarks.child import peak_rss

    started = time.perf_counter()
    loaded = store.load(key)
    synchronize(device)
    load_s = time.perf_counter() - started
    ready_s = time.time() - spawned
    model = loaded.model
    dtypes: Counter[str] = Counter()
    weights = 0
    for parameter in model.parameters():
        dtypes[str(parameter.dtype).removeprefix("torch.")] += parameter.numel()
        weights += parameter.numel() * parameter.element_size()
    devices = sorted({str(parameter.device.type) for parameter in model.parameters()})
    memory = gpu_memory(device)
    return loaded, {
        "ready_s": round(ready_s, 2),
        "load_s": round(load_s, 2),
        "method": loaded.method,
        "precision": loaded.precision.describe(),
        "peak_rss_bytes": peak_rss(),
        "weights_bytes": weights,
        # parameters and saved buffers: what a checkpoint of the model holds
        "state_dict_floats": sum(t.numel() for t in model.state_dict().values() if t.is_floating_point()),
        "parameters_by_dtype": dict(dtypes),
        "parameter_devices": devices,
        "gpu_after_load": memory,
        "gpu_allocated_vs_weights": round(memory["allocated"] / weights, 3) if device == "cuda" else None,
    }


def decoder_mode(model: Any) -> dict[str, Any]:
    """What NeMo says about its TDT decoder: strategy, and the CUDA-graphs mode of the label-looping loop."""
    decoding = getattr(model, "decoding", None)
    inner = getattr(decoding, "decoding", None)
    computer = getattr(inner, "decoding_computer", None) or getattr(inner, "_decoding_computer", None)
    mode = getattr(computer, "cuda_graphs_mode", None)
    greedy = model.cfg.decoding.get("greedy", {}) or {}
    return {
        "strategy": str(model.cfg.decoding.get("strategy")),
        "class": type(inner).__name__,
        "use_cuda_graph_decoder": bool(greedy.get("use_cuda_graph_decoder", True)),
        "cuda_graphs_mode": None if mode is None else str(mode),
        # what NeMo's fastest CUDA-graph decoder needs (conditional nodes)
        "cuda_bindings_import": importable("cuda.bindings"),
    }


def importable(module: str) -> bool | str:
    """True, or why `module` does not import here."""
    import importlib

    try:
        importlib.import_module(module)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return True


def weights_compare(loaded: Any, utterances: list[Any], batch: int, device: str) -> dict[str, Any]:
    """The leaderboard's bfloat16 weights against float32 weights under bfloat16 autocast (what the app
    ran before): RTFx through model.transcribe at `batch` and the weights' GPU memory, side by side."""
    import torch

    from localstt.precision import autocast_context

    model = loaded.model
    if device != "cuda" or loaded.precision.weights != "bfloat16":
        return {
            "skipped": f"{loaded.precision.weights} weights on {device}: only a bfloat16 GPU load compares"
        }
    audio_s = sum(len(u) for u in utterances) / RATE
    rows = []
    for name, dtype, autocast in (
        ("bfloat16 weights", torch.bfloat16, None),
        ("float32 weights, bfloat16 autocast", torch.float32, "bfloat16"),
    ):
        model.to(dtype)
        torch.cuda.empty_cache()
        weights_bytes = int(torch.cuda.memory_allocated())
        try:  # the decoder's CUDA graphs were captured for the other dtype
            model.change_decoding_strategy(model.cfg.decoding, verbose=False)
        except Exception as error:
            rows.append({"weights": name, "error": f"{type(error).__name__}: {error}"})
            continue

        def run(autocast: str | None = autocast) -> Any:
            with torch.inference_mode(), autocast_context(device, autocast):
                return model.transcribe(list(utterances), batch_size=batch, verbose=False)

        run()
        reset_peak(device)
        seconds, _ = timed(device, run)
        rows.append(
            {
                "weights": name,
                "model_s": round(seconds, 3),
                "rtfx": round(audio_s / seconds, 1),
                "allocated_after_cast": weights_bytes,
                "peak_gpu_bytes": peak_gpu(device),
            }
        )
    model.to(torch.bfloat16)
    model.change_decoding_strategy(model.cfg.decoding, verbose=False)
    timed_rows = [row for row in rows if "rtfx" in row]
    ratio = round(timed_rows[0]["rtfx"] / timed_rows[1]["rtfx"], 3) if len(timed_rows) == 2 else None
    return {"batch": batch, "recordings": len(utterances), "rows": rows, "bf16_vs_fp32_autocast": ratio}


def timed(device: str, work: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, what `work` returned), the GPU's queue drained before and after."""
    synchronize(device)
    started = time.perf_counter()
    value = work()
    synchronize(device)
    return time.perf_counter() - started, value


def throughput(loaded: Any, store: Any, options: Any, utterances: list[Any], batches: list[int]) -> list[Any]:
    """RTFx at each batch size, through the engine (timestamps, as the app runs) and model.transcribe
    (the leaderboard's call: no timestamps), each after one untimed warm-up at that size."""
    import torch

    from localstt import engine
    from localstt.precision import autocast_context

    device, model = loaded.device, loaded.model
    audio_s = sum(len(u) for u in utterances) / RATE
    recordings = [(decoded(u), f"u{i}") for i, u in enumerate(utterances)]
    rows = []
    for batch in batches:
        batch_options = options.replace(parakeet_batch_size=batch)

        def through_engine(recordings: list[Any] = recordings, batch_options: Any = batch_options) -> Any:
            return engine.transcribe_together(recordings, "parakeet", batch_options, store)

        def through_model(batch: int = batch) -> Any:
            with torch.inference_mode(), autocast_context(device, loaded.precision.autocast):
                return model.transcribe(list(utterances), batch_size=batch, verbose=False)

        through_engine(recordings[:batch])
        engine_s, _ = timed(device, through_engine)
        through_model()
        model_s, _ = timed(device, through_model)
        rows.append(
            {
                "batch": batch,
                "recordings": len(recordings),
                "audio_s": round(audio_s, 3),
                "engine_s": round(engine_s, 3),
                "engine_rtfx": round(audio_s / engine_s, 1),
                "model_s": round(model_s, 3),
                "model_rtfx": round(audio_s / model_s, 1),
                "engine_vs_model": round(engine_s / model_s, 3),
            }
        )
        emit("parakeet_throughput_row", rows[-1])
    return rows


def long_recording(store: Any, options: Any, samples: Any, device: str) -> dict[str, Any]:
    from localstt import engine

    reset_peak(device)
    audio = decoded(samples)
    seconds, transcript = timed(device, lambda: engine.transcribe(audio, "parakeet", options, store))
    return {
        "minutes": round(audio.duration / 60, 2),
        "attention": transcript.notes[0] if transcript.notes else "",
        "wall_s": round(seconds, 2),
        "rtfx": round(audio.duration / seconds, 1),
        "peak_gpu_bytes": peak_gpu(device),
        "segments": len(transcript.segments),
    }


def step_down(minutes: float, rtfx: float, seconds_left: float, share: float) -> tuple[float, str]:
    """The longest length of LONG_LADDER up to `minutes` that the measured speed fits in `share` of
    the time left (local attention runs a little slower than batch 1: a factor 1.5 of margin)."""
    for length in [minutes, *(m for m in LONG_LADDER if m < minutes)]:
        if length * 60 / rtfx * 1.5 <= seconds_left * share:
            note = (
                ""
                if length == minutes
                else (
                    f"stepped down from {minutes:g} to {length:g} minutes: {minutes:g} min at the "
                    f"measured {rtfx:.0f}x would take ~{minutes * 60 / rtfx * 1.5:.0f} s, "
                    f"{seconds_left:.0f} s were left"
                )
            )
            return length, note
    return 0.0, f"skipped: {seconds_left:.0f} s left would not hold even {LONG_LADDER[-1]:g} minute"


def child_parakeet(args: dict[str, Any]) -> None:
    from localstt import engine
    from localstt.config import load_config
    from localstt.store import ModelStore

    device, deadline = args["device"], args["deadline"]
    store = ModelStore(load_config(args["config"]))
    loaded, figures = load_figures(store, "parakeet", args["spawned"], device)
    utterances_once = read_utterances(Path(args["audio"]))
    utterances = [utterances_once[i % len(utterances_once)] for i in range(args["utterances"])]
    options = store.config.transcription
    # What the app's warm-up (store.warm_up: one run on a second of quiet) spares the first job:
    # a 5 s recording right after the load, then again.
    clip = decoded(recording(utterances_once, 5 / 60))
    for name in ("first_job_s", "second_job_s"):
        seconds, _ = timed(device, lambda: engine.transcribe(clip, "parakeet", options, store))
        figures[name] = round(seconds, 3)
    emit("parakeet_load", figures)
    rows = throughput(loaded, store, options, utterances, args["batches"])
    emit("parakeet_decoder", decoder_mode(loaded.model))
    emit("parakeet_weights", weights_compare(loaded, utterances, max(args["batches"]), device))
    slowest = min(row["engine_rtfx"] for row in rows)
    for name, minutes, fraction, full_max in (
        ("parakeet_full_attention", args["full_minutes"], 0.4, 24.0),
        ("parakeet_local_attention", args["long_minutes"], 0.8, 0.0),
    ):
        length, note = step_down(minutes, slowest, deadline - time.time(), fraction)
        if not length:
            emit(name, {"asked_minutes": minutes, "skipped": note})
            continue
        # full: the app's own rule (full attention up to 24 min while it fits); local: forced by 0
        long_options = options.replace(full_attention_max_minutes=full_max)
        result = long_recording(store, long_options, recording(utterances_once, length), device)
        emit(name, {"asked_minutes": minutes, "step_down": note, **result})


def child_canary(args: dict[str, Any]) -> None:
    from benchmarks.canary_pooled import measure as measure_pooled
    from localstt import engine
    from localstt.audio import split_at_quiet_points
    from localstt.config import load_config
    from localstt.models.canary_qwen import CanaryQwenOptions, windows_at_once
    from localstt.store import ModelStore

    device = args["device"]
    store = ModelStore(load_config(args["config"]))
    loaded, figures = load_figures(store, "canary-qwen", args["spawned"], device)
    emit("canary_load", figures)
    options = store.config.transcription.replace(canary_max_new_tokens=args["canary_tokens"])
    audio = decoded(recording(read_utterances(Path(args["audio"])), args["canary_minutes"]))
    reset_peak(device)
    seconds, transcript = timed(device, lambda: engine.transcribe(audio, "canary-qwen", options, store))
    canary = options.of(CanaryQwenOptions)
    windows = len(split_at_quiet_points(audio.samples, RATE, canary.canary_window_seconds))
    emit(
        "canary_windows",
        {
            "minutes": round(audio.duration / 60, 2),
            "windows": windows,
            "windows_with_text": len(transcript.segments),
            "window_seconds": canary.canary_window_seconds,
            "window_batch": windows_at_once(loaded, canary),
            "window_batch_setting": canary.canary_batch_size,
            "max_new_tokens": args["canary_tokens"],
            "wall_s": round(seconds, 3),
            "windows_per_s": round(windows / seconds, 3),
            "rtfx": round(audio.duration / seconds, 1),
            "peak_gpu_bytes": peak_gpu(device),
        },
    )
    # Many short recordings: each by itself against their windows pooled (the leaderboard's recipe).
    utterances = read_utterances(Path(args["audio"]))
    clips = [
        decoded(utterances[n % len(utterances)][: int((2.0 + 3.0 * (n % 7) / 6) * RATE)]) for n in range(24)
    ]
    arms = {"each recording by itself": "auto", "pooled": "auto"}
    emit(
        "canary_pooled",
        measure_pooled(store, clips, args["canary_tokens"], 1, arms, lambda: synchronize(device)),
    )
    del loaded, transcript
    switches = []
    for key in ("parakeet", "canary-qwen", "parakeet"):
        store.load(key)
        switches.append({"model": key, "loaded": sorted(k for k in store.config.models if store.loaded(k))})
        switches[-1] |= gpu_memory(device)
    first = {"canary-qwen": figures["gpu_after_load"] | {"model": "canary-qwen"}, "parakeet": switches[0]}
    if device != "cuda":
        emit(
            "switching",
            {"sequence": switches, "checks": [], "passed": None, "note": "no GPU memory to compare"},
        )
        return
    checks = []
    for later in switches[1:]:
        before = first[later["model"]]
        for measure in ("allocated", "smi_used_mib"):
            change = abs(later[measure] - before[measure]) / before[measure] if before[measure] else 0.0
            checks.append(
                {
                    "model": later["model"],
                    "measure": measure,
                    "first": before[measure],
                    "again": later[measure],
                    "change": round(change, 4),
                    "within_5_percent": change <= SWITCH_TOLERANCE,
                }
            )
    emit(
        "switching",
        {"sequence": switches, "checks": checks, "passed": all(c["within_5_percent"] for c in checks)},
    )


def child_speakers(args: dict[str, Any]) -> None:
    from localstt import engine
    from localstt.config import load_config
    from localstt.store import ModelStore

    device = args["device"]
    store = ModelStore(load_config(args["config"]))
    store.load("parakeet")
    alone = gpu_memory(device)
    _, figures = load_figures(store, "sortformer", args["spawned"], device)
    figures["gpu_with_parakeet"] = gpu_memory(device)
    figures["gpu_parakeet_alone"] = alone
    emit("speakers_load", figures)
    utterances = read_utterances(Path(args["audio"]))
    for minutes in args["speaker_minutes"]:
        if time.time() > args["deadline"] - 10:
            emit("speakers_diarize", {"minutes": minutes, "skipped": "out of time"})
            continue
        audio = decoded(recording(utterances, minutes))
        reset_peak(device)
        seconds, turns = timed(device, lambda audio=audio: engine.diarize(audio, store))
        emit(
            "speakers_diarize",
            {
                "minutes": minutes,
                "wall_s": round(seconds, 2),
                "times_real_time": round(minutes * 60 / seconds, 1),
                "peak_gpu_bytes": peak_gpu(device),
                "turns": len(turns),
            },
        )


def child_build(args: dict[str, Any]) -> None:
    emit(
        "built", build(args["kind"], Path(args["workdir"]), args["tiny"], Path(args["audio"]), args["device"])
    )


CHILDREN = {
    "build": child_build,
    "parakeet": child_parakeet,
    "canary": child_canary,
    "speakers": child_speakers,
}


# --------------------------------------------------------------------------- the run


def run_child(step: str, args: dict[str, Any], env: dict[str, str], timeout: float) -> list[dict[str, Any]]:
    """This file's `--child step` in a fresh process: its RESULT lines (those before a failure too)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", step, json.dumps(args)]
    failure = ""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=REPO, timeout=max(timeout, 1)
        )
        out, err = done.stdout, done.stderr
        if done.returncode != 0:
            failure = f"exit {done.returncode}: {err.strip()[-3000:]}"
    except subprocess.TimeoutExpired as stopped:
        out = stopped.stdout.decode() if isinstance(stopped.stdout, bytes) else (stopped.stdout or "")
        failure = f"stopped after {timeout:.0f} s (the time budget)"
    lines = [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
    if failure:
        lines.append({"step": f"{step}_failed", "error": failure})
    return lines


def table(report: dict[str, Any]) -> str:
    """The figures as text, under the machine they were measured on."""
    steps, gib = report["steps"], 1024**3
    out = [f"GPU check on {report['machine_line']} ({report['sizes']} sizes)", ""]
    for key in ("parakeet_load", "canary_load", "speakers_load"):
        if key in steps:
            s = steps[key]
            out.append(
                f"{key:<28} ready {s['ready_s']:>6.1f} s  load {s['load_s']:>6.1f} s  peak RSS "
                f"{s['peak_rss_bytes'] / gib:5.2f} GiB  "
                f"GPU {s['gpu_after_load']['allocated'] / gib:5.2f} GiB "
                f"(weights {s['weights_bytes'] / gib:5.2f} GiB)  {s['parameters_by_dtype']}"
            )
            if "first_job_s" in s:
                out.append(
                    f"{'':<28} a 5 s job after the load {s['first_job_s']:.3f} s, "
                    f"again {s['second_job_s']:.3f} s"
                )
    for row in steps.get("parakeet_throughput", []):
        out.append(
            f"parakeet batch {row['batch']:<4}          engine {row['engine_rtfx']:>8.1f}x  "
            f"model.transcribe {row['model_rtfx']:>8.1f}x  (engine/model time {row['engine_vs_model']:.2f})"
        )
    if "parakeet_decoder" in steps:
        out.append(f"parakeet decoder             {steps['parakeet_decoder']}")
    for key in ("parakeet_full_attention", "parakeet_local_attention", "canary_windows"):
        s = steps.get(key)
        if s and "wall_s" in s:
            out.append(
                f"{key:<28} {s['minutes']:g} min in {s['wall_s']:.1f} s ({s['rtfx']:.1f}x), peak GPU "
                f"{s['peak_gpu_bytes'] / gib:.2f} GiB  {s.get('attention', '')}{s.get('step_down', '')}"
            )
        elif s:
            out.append(f"{key:<28} {s.get('skipped', '')}")
    if "switching" in steps:
        out.append(f"switching models             within 5 %: {steps['switching']['passed']}")
    for s in steps.get("speakers_diarize", []):
        out.append(f"speakers {s['minutes']:g} min                {s.get('wall_s', s.get('skipped'))}")
    for key, value in steps.items():
        if key.endswith("_failed") or key.endswith("_skipped"):
            out.append(f"{key:<28} {value}")
    return "\n".join(out)


DOC_HEADING = "## GPU check"


def doc_section(report: dict[str, Any]) -> str:
    """The markdown section: the table, the ratios to the anchors, and where the JSON is."""
    ratios = "\n".join(f"- {name}: {value}" for name, value in report["anchor_ratios"].items()) or "- none"
    return (
        f"{DOC_HEADING}\n\n`benchmarks/gpu_check.py`, {report['started']}, {report['wall_s']:.0f} s in all "
        f"(budget {report['budget_s']:.0f} s).\n\n```\n{table(report)}\n```\n\n"
        f"Against the published anchors (Parakeet {ANCHORS['parakeet_rtfx_batch_128']:.0f}x at batch 128, "
        f"Canary-Qwen {ANCHORS['canary_rtfx']:.0f}x, on the leaderboard's hardware):\n\n{ratios}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny models and short audio")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default benchmarks/work/gpu-check)")
    parser.add_argument("--results", type=Path, help="JSON to write (default benchmarks/gpu-results.json)")
    parser.add_argument("--audio", type=Path, help="a folder from --prepare-audio (default: made now)")
    parser.add_argument("--prepare-audio", type=Path, metavar="DIR", help="only make the utterances")
    parser.add_argument("--budget-s", type=float, default=420.0, help="the whole check's time (seconds)")
    parser.add_argument("--batches", help="comma-separated batch sizes (default 1,8,32,128)")
    parser.add_argument("--utterances", type=int, help="utterances per throughput run (default 256)")
    parser.add_argument("--long-minutes", type=float, help="the local-attention recording (default 60)")
    parser.add_argument("--full-minutes", type=float, help="the full-attention recording (default 10)")
    parser.add_argument("--canary-minutes", type=float, help="Canary-Qwen's recording (default 5)")
    parser.add_argument("--canary-tokens", type=int, help="tokens Canary-Qwen writes per window (160)")
    parser.add_argument("--speaker-minutes", help="recordings the diarizer reads (default 10,60)")
    parser.add_argument("--skip", default="", help="comma-separated steps to leave out: canary, speakers")
    parser.add_argument(
        "--doc",
        type=Path,
        help="markdown report whose GPU check section to write (default on CUDA at "
        "full sizes: docs/benchmarks.md; else none)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.child:
        CHILDREN[args.child](json.loads(rest[0]))
        return 0
    if args.prepare_audio:
        print(f"{len(prepare_audio(args.prepare_audio))} utterances in {args.prepare_audio}")
        return 0
    return check(args)


def check(args: argparse.Namespace) -> int:
    started = time.time()
    deadline = started + args.budget_s
    sizes = SIZES["tiny" if args.tiny else "full"]
    if args.device == "cuda" and not nvidia_smi("name"):
        print("No NVIDIA GPU found (nvidia-smi answers nothing); run with --device cpu --tiny for the CPU.")
        return 2
    workdir = (args.workdir or HERE / "work" / ("gpu-check-tiny" if args.tiny else "gpu-check")).resolve()
    results_path = args.results or (workdir / "gpu-results.json" if args.tiny else HERE / "gpu-results.json")
    workdir.mkdir(parents=True, exist_ok=True)
    facts = machine(args.device)
    on = machine_line(facts)
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": facts,
        "machine_line": on,
        "sizes": "tiny" if args.tiny else "full",
        "budget_s": args.budget_s,
        "anchors": ANCHORS,
        "steps": {},
    }
    steps: dict[str, Any] = report["steps"]

    def record(lines: list[dict[str, Any]]) -> None:
        for line in lines:
            name = line.pop("step")
            line["on"] = on
            if name in ("parakeet_throughput_row", "speakers_diarize"):
                key = "parakeet_throughput" if name == "parakeet_throughput_row" else name
                steps.setdefault(key, []).append(line)
            else:
                steps[name] = line
            print(f"  {name}: {json.dumps(line)[:300]}", flush=True)

    audio = args.audio or workdir / "audio"
    if not args.audio:
        prepare_audio(audio)
    from testkit.hubserver import run_hub
    from testkit.store_env import make_project

    skip = {part for part in args.skip.split(",") if part}
    kinds = [
        "parakeet",
        *(k for k, s in (("canary-qwen", "canary"), ("sortformer", "speakers")) if s not in skip),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env |= {
        "PYTHONUNBUFFERED": "1",
        "NEMO_TELEMETRY": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    project_root = workdir / "project"
    shutil.rmtree(project_root, ignore_errors=True)
    with run_hub() as hub:
        project = make_project(project_root, hub)
        write_project_config(project, args.device)
        for kind in kinds:
            print(f"build and export {kind} ...", flush=True)
            mark = time.perf_counter()
            built = run_builder(kind, workdir, args.tiny, audio, env, args.device)
            exported = export(kind, built, project)
            steps[f"{kind}_export"] = {"build_s": round(time.perf_counter() - mark, 2), **exported, "on": on}
            steps[f"{kind}_export"] |= {k: v for k, v in built.items() if k not in ("files", "canary")}
        config = project.config
        del project
    del hub  # and with it the hub's copies of the files (gigabytes at full size)
    common = {"config": str(config), "audio": str(audio), "device": args.device, "deadline": deadline}
    env["LOCALSTT_CONFIG"] = str(config)
    batches = [int(b) for b in args.batches.split(",")] if args.batches else sizes["batches"]
    print("parakeet ...", flush=True)
    parakeet = common | {
        "batches": batches,
        "utterances": max(args.utterances or sizes["utterances"], max(batches)),
        "long_minutes": args.long_minutes or sizes["long_minutes"],
        "full_minutes": args.full_minutes or sizes["full_minutes"],
        "spawned": time.time(),
    }
    record(run_child("parakeet", parakeet, env, deadline - time.time()))
    for step, extra in (
        (
            "canary",
            {
                "canary_minutes": args.canary_minutes or sizes["canary_minutes"],
                "canary_tokens": args.canary_tokens or sizes["canary_tokens"],
            },
        ),
        (
            "speakers",
            {
                "speaker_minutes": [float(m) for m in args.speaker_minutes.split(",")]
                if args.speaker_minutes
                else sizes["speaker_minutes"]
            },
        ),
    ):
        left = deadline - time.time()
        if step in skip:
            continue
        if left < RESERVE_S[step]:
            steps[f"{step}_skipped"] = (
                f"{left:.0f} s of the budget left; it needs about {RESERVE_S[step]:.0f} s"
            )
            continue
        print(f"{step} ...", flush=True)
        record(run_child(step, common | extra | {"spawned": time.time()}, env, deadline - time.time()))
    report["anchor_ratios"] = anchor_ratios(steps)
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["wall_s"] = round(time.time() - started, 1)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    doc = args.doc or (REPO / "docs" / "benchmarks.md" if args.device == "cuda" and not args.tiny else None)
    if doc is not None:
        from benchmarks.report import replace_section

        replace_section(doc, DOC_HEADING, doc_section(report))
    print()
    print(table(report))
    print(f"\nwrote {results_path} in {report['wall_s']:.0f} s")
    failed = [key for key in steps if key.endswith("_failed")]
    return 1 if failed or steps.get("switching", {}).get("passed") is False else 0


def run_builder(
    kind: str, workdir: Path, tiny: bool, audio: Path, env: dict[str, str], device: str = "cpu"
) -> dict[str, Any]:
    """`build` in a fresh process (NeMo and the full-size model never sit in this one)."""
    arguments = {"kind": kind, "workdir": str(workdir), "tiny": tiny, "audio": str(audio), "device": device}
    lines = run_child("build", arguments, env, 3600)
    if lines[-1]["step"] != "built":
        raise RuntimeError(f"building {kind} failed: {lines[-1]['error']}")
    return {key: value for key, value in lines[-1].items() if key != "step"}


def anchor_ratios(steps: dict[str, Any]) -> dict[str, float]:
    """Measured RTFx against the published anchors (on the leaderboard's own hardware)."""
    ratios = {}
    for row in steps.get("parakeet_throughput", []):
        if row["batch"] == 128:
            ratios["parakeet_model_batch_128_vs_anchor"] = round(
                row["model_rtfx"] / ANCHORS["parakeet_rtfx_batch_128"], 3
            )
            ratios["parakeet_engine_batch_128_vs_anchor"] = round(
                row["engine_rtfx"] / ANCHORS["parakeet_rtfx_batch_128"], 3
            )
    if "rtfx" in steps.get("canary_windows", {}):
        ratios["canary_vs_anchor"] = round(steps["canary_windows"]["rtfx"] / ANCHORS["canary_rtfx"], 3)
    return ratios


if __name__ == "__main__":
    sys.exit(main())
