"""The library, measured: how long keeping, listing, opening, editing, searching and deleting take,
and how large the file grows, for a library of generated transcripts (no model runs).

    uv run python benchmarks/library.py            # 500 transcripts of 60 segments, 900 words each
    uv run python benchmarks/library.py --quick    # 20 of them

The figures are printed, one a line; docs/library.md ("Measured") quotes a run of the full size.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from localstt.library import editing
from localstt.library.database import Library
from localstt.library.settings import LibrarySettings
from localstt.transcript import Segment, Transcript, Word


def transcript(rng: random.Random, number: int, vocabulary: list[str]) -> Transcript:
    """60 segments of 15 timed words each, drawn from `vocabulary`."""
    segments, t = [], 0.0
    for _ in range(60):
        words = []
        for _ in range(15):
            words.append(Word(rng.choice(vocabulary), round(t, 3), round(t + 0.3, 3)))
            t += 0.4
        segments.append(Segment(words[0].start, words[-1].end, " ".join(w.text for w in words), tuple(words)))
    text = " ".join(s.text for s in segments)
    return Transcript(text, segments, t, "bench", "0" * 40, source_name=f"talk-{number}.wav")


def timed(work: Callable[[], object], times: int = 1) -> float:
    """Milliseconds per call of `work`."""
    started = time.perf_counter()
    for _ in range(times):
        work()
    return (time.perf_counter() - started) / times * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 transcripts instead of 500")
    count = 20 if parser.parse_args().quick else 500
    rng = random.Random(1)
    vocabulary = [f"word{i}" for i in range(5000)]
    with tempfile.TemporaryDirectory(prefix="localstt-library-bench-") as folder:
        path = Path(folder) / "library.sqlite3"
        library = Library(LibrarySettings(path=path))
        made = [transcript(rng, n, vocabulary) for n in range(count)]
        ids: list[int] = []
        keep = timed(lambda: ids.extend(library.add(t, "page") for t in made)) / count
        print(f"transcripts: {count} of 60 segments and 900 words")
        print(f"keep one: {keep:.1f} ms")
        print(f"list: {timed(library.entries, 10):.1f} ms")
        print(f"open one: {timed(lambda: library.get(ids[count // 2]), 10):.1f} ms")
        edit = timed(lambda: editing.edit_cells(library, ids[1], [(3, f"edited {rng.random()}", None)]), 10)
        print(f"edit a segment: {edit:.1f} ms")
        queries = ["word17", "word123 word99", "word4*"]
        search = timed(lambda: [library.search(q) for q in queries]) / len(queries)
        print(f"search {count * 60} segments: {search:.1f} ms per query")
        print(f"file: {path.stat().st_size / 1e6:.1f} MB")
        print(f"delete one (with the vacuum): {timed(lambda: library.delete(ids[0])):.0f} ms")


if __name__ == "__main__":
    main()
