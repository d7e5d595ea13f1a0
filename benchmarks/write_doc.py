"""docs/benchmarks.md from a summarized results dict, plus the hand-written benchmarks/analysis.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.report import GB, GiB, load_table, targets_table

HERE = Path(__file__).resolve().parent


def _machine(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    runs = [run for entry in results["time_to_ready"].values() for run in entry["runs"]]
    loads = [run["loadavg_1m"] for run in runs]
    quick = " (--quick: toy sizes, one process for all loaders; the numbers mean nothing)"
    timeline = "; ".join(
        f"{name} {entry['started'][11:19]}-{entry['finished'][11:19]} (load {entry['loadavg_start']:.2f}"
        f" -> {entry['loadavg_end']:.2f})"
        for name, entry in results["phases"].items()
    )
    return [
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB RAM, no GPU; Linux {m['kernel']}, "
        f"Python {m['python']}, torch {m['torch']}, nemo_toolkit {m['nemo_toolkit']}, "
        f"huggingface_hub {m['huggingface_hub']}.",
        f"- Run: {results['started']} to {results['finished']} (UTC), {results['rounds']} rounds"
        f"{quick if results['quick'] else ''}.",
        "- Machine load (1-minute load average; 2 cores; other work may have run beside it): "
        f"{results['loadavg_start'][0]:.2f} at the start, {results['loadavg_end'][0]:.2f} at the end, "
        f"{min(loads):.2f} to {max(loads):.2f} when each load started.",
        f"- Phases (UTC, 1-minute load average at start -> end): {timeline}.",
    ]


def _model(results: dict[str, Any]) -> list[str]:
    model = results["model"]
    return [
        f"- Model: random weights, Parakeet-TDT-0.6B-v2's architecture (benchmarks/models.py): "
        f"{model['parameters'] / 1e6:.1f} M parameters "
        f"(published: {model['published_parameters'] / 1e9:.1f} B), "
        f"a {model['nemo_bytes'] / GB:.2f} GB `.nemo` holding {model['weights_bytes'] / GB:.2f} GB of "
        f"weights ({model['weights_bytes'] / GiB:.2f} GiB). The joint's blank bias was raised by "
        f"{model['blank_bias_shift']:.2f} so that greedy decoding emits about 4 tokens per second on 30 s "
        "of espeak-ng speech, as real speech has (benchmarks/models.py); on other lengths it emits more.",
    ]


def _overhead(results: dict[str, Any]) -> list[str]:
    o = results["overhead"]
    return [
        "| | median time | RTFx | runs |",
        "|---|---|---|---|",
        f"| `localstt.engine.transcribe` | {o['engine_median_s']:.2f} s | {o['rtfx_engine']:.1f} "
        f"| {', '.join(f'{t:.2f}' for t in o['engine_s'])} |",
        f"| the model's own `transcribe()` | {o['model_median_s']:.2f} s | {o['rtfx_model']:.1f} "
        f"| {', '.join(f'{t:.2f}' for t in o['model_s'])} |",
        "",
        f"{o['audio_s'] / 60:.1f} minutes of espeak-ng speech (16 kHz mono WAV), "
        f"batch size {o['batch_size']}, "
        f"{o['device']}, {o['threads']} torch threads, timestamps on in both, one process, alternating "
        f"after a warm-up call of each. Engine ÷ model: **{o['ratio']:.3f}**. Same text from both: "
        f"{'yes' if o['same_text'] else 'no'}. The random model emitted {o['tokens_per_second']:.1f} "
        f"tokens per second of audio; peak RSS of that process {o['peak_rss'] / GiB:.1f} GiB.",
    ]


def _downloads(results: dict[str, Any]) -> list[str]:
    d = results["downloads"]
    first, again, seed, verify = d["first_export"], d["re_export"], d["hf_hub_download"], d["verify"]
    size = first["file_bytes"]
    speed = size / verify["median_s"] / 1e6
    return [
        "| step | bytes from the hub | requests | time |",
        "|---|---|---|---|",
        f"| first `export_models.py parakeet` | {first['bytes_sent']:,} "
        f"({first['bytes_vs_file_size']:.4f}x the "
        f"file's {size:,}) | {first['requests']} | {first['wall_s']:.1f} s wall, {first['main_s']:.1f} s "
        "after imports |",
        f"| the same command again | {again['bytes_sent']:,} | {again['requests']} "
        f"| {again['wall_s']:.2f} s wall, "
        f"**{again['main_s'] * 1000:.0f} ms after imports** ({again['imports_s']:.2f} s of imports) |",
        f"| `hf_hub_download` into an empty HF cache (to seed `from_pretrained`) | {seed['bytes_sent']:,} "
        f"| {seed['requests']} | {seed['seconds']:.1f} s |",
        "",
        f"`export_models.py --verify` (full sha256 of the {size / GB:.2f} GB file, page cache warm): median "
        f"{verify['median_s']:.2f} s ({speed:,.0f} MB/s) against {verify['sha256sum_median_s']:.2f} s for "
        f"`sha256sum` of the same file: **{verify['vs_sha256sum']:.2f}x**. Runs: "
        f"{', '.join(f'{t:.2f}' for t in verify['main_s'])} s; sha256sum "
        f"{', '.join(f'{t:.2f}' for t in verify['sha256sum_s'])} s.",
    ]


def _canary(results: dict[str, Any]) -> list[str]:
    canary = results.get("canary", {})
    if "skipped" in canary or "time_to_ready" not in canary:
        return [canary.get("skipped", "Not measured in this run.")]
    model, export, c = canary["model"], canary["export"], canary["ratios"]
    return [
        f"A random-weight SALM with Canary-Qwen-2.5B's architecture (benchmarks/canary.py): "
        f"{model['parameters'] / 1e6:,.1f} M parameters (published: "
        f"{model['published_parameters'] / 1e9:.1f} B; LoRA {model['lora_parameters'] / 1e6:.1f} M of them), "
        f"a {model['safetensors_bytes'] / 1e6:,.1f} MB bfloat16 `model.safetensors`. "
        f"Export from the test hub: "
        f"{export['bytes_sent']:,} bytes in {export['requests']} requests for {export['file_bytes']:,} bytes "
        f"of files ({c['export_bytes_vs_file_size']:.4f}x). Loads as above: fresh processes, alternating, "
        "page cache warm, medians; *ready* includes a first `generate()` of 4 tokens on the 5 s clip. "
        "On the CPU every contender ends with a float32 model (twice the file's size in memory).",
        "",
        *load_table(canary["time_to_ready"], "canary_load_model"),
        "",
        f"Ratios for `load_model` (ready): {c['ready_vs_from_pretrained']:.2f}x `SALM.from_pretrained`, "
        f"{c['ready_vs_floor']:.2f}x the floor. Peak RSS when the load returned, above the imports: "
        f"{c['peak_rss_loaded_above_imports_vs_file']:.2f}x the file.",
    ]


def render(results: dict[str, Any]) -> str:
    ratios = results["ratios"]
    parts = [
        "# Benchmarks",
        "",
        "Generated by `uv run python benchmarks/run.py` (raw numbers: `benchmarks/results.json`). "
        "Timings are only comparable on this machine, and every ratio compares contenders measured "
        "side by side in the same phase (the phases and their times are listed below; `--resume` "
        "re-runs only the phases missing from a saved run).",
        "",
        *_machine(results),
        *_model(results),
        "",
        "## Targets",
        "",
        *targets_table(results),
        "",
        "## Time to ready, memory and temp disk",
        "",
        "Each load in a fresh process, contenders alternating round by round, page cache warm, medians. "
        "*Ready* is process start until the model has transcribed a 5 s clip (so a loader cannot hide work "
        "in the first call); *model returned* is process start until the load call returned. "
        "*Written to disk during load* is the page-cache bytes the process dirtied during the load call "
        "(`/proc/self/io` write_bytes: temp files included, also ones deleted before the call returned); "
        "*write() calls* also counts console output (wchar). Peak RSS (the process's high-water mark) "
        "includes the mapped file pages that were read; *above the imports* subtracts what torch and NeMo "
        "take before any model exists.",
        "",
        *load_table(results["time_to_ready"]),
        "",
        f"Ratios for `load_model` (ready): {ratios['ready_vs_from_pretrained']:.2f}x `from_pretrained`, "
        f"{ratios['ready_vs_restore_from']:.2f}x `restore_from`, {ratios['ready_vs_floor']:.2f}x the floor, "
        f"{ratios['ready_vs_load_model_plain']:.2f}x its own plain fallback. "
        f"Peak RSS when the load returned: {ratios['peak_rss_loaded_vs_weights']:.2f}x the weights "
        f"({ratios['peak_rss_loaded_above_imports_vs_weights']:.2f}x above the imports); through the first "
        f"transcription: {ratios['peak_rss_ready_vs_weights']:.2f}x the weights "
        f"({ratios['peak_rss_above_imports_vs_weights']:.2f}x above what the imports alone take).",
        "",
        "## Engine overhead",
        "",
        *_overhead(results),
        "",
        "## Canary-Qwen-2.5B-sized",
        "",
        *_canary(results),
        "",
        "## Downloads (local test hub, testkit/hubserver.py)",
        "",
        *_downloads(results),
        "",
        "## GPU",
        "",
        results["gpu"]["note"],
        "",
    ]
    analysis = HERE / "analysis.md"
    if analysis.exists():
        parts += [analysis.read_text(encoding="utf-8").rstrip(), ""]
    return "\n".join(parts)


KEPT_SECTION = "## Soak"


def write_doc(results: dict[str, Any], path: Path) -> None:
    """Write the report; everything from "## Soak" on (the soak figures from tests/test_hardening_soak.py
    and the attention-memory table from benchmarks/attention_memory.py, both written by hand) is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render(results)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if KEPT_SECTION in old:
        text += "\n" + old[old.index(KEPT_SECTION) :]
    path.write_text(text, encoding="utf-8")
