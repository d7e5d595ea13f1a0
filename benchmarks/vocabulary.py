"""Phrase boosting, measured: RTFx with no vocabulary, 10 phrases and 1,000 phrases, side by side, and the
one-time cost of building the boosted decoding for each list.

    uv run python benchmarks/vocabulary.py            # full-size random-weight Parakeet (~5 min, once built)
    uv run python benchmarks/vocabulary.py --quick    # the tiny Parakeet, in a minute

The model is exported from the test hub and loaded by the app's store. After one untimed warm-up
call, each list's boosted decoding is built (timed on its own), then the list transcribes the same
60 s of espeak-ng speech three times through the engine; the RTFx is the best of the three. `--workdir
benchmarks/work/live` reuses the live benchmark's full-size model. The phrases are two- and
three-word phrases of the speech's words that the model's tokenizer can spell. Results go to
docs/benchmarks.md ("## Vocabulary") and benchmarks/vocabulary-results.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.report import machine_name, replace_section

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HEADING = "## Vocabulary"


def phrase_lists(loaded: Any, words: list[str]) -> dict[str, tuple[str, ...]]:
    """0, 10 and 1,000 phrases the model can spell, made of `words`."""
    from localstt.models.parakeet_boost import phrase_problem

    candidates = (
        " ".join(combo).capitalize()
        for size in (2, 3)
        for combo in itertools.permutations(dict.fromkeys(words), size)
    )
    spellable: list[str] = []
    for phrase in candidates:
        if not phrase_problem(loaded, phrase):
            spellable.append(phrase)
        if len(spellable) == 1000:
            break
    return {"none": (), "10 phrases": tuple(spellable[:10]), "1000 phrases": tuple(spellable)}


def build(row: dict[str, Any]) -> str:
    """The build's time, for a list that has one."""
    return f"{row['build_s']} s" if row["phrases"] else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny model")
    parser.add_argument("--workdir", default=str(HERE / "work" / "vocabulary"))
    parser.add_argument("--doc", default=str(REPO / "docs" / "benchmarks.md"))
    parser.add_argument("--results", default=str(HERE / "vocabulary-results.json"))
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    import localstt.offline  # noqa: F401  # before NeMo and the hub client
    from benchmarks.live import exported_store
    from benchmarks.models import FULL, SENTENCES, build_parakeet_nemo, make_speech
    from localstt import engine
    from localstt.spec import Vocabulary
    from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV, TINY_PARAKEET_NEMO

    if args.quick:
        store, speech = exported_store(workdir / "tiny", TINY_PARAKEET_NEMO), PHRASE_WAV
        words = PHRASE_TXT.read_text(encoding="utf-8").lower().rstrip(".\n").split()
    else:
        nemo, _, _ = build_parakeet_nemo(workdir / "full", FULL)
        store, speech = exported_store(workdir / "full", nemo), make_speech(workdir / "full", 60.0)
        words = " ".join(SENTENCES).lower().replace(".", "").replace(",", "").split()
    loaded = store.load("parakeet")
    lists = phrase_lists(loaded, words)
    engine.transcribe(speech, "parakeet", store.config.transcription, store)  # warm-up, not timed
    rows = []
    for name, phrases in lists.items():
        vocabulary = Vocabulary(phrases)
        started = time.perf_counter()  # the checks and the boosted decoding, built once per list
        with loaded.lock, engine.boosted(loaded, vocabulary):
            pass
        build_s = time.perf_counter() - started
        options = store.config.transcription.replace(vocabulary=vocabulary)
        seconds = []
        for _ in range(3):
            started = time.perf_counter()
            transcript = engine.transcribe(speech, "parakeet", options, store)
            seconds.append(time.perf_counter() - started)
        best = min(seconds)
        rows.append(
            {
                "list": name,
                "phrases": len(phrases),
                "build_s": round(build_s, 2),
                "calls_s": [round(value, 2) for value in seconds],
                "rtfx": round(transcript.duration / best, 2),
                "words": len(transcript.text.split()),  # the decoder's work grows with what it emits
            }
        )
        print(rows[-1], flush=True)
    results = {
        "machine": machine_name(loaded.device),
        "date": time.strftime("%Y-%m-%d"),
        "model": "tiny Parakeet" if args.quick else "full-size random-weight Parakeet (617.8 M parameters)",
        "audio_s": round(transcript.duration, 1),
        "rows": rows,
    }
    Path(args.results).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    lines = [
        HEADING,
        "",
        f"`uv run python benchmarks/vocabulary.py`, {results['machine']}, {results['date']}: the",
        f"{results['model']}, {results['audio_s']} s of espeak-ng speech through the engine after one",
        "untimed warm-up call; RTFx from the best of three calls per list. The boosted decoding is built",
        "once per list (the phrases checked against the tokenizer, the tree built), timed on its own.",
        "",
        "| phrases | RTFx | the three calls | words emitted | building the boosted decoding (once) |",
        "|---|---|---|---|---|",
        *(
            f"| {r['phrases']} | {r['rtfx']} | {', '.join(f'{v} s' for v in r['calls_s'])} | {r['words']} "
            f"| {build(r)} |"
            for r in rows
        ),
        "",
        "Random weights emit arbitrary tokens, and the label-looping decoder's time grows with how many it",
        "emits per frame (up to 10): the RTFx of each list follows the words it emitted more than the",
        "boosting itself, whose own costs are the one-time build and a lookup in the tree per step. With",
        "real weights the words are the speech's, and those costs are what is left.",
    ]
    replace_section(Path(args.doc), HEADING, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
