"""The validation split bounded by its share of the training windows, not by its share of the files.

Holding out ``round(fraction x files)`` whole recordings can take far more than ``fraction`` of the data when
recordings differ in length or are few (the demo: one file of four, 43 % of the windows). Here units (runs or
subjects) are taken in a seeded random order and added to validation while the share of windows stays within
``fraction x (1 + TOLERANCE)``, until it reaches ``fraction``.

When whole units cannot give a share within ``fraction x (1 +- TOLERANCE)`` and the split is by run, the split is
made by windows within the runs instead: the last ``round(fraction x windows)`` windows of every run (a contiguous
block in time, at the end of the recording) go to validation, and the one window before that block is left out of
both sides, so no training window overlaps or touches a validation window (runs with fewer than three windows stay
wholly in training). A split by subject always keeps subjects whole (it measures generalization to unseen
subjects); when no set of subjects fits, the smallest one is used and the caller is told the share it got.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .windows import SpectrogramWindows, subject_of

TOLERANCE = 0.25          # the held-out share may differ from the requested fraction by a quarter of it
WHOLE, WINDOWS = "whole runs or subjects", "windows within runs"


@dataclass
class ValidationSplit:
    """Training and validation files; with ``mode == WINDOWS`` every run is in both, restricted to its spans."""

    train: list[Path]
    val: list[Path]
    share: float                                   # validation windows / (training + validation windows)
    mode: str = WHOLE
    train_spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)   # file -> [first, stop) frames
    val_spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


def window_counts(paths: Sequence[Path], window_s: float) -> dict[Path, int]:
    """Training windows (channels x window starts) each derivative file yields."""
    return {Path(p): len(SpectrogramWindows([p], window_s=window_s)) for p in paths}


def within_tolerance(share: float, fraction: float) -> bool:
    return abs(share - fraction) <= TOLERANCE * fraction + 1e-12


def split_by_share(paths: Sequence[str | os.PathLike], fraction: float, by: str, seed: int, window_s: float
                   ) -> tuple[list[Path], list[Path], float]:
    """(training files, validation files, validation share of the windows), whole units only. Deterministic."""
    files = sorted({Path(p) for p in paths}, key=str)
    units: dict[str, list[Path]] = {}
    for path in files:
        units.setdefault(str(path) if by == "run" else subject_of(path), []).append(path)
    if fraction <= 0 or len(units) < 2:
        return files, [], 0.0
    counts = window_counts(files, window_s)
    weight = {key: sum(counts[p] for p in members) for key, members in units.items()}
    total = sum(weight.values())
    if total == 0:
        return files, [], 0.0
    order = sorted(units)
    random.Random(seed).shuffle(order)
    chosen: list[str] = []
    held = 0
    for key in order:
        if held >= fraction * total or len(chosen) == len(units) - 1:
            break
        if held + weight[key] <= fraction * (1 + TOLERANCE) * total:
            chosen.append(key)
            held += weight[key]
    if not chosen:                       # every unit is larger than the bound: the smallest one
        smallest = min(order, key=lambda k: (weight[k], order.index(k)))
        chosen, held = [smallest], weight[smallest]
    val = [p for key in sorted(units) if key in chosen for p in units[key]]
    train = [p for key in sorted(units) if key not in chosen for p in units[key]]
    return train, val, held / total


def split_windows_within_runs(paths: Sequence[str | os.PathLike], fraction: float, window_s: float
                              ) -> ValidationSplit:
    """Every run's last ``round(fraction x its windows)`` windows to validation, one window of gap before them."""
    files = sorted({Path(p) for p in paths}, key=str)
    train_spans: dict[str, list[tuple[int, int]]] = {}
    val_spans: dict[str, list[tuple[int, int]]] = {}
    n_train = n_val = 0
    for path in files:
        recording = SpectrogramWindows([path], window_s=window_s).recordings[0]
        starts, n = recording.starts, len(recording.starts)         # non-overlapping: one window apart
        k = min(int(round(fraction * n)), n - 2) if n >= 3 else 0
        if k < 1:
            train_spans[str(path)] = [(0, recording.n_frames)]
            n_train += n * recording.n_channels
            continue
        gap = starts[n - k - 1]                       # the window between the two sides, used by neither
        train_spans[str(path)] = [(0, gap)]
        val_spans[str(path)] = [(starts[n - k], recording.n_frames)]
        n_train += (n - k - 1) * recording.n_channels
        n_val += k * recording.n_channels
    train = files
    val = [p for p in files if str(p) in val_spans]
    share = n_val / (n_train + n_val) if n_train + n_val else 0.0
    return ValidationSplit(train, val, share, WINDOWS, train_spans, val_spans)


def validation_split(paths: Sequence[str | os.PathLike], fraction: float, by: str, seed: int, window_s: float
                     ) -> ValidationSplit:
    """Whole units when they give a share within tolerance (or by subject), else windows within runs."""
    train, val, share = split_by_share(paths, fraction, by, seed, window_s)
    if fraction <= 0 or by != "run" or within_tolerance(share, fraction):
        return ValidationSplit(train, val, share)
    within = split_windows_within_runs(paths, fraction, window_s)
    if within.val and abs(within.share - fraction) < abs(share - fraction):
        return within
    return ValidationSplit(train, val, share)
