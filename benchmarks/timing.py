"""Shared by the benchmark scripts: the best wall time of a few calls (the least disturbed by other load)."""

from __future__ import annotations

import time


def best_time(func, repeats: int = 1, warmup: bool = False) -> float:
    """Fastest of ``repeats`` calls of ``func`` in seconds, after one untimed call when ``warmup``."""
    if warmup:
        func()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best
