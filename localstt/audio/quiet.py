"""Long audio cut into windows at its quietest points, so that no word is cut in two."""

from __future__ import annotations

import numpy as np


def split_at_quiet_points(
    samples: np.ndarray, sample_rate: int, max_window_s: float, search_s: float = 5.0
) -> list[tuple[int, int]]:
    """Cut ``samples`` into contiguous (start, end) windows of at most ``max_window_s`` seconds.

    Each cut is placed in the quietest 50 ms (RMS) of the last ``search_s`` seconds of its window
    (never in the first half), in the middle of the quiet run, so words are not cut in two. The
    windows cover every sample exactly once: the first starts at 0, each starts where the
    previous ends, the last ends at ``len(samples)``.
    """
    if samples.ndim != 1:
        raise ValueError(f"samples must be one-dimensional (mono), not shape {samples.shape}")
    max_len = int(max_window_s * sample_rate)
    if max_len < 1:
        raise ValueError(f"max_window_s={max_window_s} is shorter than one sample")
    total = len(samples)
    frame = max(1, round(0.05 * sample_rate))
    hop = max(1, frame // 4)
    search_len = max(frame, int(search_s * sample_rate))
    windows: list[tuple[int, int]] = []
    start = 0
    while total - start > max_len:
        limit = start + max_len
        low = max(limit - search_len, start + max_len // 2)
        cut = _quietest_cut(samples[low:limit], frame, hop)
        cut = limit if cut is None else low + cut
        windows.append((start, cut))
        start = cut
    if total > start:
        windows.append((start, total))
    return windows


def _quietest_cut(region: np.ndarray, frame: int, hop: int) -> int | None:
    """Offset in ``region`` of the middle of its quietest run of frames (None: region < frame)."""
    if len(region) < frame:
        return None
    power = np.concatenate(([0.0], np.cumsum(np.square(region, dtype=np.float64))))
    starts = np.arange(0, len(region) - frame + 1, hop)
    energy = (power[starts + frame] - power[starts]) / frame
    quiet = energy <= energy.min() * 2.0 + 1e-12  # within 3 dB of the quietest frame
    best_from, best_len, run_from = 0, 0, -1
    for index, is_quiet in enumerate([*quiet.tolist(), False]):
        if is_quiet and run_from < 0:
            run_from = index
        elif not is_quiet and run_from >= 0:
            if index - run_from >= best_len:  # ties go to the later run: longer windows
                best_from, best_len = run_from, index - run_from
            run_from = -1
    first, last = starts[best_from], starts[best_from + best_len - 1] + frame
    return max(1, int((first + last) // 2))
