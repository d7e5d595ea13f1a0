"""One measured process of the benchmark (started by benchmarks/run.py, never imported by it).

    python benchmarks/child.py load SPAWN_TIME CONTENDERS JSON_ARGS     time to ready, RSS, bytes written
    python benchmarks/child.py overhead JSON_ARGS                       engine vs model.transcribe
    python benchmarks/child.py export JSON_ARGS                         export_models.main(), imports apart
    python benchmarks/child.py seed JSON_ARGS                           hf_hub_download into an HF cache
    python benchmarks/child.py build JSON_ARGS                          the random-weight .nemo
    python benchmarks/child.py build_canary JSON_ARGS                   the random-weight SALM repos

Each prints one line per result: `RESULT {json}`.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GiB = 1024**3


def emit(result: dict[str, Any]) -> None:
    print("RESULT " + json.dumps(result), flush=True)


def peak_rss() -> int:
    """This process's peak resident memory in bytes (VmHWM).

    Not getrusage's ru_maxrss: that survives fork and exec, so a child starts with its parent's peak.
    """
    with open("/proc/self/status", encoding="ascii") as handle:
        fields = dict(line.split(":", 1) for line in handle)
    return int(fields["VmHWM"].split()[0]) * 1024  # kB


def written() -> tuple[int, int]:
    """(write() bytes incl. console and pipes, bytes dirtied for the disk incl. files deleted later).

    Both from /proc/self/io: wchar counts every write() call; write_bytes counts the page-cache pages
    this process dirtied, which is what reaches the disk, temp files included.
    """
    with open("/proc/self/io", encoding="ascii") as handle:
        fields = dict(line.split(": ") for line in handle.read().splitlines())
    return int(fields["wchar"]), int(fields["write_bytes"])


def files_under(folder: str) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


# --------------------------------------------------------------------------- the contenders


def load_with_loader(args: dict[str, Any]) -> Any:
    import localstt.store
    import model_loader

    localstt.store._default_store = None  # --quick loads twice in one process: no cached model
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


def first_transcription(name: str, model: Any, clip: str) -> int:
    """Transcribe the clip once, as a user's first request would: the length of what came out."""
    if name.startswith("canary_"):
        from benchmarks.canary import first_transcription as generate_once

        return generate_once(model, clip)
    return len(model.transcribe([clip], batch_size=1, timestamps=True, verbose=False)[0].text)


def run_load(spawn_time: float, contenders: list[str], args: dict[str, Any]) -> None:
    from localstt.compat import tarfile_with_extraction_filters

    tarfile_with_extraction_filters()  # NeMo's restore_from needs them (Python < 3.11.4 lacks them)
    import nemo.collections.asr  # noqa: F401
    import torch  # noqa: F401
    from nemo.utils import logging as nemo_logging

    import model_loader  # noqa: F401  (sets the offline switches first, as the app does)

    if contenders[0].startswith("canary_"):
        import nemo.collections.speechlm2.models  # noqa: F401

        from benchmarks.canary import LOADERS as CANARY_LOADERS

        LOADERS.update(CANARY_LOADERS)

    nemo_logging.setLevel(nemo_logging.ERROR)
    tmp = os.environ["TMPDIR"]
    start = spawn_time
    for name in contenders:
        os.environ["LOCALSTT_FAST_LOAD"] = "0" if name == "load_model_plain" else "1"
        imported, rss_imports = time.time(), peak_rss()
        wrote_before = written()
        model = LOADERS[name](args)
        loaded, rss_loaded, wrote_after = time.time(), peak_rss(), written()
        output_length = first_transcription(name, model, args["clip"])
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
                "written_during_load": wrote_after[0] - wrote_before[0],
                "disk_written_during_load": wrote_after[1] - wrote_before[1],
                "temp_files_left": files_under(tmp),
                "on_meta": len(on_meta),
                "parameters": sum(p.numel() for p in model.parameters()),
                "output_length": output_length,
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
    model, options = loaded.model, TranscribeOptions.build(parakeet_batch_size=1)
    audio, clip = Path(args["audio"]), Path(args["clip"])

    def engine(path: Path) -> str:
        return transcribe(path, "parakeet", options, store).text

    tokens: list[int] = []

    def own(path: Path) -> str:
        hypothesis = model.transcribe([str(path)], batch_size=1, timestamps=True, verbose=False)[0]
        tokens.append(len(hypothesis.y_sequence))
        return hypothesis.text

    engine(clip), own(clip)  # warm-up: first-call costs are not overhead
    times: dict[str, list[float]] = {"engine": [], "model": []}
    texts: dict[str, str] = {}
    for round_ in range(args["rounds"]):
        order = [("engine", engine), ("model", own)]
        for name, call in order if round_ % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            texts[name] = call(audio)
            times[name].append(time.perf_counter() - started)
            emit({"run": name, "round": round_, "seconds": times[name][-1], "peak_rss": peak_rss()})
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
            "tokens_per_second": tokens[-1] / duration,
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
    """hf_hub_download of each [repo, filename] at main into the HF cache, as from_pretrained would."""
    from huggingface_hub import hf_hub_download

    started = time.perf_counter()
    paths = [hf_hub_download(repo, filename, cache_dir=args["cache"]) for repo, filename in args["files"]]
    emit({"paths": paths, "seconds": time.perf_counter() - started})


def run_build(args: dict[str, Any]) -> None:
    from benchmarks.models import FULL, QUICK, build_parakeet_nemo

    started = time.perf_counter()
    nemo, parameters, shift = build_parakeet_nemo(Path(args["workdir"]), QUICK if args["quick"] else FULL)
    emit(
        {
            "nemo": str(nemo),
            "parameters": parameters,
            "blank_bias_shift": shift,
            "seconds": time.perf_counter() - started,
        }
    )


def run_build_canary(args: dict[str, Any]) -> None:
    from benchmarks.canary import CANARY_FULL, CANARY_QUICK, build_canary_repos

    started = time.perf_counter()
    facts = build_canary_repos(Path(args["workdir"]), CANARY_QUICK if args["quick"] else CANARY_FULL)
    emit({**facts, "seconds": time.perf_counter() - started, "peak_rss": peak_rss()})


def main() -> None:
    mode = sys.argv[1]
    if mode == "load":
        run_load(float(sys.argv[2]), sys.argv[3].split(","), json.loads(sys.argv[4]))
        return
    args = json.loads(sys.argv[2])
    modes = {"overhead": run_overhead, "export": run_export, "seed": run_seed, "build": run_build}
    modes["build_canary"] = run_build_canary
    modes[mode](args)


if __name__ == "__main__":
    main()
