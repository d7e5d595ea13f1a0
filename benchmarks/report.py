"""Medians, ratios and targets from the raw runs; the table printed and written to docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path
from typing import Any

GB = 1000**3
GiB = 1024**3
LOAD_METRICS = (
    "imports_s",
    "load_s",
    "ready_s",
    "first_transcribe_s",
    "rss_after_imports",
    "peak_rss_loaded",
    "peak_rss_ready",
    "written_during_load",
    "disk_written_during_load",
    "temp_files_left",
    "on_meta",
)
CONTENDER_NAMES = {
    "load_model": "this project's `load_model` (weights mapped from the .nemo)",
    "load_model_plain": "`load_model` forced onto its plain fallback (`LOCALSTT_FAST_LOAD=0`)",
    "from_pretrained": "`ASRModel.from_pretrained`, warm HF cache, offline",
    "restore_from": "`ASRModel.restore_from(file.nemo)`",
    "floor": "floor: build the module + `torch.load` of the same weight bytes",
    "canary_load_model": "this project's `load_model`",
    "canary_from_pretrained": "`SALM.from_pretrained`, warm HF cache, offline",
    "canary_floor": "floor: build the module + safetensors `load_file` of the same bytes",
}


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {key: float(statistics.median(run[key] for run in runs)) for key in LOAD_METRICS}


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("inf")


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Fill in medians, ratios and the target table from the raw runs in `results`."""
    ready = results["time_to_ready"]
    for entry in ready.values():
        entry["median"] = medians(entry["runs"])
    ours, weights = ready["load_model"]["median"], results["model"]["weights_bytes"]
    ratios = {
        f"ready_vs_{other}": ratio(ours["ready_s"], ready[other]["median"]["ready_s"])
        for other in ready
        if other != "load_model"
    }
    ratios |= {
        f"load_vs_{other}": ratio(ours["load_s"], ready[other]["median"]["load_s"])
        for other in ready
        if other != "load_model"
    }
    ratios["peak_rss_ready_vs_weights"] = ratio(ours["peak_rss_ready"], weights)
    ratios["peak_rss_loaded_vs_weights"] = ratio(ours["peak_rss_loaded"], weights)
    ratios["peak_rss_loaded_above_imports_vs_weights"] = ratio(
        ours["peak_rss_loaded"] - ours["rss_after_imports"], weights
    )
    ratios["peak_rss_above_imports_vs_weights"] = ratio(
        ours["peak_rss_ready"] - ours["rss_after_imports"], weights
    )
    overhead = results["overhead"]
    overhead["ratio"] = ratio(overhead["engine_median_s"], overhead["model_median_s"])
    overhead["rtfx_engine"] = round(overhead["audio_s"] / overhead["engine_median_s"], 2)
    overhead["rtfx_model"] = round(overhead["audio_s"] / overhead["model_median_s"], 2)
    ratios["engine_vs_model_transcribe"] = overhead["ratio"]
    downloads = results["downloads"]
    first = downloads["first_export"]
    first["bytes_vs_file_size"] = ratio(first["bytes_sent"], first["file_bytes"])
    verify = downloads["verify"]
    verify["median_s"] = statistics.median(verify["main_s"])
    verify["sha256sum_median_s"] = statistics.median(verify["sha256sum_s"])
    verify["vs_sha256sum"] = ratio(verify["median_s"], verify["sha256sum_median_s"])
    ratios["verify_vs_sha256sum"] = verify["vs_sha256sum"]
    results["ratios"] = ratios
    canary = results.get("canary", {})
    if "time_to_ready" in canary:
        _summarize_canary(canary)
    again = downloads["re_export"]
    results["targets"] = [
        _target(
            "time to ready vs from_pretrained (warm cache)", ratios["ready_vs_from_pretrained"], "<=", 0.6
        ),
        _target("time to ready vs floor", ratios["ready_vs_floor"], "<=", 1.3),
        _target("bytes written to disk per load (MB)", ours["disk_written_during_load"] / 1e6, "<=", 0.0),
        _target(
            "peak RSS during load, above the imports, vs weights",
            ratios["peak_rss_loaded_above_imports_vs_weights"],
            "<=",
            1.3,
        ),
        _target(
            "peak RSS through first transcription, above the imports, vs weights",
            ratios["peak_rss_above_imports_vs_weights"],
            "<=",
            1.3,
        ),
        _target("engine vs model.transcribe (CPU)", overhead["ratio"], "<=", 1.05),
        _target("first export bytes vs files' size", first["bytes_vs_file_size"], "within 1% of", 1.0),
        _target("re-export bytes", again["bytes_sent"], "<=", 0),
        _target("re-export requests", again["requests"], "<=", 0),
        _target("re-export seconds after imports", round(again["main_s"], 3), "<", 1.0),
        _target("--verify vs sha256sum of the same file", verify["vs_sha256sum"], "<=", 1.3),
    ]
    if "ratios" in canary:
        c = canary["ratios"]
        results["targets"] += [
            _target(
                "Canary: time to ready vs SALM.from_pretrained", c["ready_vs_from_pretrained"], "<=", 0.6
            ),
            _target("Canary: time to ready vs floor", c["ready_vs_floor"], "<=", 1.3),
            _target("Canary: bytes written to disk per load (MB)", c["disk_written_mb"], "<=", 0.0),
            _target(
                "Canary: first export bytes vs files' size",
                c["export_bytes_vs_file_size"],
                "within 1% of",
                1.0,
            ),
        ]
    return results


def _summarize_canary(canary: dict[str, Any]) -> None:
    ready = canary["time_to_ready"]
    for entry in ready.values():
        entry["median"] = medians(entry["runs"])
    ours, export = ready["canary_load_model"]["median"], canary["export"]
    canary["ratios"] = {
        "ready_vs_from_pretrained": ratio(
            ours["ready_s"], ready["canary_from_pretrained"]["median"]["ready_s"]
        ),
        "ready_vs_floor": ratio(ours["ready_s"], ready["canary_floor"]["median"]["ready_s"]),
        "disk_written_mb": ours["disk_written_during_load"] / 1e6,
        "export_bytes_vs_file_size": ratio(export["bytes_sent"], export["file_bytes"]),
        "peak_rss_loaded_above_imports_vs_file": ratio(
            ours["peak_rss_loaded"] - ours["rss_after_imports"], canary["model"]["safetensors_bytes"]
        ),
    }


def _target(name: str, value: float, op: str, bound: float) -> dict[str, Any]:
    met = {
        "<=": value <= bound + 1e-12,
        "<": value < bound,
        "within 1% of": abs(value - bound) <= 0.01,
    }[op]
    return {"name": name, "value": value, "target": f"{op} {bound:g}", "met": bool(met)}


def _s(value: float) -> str:
    return f"{value:.2f} s"


def _gib(value: float) -> str:
    return f"{value / GiB:.2f} GiB"


def load_table(ready: dict[str, Any], ours: str = "load_model") -> list[str]:
    base = ready[ours]["median"]["ready_s"]
    lines = [
        "| way of loading | ready (median) | model returned | ready ÷ ours | peak RSS loaded "
        "| peak RSS ready | written to disk during load | write() calls during load | temp files left |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in ready.items():
        m = entry["median"]
        lines.append(
            f"| {CONTENDER_NAMES.get(name, name)} | {_s(m['ready_s'])} | {_s(m['load_s'])} "
            f"| {m['ready_s'] / base:.2f}x | {_gib(m['peak_rss_loaded'])} | {_gib(m['peak_rss_ready'])} "
            f"| {m['disk_written_during_load'] / 1e6:,.1f} MB | {m['written_during_load'] / 1e6:,.2f} MB "
            f"| {m['temp_files_left']:.0f} |"
        )
    return lines


def targets_table(results: dict[str, Any]) -> list[str]:
    lines = ["| target | measured | wanted | met |", "|---|---|---|---|"]
    for t in results["targets"]:
        lines.append(f"| {t['name']} | {t['value']:g} | {t['target']} | {'yes' if t['met'] else '**no**'} |")
    return lines


def console_table(results: dict[str, Any]) -> str:
    return "\n".join([*load_table(results["time_to_ready"]), "", *targets_table(results)])


def machine_name(device: str) -> str:
    """The machine a benchmark ran on: the GPU's name, or the CPU's architecture and cores."""
    if device == "cuda":
        import torch

        return str(torch.cuda.get_device_name())
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU"


def section_text(text: str, heading: str) -> str:
    """The part of a markdown document from `heading` (a "## " line) to the next "## " heading."""
    if heading not in text:
        return ""
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end == -1 else text[start : end + 1]


def replace_section(doc: Path, heading: str, section: str) -> None:
    """Put `section` (starting with `heading`) where that section of `doc` is, or at its end."""
    text = doc.read_text(encoding="utf-8")
    old = section_text(text, heading)
    new = section.rstrip("\n") + "\n"
    if old:
        start = text.index(old)
        rest = text[start + len(old) :]
        text = text[:start] + new + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + new
    doc.write_text(text, encoding="utf-8")
