"""Pretraining: windows over memory-mapped spectrogram derivatives, the training loop, resume and DDP."""

from .pretrain import (Lamb, PretrainConfig, StepInfo, TrainingResult, build_optimizer, latest_checkpoint,
                       lr_factor, pretrain)
from .windows import SpectrogramWindows, split_paths, subject_of, zscore_frequencies

__all__ = [
    "Lamb", "PretrainConfig", "SpectrogramWindows", "StepInfo", "TrainingResult", "build_optimizer",
    "latest_checkpoint", "lr_factor", "pretrain", "split_paths", "subject_of", "zscore_frequencies",
]
