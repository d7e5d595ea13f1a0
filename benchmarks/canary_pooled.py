"""Canary-Qwen on many short recordings: each recording's windows run by themselves against the
windows of all of them pooled (as a folder job runs them), side by side.

    uv run python benchmarks/canary_pooled.py            # a Canary-Qwen-2.5B-sized SALM, random weights
    uv run python benchmarks/canary_pooled.py --quick    # the tiny SALM, in a minute

The model is built offline (benchmarks/canary.py), exported from the test hub and loaded by the app's
store. 24 clips of espeak-ng speech, 2 to 5 s each, one window each. Random weights never write the
end of a sentence, so both arms write exactly `--tokens` tokens per window: the same work per window.
The arms alternate, `--rounds` times, after an untimed warm-up; the figure is each arm's best round.
The GPU check (benchmarks/gpu_check.py) runs `measure` too, on the GPU. Results go to
docs/benchmarks.md ("## Canary-Qwen, many short recordings") and benchmarks/canary-pooled-results.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.report import machine_name, replace_section

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HEADING = "## Canary-Qwen, many short recordings"


def count_calls(model: Any) -> tuple[list[int], Callable[[], None]]:
    """(the batch size of each call of the audio encoder from now on, a function that stops counting)."""
    sizes: list[int] = []

    def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        sizes.append(int(next(iter([*args, *kwargs.values()])).shape[0]))

    handle = model.perception.register_forward_pre_hook(hook, with_kwargs=True)
    return sizes, handle.remove


def measure(
    store: Any,
    clips: list[Any],
    tokens: int,
    rounds: int,
    arms: dict[str, Any],
    synchronize: Callable[[], None],
) -> dict[str, Any]:
    """Each arm's best time over `rounds` (alternating), its model calls and whether its texts are
    those of the first arm. `arms`: name -> canary_batch_size ("auto" or a number); the first arm
    runs each clip by itself, the others pool them."""
    from localstt import engine

    recordings = [(clip, f"clip-{number}") for number, clip in enumerate(clips)]
    base = store.config.transcription.replace(canary_max_new_tokens=tokens)
    loaded = store.load("canary-qwen")
    names = list(arms)

    def run(name: str) -> list[str]:
        options = base.replace(canary_batch_size=arms[name])
        if name == names[0]:
            return [engine.transcribe(clip, "canary-qwen", options, store).text for clip in clips]
        return [t.text for t in engine.transcribe_together(recordings, "canary-qwen", options, store)]

    texts: dict[str, list[str]] = {}
    calls: dict[str, list[int]] = {}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up, untimed; counts the calls
        sizes, stop = count_calls(loaded.model)
        texts[name] = run(name)
        stop()
        calls[name] = sizes
    for _ in range(rounds):
        for name in names:
            synchronize()
            started = time.perf_counter()
            run(name)
            synchronize()
            seconds[name].append(round(time.perf_counter() - started, 3))
    audio_s = sum(clip.duration for clip in clips)
    first = names[0]
    return {
        "clips": len(clips),
        "audio_s": round(audio_s, 2),
        "tokens_per_window": tokens,
        "arms": [
            {
                "arm": name,
                "canary_batch_size": arms[name],
                "model_calls": len(calls[name]),
                "largest_call": max(calls[name]),
                "rounds_s": seconds[name],
                "best_s": min(seconds[name]),
                "rtfx": round(audio_s / min(seconds[name]), 2),
                "vs_per_recording": round(min(seconds[first]) / min(seconds[name]), 3),
                "same_texts": texts[name] == texts[first],
            }
            for name in names
        ],
    }


def short_clips(count: int) -> list[Any]:
    """`count` clips of espeak-ng speech (benchmarks/models.py's sentences, cut to 2 to 5 s)."""
    import tempfile

    from benchmarks.gpu_check import decoded, prepare_audio, read_utterances

    with tempfile.TemporaryDirectory() as folder:
        prepare_audio(Path(folder))
        utterances = read_utterances(Path(folder))
    lengths = [2.0 + 3.0 * (n % 7) / 6 for n in range(count)]
    return [decoded(utterances[n % len(utterances)][: int(lengths[n] * 16000)]) for n in range(count)]


def exported_canary(workdir: Path, quick: bool) -> Any:
    """A ModelStore over the SALM built in `workdir`, exported from the test hub, on the CPU."""
    from benchmarks.canary import CANARY_FULL, CANARY_QUICK, build_canary_repos, canary_hub_files
    from benchmarks.gpu_check import write_project_config
    from localstt.config import load_config
    from localstt.store import ModelStore
    from testkit.hubserver import run_hub
    from testkit.store_env import make_project
    from testkit.tiny_models import CANARY_REPO_ID, QWEN_REPO_ID

    project_dir = workdir / "project"
    if not (project_dir / "local_models" / "canary-qwen" / "manifest.json").exists():
        facts = build_canary_repos(workdir / "canary", CANARY_QUICK if quick else CANARY_FULL)
        files, llm_files = canary_hub_files(facts)
        with run_hub() as hub:
            hub.add_commit(QWEN_REPO_ID, llm_files)
            hub.add_commit(CANARY_REPO_ID, {**files, "README.md": b"# card\n"})
            project = make_project(project_dir, hub)
            write_project_config(project, "cpu")
            done = project.export("canary-qwen", timeout=3600)
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-2000:])
    return ModelStore(load_config(project_dir / "config.toml"))


def row(arm: dict[str, Any]) -> str:
    at_once = f"{arm['canary_batch_size']} (largest call {arm['largest_call']})"
    same = "yes" if arm["same_texts"] else "no"
    return (
        f"| {arm['arm']} | {at_once} | {arm['model_calls']} | {arm['best_s']} s | {arm['rtfx']} | "
        f"{arm['vs_per_recording']}x | {same} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny SALM")
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--tokens", type=int, default=8, help="tokens written per window, in both arms")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", default=str(HERE / "work" / "canary-pooled"))
    parser.add_argument("--doc", default=str(REPO / "docs" / "benchmarks.md"))
    parser.add_argument("--results", default=str(HERE / "canary-pooled-results.json"))
    args = parser.parse_args()
    workdir = Path(args.workdir) / ("tiny" if args.quick else "full")
    workdir.mkdir(parents=True, exist_ok=True)

    import localstt.offline  # noqa: F401  # before NeMo and the hub client

    store = exported_canary(workdir, args.quick)
    clips = short_clips(args.clips)
    # On the CPU "auto" is at most 8 windows at once (for the progress and a waiting live step);
    # 24 at once shows what a bigger batch would give there.
    arms = {
        "each recording by itself": "auto",
        "pooled (auto)": "auto",
        f"pooled, {args.clips} at once": args.clips,
    }
    result = measure(store, clips, args.tokens, args.rounds, arms, lambda: None)
    model = "the tiny SALM" if args.quick else "a Canary-Qwen-2.5B-sized SALM with random weights"
    results = {"machine": machine_name("cpu"), "date": time.strftime("%Y-%m-%d"), "model": model, **result}
    print(json.dumps(results, indent=1), flush=True)
    Path(args.results).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    command = f"uv run python benchmarks/canary_pooled.py{' --quick' if args.quick else ''}"
    lines = [
        HEADING,
        "",
        f"`{command}`, {results['machine']}, {results['date']}: {model}, {result['clips']} clips of",
        f"espeak-ng speech ({result['audio_s']} s in all, one window each), {result['tokens_per_window']}",
        "tokens written per window in every arm (random weights never end a sentence). Best of",
        f"{args.rounds} alternating rounds after a warm-up.",
        "",
        "| arm | windows at once | model calls | best | RTFx | against each by itself | same texts |",
        "|---|---|---|---|---|---|---|",
        *(row(arm) for arm in result["arms"]),
        "",
    ]
    replace_section(Path(args.doc), HEADING, "\n".join(lines))


if __name__ == "__main__":
    main()
