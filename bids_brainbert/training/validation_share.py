"""The validation split bounded by its share of the training windows, not by its share of the files.

Holding out ``round(fraction x files)`` whole recordings can take far more than ``fraction`` of the data when
recordings differ in length (the demo: one file of four, 43 % of the windows). Here units (runs or subjects) are
taken in a seeded random order and added to validation while the share of windows stays within
``fraction x (1 + TOLERANCE)``; when even the smallest unit is larger, the smallest one is used and the caller is
told the share it got.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Sequence

from .windows import SpectrogramWindows, subject_of

TOLERANCE = 0.5           # the held-out share may exceed the requested fraction by half of it


def window_counts(paths: Sequence[Path], window_s: float) -> dict[Path, int]:
    """Training windows (channels x window starts) each derivative file yields."""
    return {Path(p): len(SpectrogramWindows([p], window_s=window_s)) for p in paths}


def split_by_share(paths: Sequence[str | os.PathLike], fraction: float, by: str, seed: int, window_s: float
                   ) -> tuple[list[Path], list[Path], float]:
    """(training files, validation files, validation share of the windows). Deterministic for a seed."""
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
