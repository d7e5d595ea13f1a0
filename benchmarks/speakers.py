"""What identifying speakers costs: the full-size Sortformer (NVIDIA's diar_streaming_sortformer_4spk-v2
dimensions, random weights: the real ones cannot be downloaded here) run over recordings of growing
length on this machine's CPU, each in a fresh process.

    uv run python benchmarks/speakers.py [--minutes 1 10 30] [--presets released high-latency]

For each length: the model's parameters and weight bytes, the process's memory once the model is
built, its peak while diarizing, and the seconds taken (as a multiple of real time). The audio is the
tests' two-voice dialogue (tests/fixtures/dialogue.wav) repeated to length; random weights give
meaningless turns, but the same work and memory as the trained model: the streaming loop, the speaker
cache and the chunk sizes are those of the released configuration. Prints JSON, writes
WORKDIR/speakers.json and the "Speakers" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


# Streaming settings: NeMo's streaming_sortformer_diarizer_4spk-v2.yaml, and the widely used
# high-latency preset (chunk_len, chunk_right_context, fifo_len, spkcache_update_period, spkcache_len).
PRESETS = {
    "released": {"chunk_len": 188, "chunk_right_context": 1, "fifo_len": 0, "spkcache_update_period": 1},
    "high-latency": {
        "chunk_len": 340,
        "chunk_right_context": 40,
        "fifo_len": 40,
        "spkcache_update_period": 300,
        "spkcache_len": 188,
    },
}


def full_size_config(preset: str = "released") -> dict[str, Any]:
    """The tiny fixture's configuration (scripts/make_tiny_sortformer.py) at the released model's
    sizes: FastConformer 17 x 512 (256 subsampling channels, feed-forward x4, 8 heads), Transformer
    18 x 192 (inner 768, 8 heads), per-feature normalisation, and the streaming settings of `preset`."""
    from testkit.tiny_models import tiny_sortformer_config

    config = tiny_sortformer_config(d_fc=512, d_tf=192)
    config["preprocessor"]["normalize"] = "per_feature"
    config["encoder"].update(n_layers=17, subsampling_conv_channels=256, ff_expansion_factor=4, n_heads=8)
    config["transformer_encoder"].update(num_layers=18, inner_size=768, num_attention_heads=8)
    config["sortformer_modules"].update(PRESETS[preset])
    return config


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes


def measure(minutes: float, preset: str) -> dict[str, Any]:
    """In this process: build the model, diarize `minutes` of the dialogue, report."""
    import contextlib
    import io

    import numpy as np
    import psutil
    import soundfile as sf
    import torch
    from nemo.collections.asr.models import SortformerEncLabelModel
    from nemo.utils import logging as nemo_logging
    from omegaconf import OmegaConf

    from localstt.compat import tarfile_with_extraction_filters
    from localstt.models.sortformer import parse_turns

    tarfile_with_extraction_filters()
    nemo_logging.setLevel(nemo_logging.ERROR)
    torch.manual_seed(0)
    before = psutil.Process().memory_info().rss
    model = SortformerEncLabelModel(cfg=OmegaConf.create(full_size_config(preset))).eval()
    built = psutil.Process().memory_info().rss
    parameters = sum(p.numel() for p in model.parameters())
    dialogue, rate = sf.read(REPO / "tests" / "fixtures" / "dialogue.wav", dtype="float32")
    repeats = int(np.ceil(minutes * 60 * rate / len(dialogue)))
    audio = np.tile(dialogue, repeats)[: int(minutes * 60 * rate)]
    started = time.perf_counter()
    with torch.inference_mode(), contextlib.redirect_stderr(io.StringIO()):
        lines = model.diarize(audio=[audio], sample_rate=rate, batch_size=1, verbose=False)[0]
    seconds = time.perf_counter() - started
    turns = parse_turns(lines)
    return {
        "minutes": minutes,
        "preset": preset,
        "parameters": parameters,
        "weights_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "rss_before_model_bytes": before,
        "rss_with_model_bytes": built,
        "peak_rss_bytes": peak_rss_bytes(),
        "diarize_s": round(seconds, 2),
        "times_real_time": round(minutes * 60 / seconds, 2),
        "turns": len(turns),
        "well_formed": all(0 <= t.start < t.end <= minutes * 60 + 0.08 and 0 <= t.speaker < 4 for t in turns),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0, 30.0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--workdir", type=Path, default=HERE / "work" / "speakers")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the doc from WORKDIR/speakers.json"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print("RESULT " + json.dumps(measure(float(args.child[0]), args.child[1])))
        return
    if args.report_only:
        from benchmarks.report import replace_section

        saved = json.loads((args.workdir / "speakers.json").read_text(encoding="utf-8"))
        replace_section(args.doc, HEADING, section(saved))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    runs = []
    for preset in args.presets:
        for minutes in args.minutes:
            command = [sys.executable, __file__, "--child", str(minutes), preset]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"{minutes} min ({preset}) failed:\n{done.stderr[-3000:]}")
            runs.append(json.loads(done.stdout.split("RESULT ", 1)[1]))
            print(json.dumps(runs[-1]), flush=True)
    import torch

    from benchmarks.report import machine_name, replace_section

    result = {"machine": machine_name("cpu"), "torch": torch.__version__, "runs": runs}
    (args.workdir / "speakers.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    replace_section(args.doc, HEADING, section(result))
    print(json.dumps(result, indent=1))


HEADING = "## Speakers"


def section(result: dict[str, Any]) -> str:
    runs = result["runs"]
    first = runs[0]
    gib = 1 << 30
    lines = [
        HEADING,
        "",
        f"`benchmarks/speakers.py` on {result['machine']} (torch {result['torch']}): the full-size "
        f"Sortformer ({first['parameters'] / 1e6:.1f} M parameters, "
        f"{first['weights_bytes'] / 1e6:.0f} MB of float32 weights), random weights, each run in a "
        "fresh process. Memory is the process's resident set: with the model built (NeMo and torch "
        f"imported: {first['rss_before_model_bytes'] / gib:.2f} GiB before it) and at its peak while "
        "diarizing.",
        "",
        "| streaming settings | audio | with the model | peak while diarizing | diarize | x real time |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run['preset']} | {run['minutes']:g} min | {run['rss_with_model_bytes'] / gib:.2f} GiB "
            f"| {run['peak_rss_bytes'] / gib:.2f} GiB | {run['diarize_s']:.1f} s "
            f"| {run['times_real_time']:.1f} |"
        )
    growth = ""
    released = sorted((r for r in runs if r["preset"] == "released"), key=lambda r: r["minutes"])
    if len(released) >= 2 and released[-1]["minutes"] > released[-2]["minutes"]:
        longer, shorter = released[-1], released[-2]
        per_minute = (longer["peak_rss_bytes"] - shorter["peak_rss_bytes"]) / (
            longer["minutes"] - shorter["minutes"]
        )
        at_three_hours = shorter["peak_rss_bytes"] + per_minute * (180 - shorter["minutes"])
        growth = (
            f" The peak grows by about {per_minute / 1e6:.0f} MB per minute of audio "
            f"({shorter['minutes']:g} to {longer['minutes']:g} min): NeMo computes the whole recording's "
            "spectrogram before its streaming loop, so 3 hours would peak near "
            f"{at_three_hours / gib:.1f} GiB."
        )
    lines += [
        "",
        '"released": NeMo\'s streaming_sortformer_diarizer_4spk-v2.yaml (chunks of 188 frames, 15 s); '
        '"high-latency": chunk_len 340, chunk_right_context 40, fifo_len 40, spkcache_update_period 300, '
        "spkcache_len 188. The app runs the settings saved in the exported .nemo. On a GPU the weights take "
        "the same 471 MB beside the transcription model (not measured here: no GPU)." + growth,
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
