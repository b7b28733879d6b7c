"""Cross-validation folds that cannot leak between overlapping windows.

Examples are windows ``[start_s, stop_s)`` of a recording (``run``). When the examples come from several runs,
each fold holds out whole runs (leave-one-run-out, or runs grouped into ``n_folds`` contiguous groups). With a
single run the examples are cut into ``n_folds`` contiguous blocks in time; a training example is kept only if
its window ends at least ``gap_s`` before the test block's first window starts or starts at least ``gap_s``
after its last window ends ("purging"), so no training window shares a sample with a test window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fold:
    """Indices into the example arrays."""

    train: np.ndarray
    test: np.ndarray


def _as_runs(runs, n: int) -> np.ndarray:
    if runs is None:
        return np.zeros(n, dtype=int)
    runs = np.asarray(runs)
    if runs.shape != (n,):
        raise ValueError(f"runs must have one entry per example ({n}), got shape {runs.shape}")
    return np.unique(runs, return_inverse=True)[1]


def purge_overlapping(train: np.ndarray, test: np.ndarray, starts_s: np.ndarray, stops_s: np.ndarray,
                      runs: np.ndarray, gap_s: float = 0.0) -> np.ndarray:
    """Training indices whose window stays ``gap_s`` clear of every test window of the same run."""
    keep = np.ones(len(train), dtype=bool)
    for run in np.unique(runs[test]):
        in_run = test[runs[test] == run]
        span_start, span_stop = starts_s[in_run].min() - gap_s, stops_s[in_run].max() + gap_s
        same = runs[train] == run
        overlaps = (stops_s[train] > span_start) & (starts_s[train] < span_stop)
        keep &= ~(same & overlaps)
    return train[keep]


def leakage_free_folds(starts_s, stops_s, runs=None, n_folds: int = 5, gap_s: float = 0.0
                       ) -> tuple[list[Fold], str]:
    """Folds over examples whose windows span ``[starts_s, stops_s)`` seconds within ``runs``.

    Returns the folds (each with a non-empty training and test set) and the scheme used: ``"run"`` (whole runs
    held out) or ``"block"`` (contiguous time blocks with purging). Examples of different runs never overlap.
    """
    starts_s = np.asarray(starts_s, float)
    stops_s = np.asarray(stops_s, float)
    n = len(starts_s)
    if stops_s.shape != (n,):
        raise ValueError("starts_s and stops_s must have the same length")
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    run_ids = _as_runs(runs, n)
    n_runs = int(run_ids.max()) + 1 if n else 0
    folds: list[Fold] = []
    if n_runs >= 2:
        # contiguous groups of runs (in their sorted order), at most n_folds of them
        groups = np.array_split(np.arange(n_runs), min(n_folds, n_runs))
        for group in groups:
            test = np.flatnonzero(np.isin(run_ids, group))
            train = np.flatnonzero(~np.isin(run_ids, group))
            if len(test) and len(train):
                folds.append(Fold(train, test))
        return folds, "run"
    order = np.argsort(starts_s, kind="stable")
    for block in np.array_split(order, min(n_folds, n)):
        if not len(block):
            continue
        test = np.sort(block)
        rest = np.setdiff1d(np.arange(n), test)
        train = purge_overlapping(rest, test, starts_s, stops_s, run_ids, gap_s)
        if len(train):
            folds.append(Fold(train, test))
    return folds, "block"


def shuffled_folds(n: int, n_folds: int, rng: np.random.Generator) -> list[Fold]:
    """Ordinary shuffled K-fold (leaks when windows overlap); kept only to demonstrate the leak in tests/benchmarks."""
    order = rng.permutation(n)
    return [Fold(np.sort(np.setdiff1d(order, block)), np.sort(block)) for block in np.array_split(order, n_folds)]
