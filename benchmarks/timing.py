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


def best_times_interleaved(funcs, repeats: int = 1) -> list[float]:
    """Fastest call of each of ``funcs``, called in turn ``repeats`` times: a burst of load from elsewhere then
    hits all of them alike, so their ratio is steadier than from separate best-of runs."""
    best = [float("inf")] * len(funcs)
    for _ in range(repeats):
        for index, func in enumerate(funcs):
            start = time.perf_counter()
            func()
            best[index] = min(best[index], time.perf_counter() - start)
    return best
