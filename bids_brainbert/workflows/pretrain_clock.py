"""What a user wants to know before hours of pretraining: how long it will take on this device, and how to make it
shorter. The estimate is the measured time per step (after the first, which carries start-up costs) times the steps
left; checkpoints, validation and the embeddings afterwards come on top."""

from __future__ import annotations

import logging
import os
import time

import torch

from ..params import PretrainSettings
from ..training import StepInfo

LOGGER = logging.getLogger("bids_brainbert")
MEASURED_STEPS = 5          # steps timed after the first before the estimate is logged
SHORTER = "shorter: --train-steps N, --model-size small, a smaller --batch-size, or a GPU"


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def runs_on_cpu(device: str) -> bool:
    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def warn_if_long_on_cpu(settings: PretrainSettings, device: str) -> None:
    """On the CPU with the default number of steps (no --train-steps given), say so before starting."""
    if runs_on_cpu(device) and settings.steps == PretrainSettings.steps and _is_main_process():
        LOGGER.warning("pretraining on the CPU with the default %d steps (no --train-steps given): this takes hours "
                       "for any model size; the estimate follows after a few steps. For a quick run pass "
                       "--train-steps N (e.g. 100); a GPU is tens of times faster", settings.steps)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


class PretrainingClock:
    """``on_step`` callback of :func:`bids_brainbert.training.pretrain`: logs the estimate once, from rank 0."""

    def __init__(self, total_steps: int, device: str) -> None:
        self.total_steps, self.device = total_steps, device
        self._first: tuple[int, float] | None = None
        self.estimate_s: float | None = None

    def __call__(self, info: StepInfo) -> None:
        if info.rank != 0 or self.estimate_s is not None:
            return
        now = time.perf_counter()
        if self._first is None:
            self._first = (info.step, now)
            return
        done = info.step - self._first[0]
        if done < MEASURED_STEPS and info.step < self.total_steps:
            return
        if info.step >= self.total_steps:   # a short run is over before an estimate would help
            self.estimate_s = 0.0
            return
        per_step = (now - self._first[1]) / done
        self.estimate_s = per_step * (self.total_steps - info.step)
        where = "the CPU" if runs_on_cpu(self.device) else self.device
        LOGGER.info("pretraining: %.2f s per step on %s, %d of %d steps left: about %s more (%s)", per_step, where,
                    self.total_steps - info.step, self.total_steps, human_duration(self.estimate_s), SHORTER)
