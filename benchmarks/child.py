"""One measured process of the benchmark (started by benchmarks/run.py, never imported by it).

    python benchmarks/child.py load SPAWN_TIME CONTENDERS JSON_ARGS     time to ready, RSS, bytes written
    python benchmarks/child.py overhead JSON_ARGS                       engine vs model.transcribe
    python benchmarks/child.py export JSON_ARGS                         export_models.main(), imports apart
    python benchmarks/child.py seed JSON_ARGS                           hf_hub_download into an HF cache
    python benchmarks/child.py build JSON_ARGS                          the random-weight .nemo

Each prints one line per result: `RESULT {json}`.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]
GiB = 1024**3


def emit(result: dict[str, Any]) -> None:
    print("RESULT " + json.dumps(result), flush=True)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def written() -> int:
    """Bytes this process has passed to write() so far (/proc/self/io wchar): temp files included."""
    with open("/proc/self/io", encoding="ascii") as handle:
        fields = dict(line.split(": ") for line in handle.read().splitlines())
    return int(fields["wchar"])


def files_under(folder: str) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


# --------------------------------------------------------------------------- the contenders


def load_with_loader(args: dict[str, Any]) -> Any:
    import model_loader

    model_loader._default_store = None  # --quick loads twice in one process: no cached model
    return model_loader.load_model("parakeet", config_path=args["config"])


def load_from_pretrained(args: dict[str, Any]) -> Any:
    from nemo.collections.asr.models import ASRModel

    return ASRModel.from_pretrained(args["repo"], map_location="cpu").eval()


def load_restore_from(args: dict[str, Any]) -> Any:
    from nemo.collections.asr.models import ASRModel

    return ASRModel.restore_from(args["nemo"], map_location="cpu").eval()


def load_floor(args: dict[str, Any]) -> Any:
    """Construct the module and torch.load the same weight bytes (extracted once, a plain file)."""
    import torch
    from nemo.collections.asr.models import ASRModel
    from omegaconf import OmegaConf

    folder = Path(args["extracted"])
    conf = OmegaConf.load(folder / "model_config.yaml")
    ASRModel._set_model_restore_state(is_being_restored=True, folder=str(folder))
    model = ASRModel.from_config_dict(conf)
    state = torch.load(folder / "model_weights.ckpt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    ASRModel._set_model_restore_state(is_being_restored=False)
    return model.eval()


LOADERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "load_model": load_with_loader,
    "load_model_plain": load_with_loader,  # run with LOCALSTT_FAST_LOAD=0
    "from_pretrained": load_from_pretrained,
    "restore_from": load_restore_from,
    "floor": load_floor,
}


def run_load(spawn_time: float, contenders: list[str], args: dict[str, Any]) -> None:
    import nemo.collections.asr  # noqa: F401
    import torch  # noqa: F401
    from nemo.utils import logging as nemo_logging

    import model_loader  # noqa: F401  (sets the offline switches first, as the app does)

    nemo_logging.setLevel(nemo_logging.ERROR)
    tmp = os.environ["TMPDIR"]
    start = spawn_time
    for name in contenders:
        os.environ["LOCALSTT_FAST_LOAD"] = "0" if name == "load_model_plain" else "1"
        imported, rss_imports = time.time(), peak_rss()
        wrote_before = written()
        model = LOADERS[name](args)
        loaded, rss_loaded, wrote = time.time(), peak_rss(), written() - wrote_before
        hypothesis = model.transcribe([args["clip"]], batch_size=1, timestamps=True, verbose=False)[0]
        ready = time.time()
        on_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
        emit(
            {
                "contender": name,
                "imports_s": imported - start,
                "load_s": loaded - start,
                "ready_s": ready - start,
                "first_transcribe_s": ready - loaded,
                "rss_after_imports": rss_imports,
                "peak_rss_loaded": rss_loaded,
                "peak_rss_ready": peak_rss(),
                "written_during_load": wrote,
                "temp_files_left": files_under(tmp),
                "on_meta": len(on_meta),
                "parameters": sum(p.numel() for p in model.parameters()),
                "text_chars": len(hypothesis.text),
            }
        )
        del model
        start = time.time()  # later contenders in the same process (--quick) count from here


def run_overhead(args: dict[str, Any]) -> None:
    """localstt.engine.transcribe against the model's own transcribe(), same audio, batch and device."""
    import torch

    import model_loader
    from localstt.engine import TranscribeOptions, transcribe

    store = model_loader.default_store(args["config"])
    loaded = store.load("parakeet")
    model, options = loaded.model, TranscribeOptions(parakeet_batch_size=1)
    audio, clip = Path(args["audio"]), Path(args["clip"])

    def engine(path: Path) -> str:
        return transcribe(path, "parakeet", options, store).text

    def own(path: Path) -> str:
        return model.transcribe([str(path)], batch_size=1, timestamps=True, verbose=False)[0].text

    engine(clip), own(clip)  # warm-up: first-call costs are not overhead
    times: dict[str, list[float]] = {"engine": [], "model": []}
    texts: dict[str, str] = {}
    for round_ in range(args["rounds"]):
        order = [("engine", engine), ("model", own)]
        for name, call in order if round_ % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            texts[name] = call(audio)
            times[name].append(time.perf_counter() - started)
    import soundfile as sf

    duration = sf.info(str(audio)).duration
    emit(
        {
            "audio_s": duration,
            "batch_size": 1,
            "device": loaded.device,
            "threads": torch.get_num_threads(),
            "engine_s": times["engine"],
            "model_s": times["model"],
            "engine_median_s": statistics.median(times["engine"]),
            "model_median_s": statistics.median(times["model"]),
            "same_text": texts["engine"] == texts["model"].strip(),
            "peak_rss": peak_rss(),
        }
    )


def run_export(args: dict[str, Any]) -> None:
    started = time.perf_counter()
    import export_models

    imported = time.perf_counter()
    code = export_models.main(args["argv"])
    emit({"rc": code, "imports_s": imported - started, "main_s": time.perf_counter() - imported})


def run_seed(args: dict[str, Any]) -> None:
    from huggingface_hub import hf_hub_download

    started = time.perf_counter()
    path = hf_hub_download(args["repo"], args["filename"], cache_dir=args["cache"])
    emit({"path": path, "seconds": time.perf_counter() - started})


def run_build(args: dict[str, Any]) -> None:
    from models import FULL, QUICK, build_parakeet_nemo

    started = time.perf_counter()
    nemo, parameters = build_parakeet_nemo(Path(args["workdir"]), QUICK if args["quick"] else FULL)
    emit({"nemo": str(nemo), "parameters": parameters, "seconds": time.perf_counter() - started})


def main() -> None:
    mode = sys.argv[1]
    if mode == "load":
        run_load(float(sys.argv[2]), sys.argv[3].split(","), json.loads(sys.argv[4]))
        return
    args = json.loads(sys.argv[2])
    {"overhead": run_overhead, "export": run_export, "seed": run_seed, "build": run_build}[mode](args)


if __name__ == "__main__":
    main()
