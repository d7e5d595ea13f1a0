"""The status panel: each model's pinned commit, its size on disk, and where its load is."""

from __future__ import annotations

from localstt.manifest import human_size
from localstt.store import ModelStatus, ModelStore


def load_headline(row: ModelStatus) -> str:
    """One line on the model's load, for the status panel ("" when nothing happened to it yet)."""
    if row.phase == "ready":
        return f"{row.key}: ready on {row.device} ({row.dtype})"
    if row.phase == "loading":
        return f"loading {row.key}… {row.stage} ({row.seconds:.0f} s)"
    if row.phase == "failed":
        return f"{row.key} could not be loaded: {row.error}"
    return ""


def status_markdown(store: ModelStore, live_sessions: int = 0, library: str = "") -> str:
    """Each model's row, a headline for each load under way or done, the live sessions open, and the
    `library` line (where transcripts are kept, or why they are not)."""
    rows = store.status()
    lines = []
    for headline in (line for row in rows if (line := load_headline(row))):
        lines += [f"**{headline}**", ""]  # a paragraph each
    if live_sessions:
        lines += [f"**live sessions: {live_sessions}**", ""]
    lines += ["| model | repo @ pinned commit | on disk | state |", "|---|---|---|---|"]
    for row in rows:
        commit = row.revision[:12] or "not pinned yet"
        if row.loaded:
            state = f"loaded on {row.device} ({row.dtype})"
        elif row.phase == "loading":
            state = f"loading: {row.stage}"
        else:
            state = "exported, not loaded" if row.exported else row.message
        size = human_size(row.size_on_disk) if row.exported else "-"
        lines.append(f"| {row.key} | {row.repo} @ {commit} | {size} | {state} |")
    if library:
        lines += ["", library]
    return "\n".join(lines)
