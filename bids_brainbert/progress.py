"""Progress: a tqdm bar on a terminal; elsewhere (a log file, a SLURM ``.out``) one log line every few percent,
since a bar repainted with carriage returns fills such files with tens of kB per run."""

from __future__ import annotations

import logging
import sys
from typing import Any, Iterable, Iterator

LOGGER = logging.getLogger("bids_brainbert")
PERCENT_STEP = 5   # a line every 5 % (and at the end)


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):   # replaced or closed by a notebook or test runner
        return False


class LoggedProgress:
    """tqdm's ``update`` / ``set_postfix`` / ``close`` as log lines: ``pretrain: 35% (700/2000 steps), loss=...``."""

    def __init__(self, total: int, desc: str, initial: int = 0, unit: str = "it") -> None:
        self.total, self.desc, self.unit, self.n = max(int(total), 0), desc, unit, int(initial)
        self.postfix = ""
        self._next_percent = self._percent() // PERCENT_STEP * PERCENT_STEP + PERCENT_STEP

    def _percent(self) -> int:
        return 100 if self.total == 0 else self.n * 100 // self.total

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._percent() >= self._next_percent or (self.n >= self.total and self._next_percent <= 100):
            self._next_percent = self._percent() // PERCENT_STEP * PERCENT_STEP + PERCENT_STEP
            LOGGER.info("%s: %d%% (%d/%d %s)%s", self.desc, self._percent(), self.n, self.total, self.unit,
                        self.postfix)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = "".join(f", {key}={value}" for key, value in values.items())

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, initial: int = 0, unit: str = "it"):
    """A bar for ``update(n)`` calls: tqdm on a terminal, :class:`LoggedProgress` otherwise."""
    if stderr_is_terminal():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
    return LoggedProgress(total, desc, initial, unit)


def progress(items: Iterable, desc: str, unit: str = "it", total: int | None = None) -> Iterator:
    """Iterate over ``items`` with :func:`progress_bar`."""
    items = list(items) if total is None and not hasattr(items, "__len__") else items
    bar = progress_bar(len(items) if total is None else total, desc, unit=unit)   # type: ignore[arg-type]
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()
