"""Group level: pretrain BrainBERT on the selected subjects' spectrogram derivatives, then embed every recording.

Runs the same under ``torchrun --nproc-per-node N`` (DistributedDataParallel; rank 0 writes the model and the
embeddings). The model goes to ``OUTPUT_DIR/models/desc-<label>/checkpoints/step-*/`` and is resumed from there
when the command is run again after an interruption.
"""

from __future__ import annotations

import logging

from ..bids import derivatives as deriv
from ..bids.discovery import Recording
from ..config import RunConfig
from ..errors import RecordingError, UsageError
from ..model import weights_sha256
from ..training import pretrain
from ..training.validation_share import WINDOWS, validation_split, within_tolerance
from .embeddings import ModelSource, group_model_root, write_embeddings
from .outcomes import RecordingOutcome, per_recording
from .participant import spectrogram_paths_for
from .pretrain_clock import PretrainingClock, warn_if_long_on_cpu
from .steps import runs

LOGGER = logging.getLogger("bids_brainbert")


def training_files(config: RunConfig, recordings: list[Recording]):
    """Spectrogram files of the recordings used for pretraining (holdout subjects excluded), all complete."""
    paths = {r: spectrogram_paths_for(config, r) for r in recordings}
    missing = [r for r, p in paths.items() if not deriv.is_complete(p)]
    if missing:
        raise RecordingError(f"{paths[missing[0]]['data']}: spectrogram derivative missing or incomplete for "
                             f"{len(missing)} recording(s); run the participant level first")
    holdout = set(config.holdout_participant_label)
    unknown = holdout - {r.subject for r in recordings}
    if unknown:
        raise UsageError(f"--holdout-participant-label: {', '.join(sorted(unknown))} not among the selected subjects")
    pool = [p["data"] for r, p in paths.items() if r.subject not in holdout]
    if not pool:
        raise UsageError("--holdout-participant-label leaves no subject to pretrain on")
    return paths, pool


def run_group_level(config: RunConfig, recordings: list[Recording]) -> list[RecordingOutcome]:
    """Pretrain and embed (``--analysis all|pretrain``), then the analyses and reports (``all`` or one of them)."""
    outcomes: list[RecordingOutcome] = []
    if runs(config.analysis, "pretrain"):
        outcomes = pretrain_and_embed(config, recordings)
        if outcomes is None:          # not the main process under torchrun
            return []
    if config.analysis != "pretrain" or outcomes:
        from .analyses import run_group_analyses   # imports the participant level, which imports this module

        # after pretraining the analyses see the new embeddings; alone they use the derivatives already there
        run_group_analyses(config, recordings, "reports" if config.analysis == "pretrain" else config.analysis)
    return outcomes


def pretrain_and_embed(config: RunConfig, recordings: list[Recording]) -> list[RecordingOutcome] | None:
    paths, pool = training_files(config, recordings)
    split = validation_split(pool, config.validation_fraction, config.validation_split, config.random_seed,
                             config.train_window_s)
    train, val, share = split.train, split.val, split.share
    if config.validation_fraction > 0 and not within_tolerance(share, config.validation_fraction):
        LOGGER.warning("validation holds %.0f%% of the training windows (--validation-fraction %g): no split by "
                       "whole %s (or by windows within runs) comes closer", 100 * share, config.validation_fraction,
                       config.validation_split)
    LOGGER.info("pretraining a %s model on %d recording(s), validating on %d (%.1f%% of the windows, split by %s), "
                "%d steps", config.model_size, len(train), len(val), 100 * share, split.mode, config.train_steps)
    settings = config.pretrain_settings()
    warn_if_long_on_cpu(settings, config.device)
    result = pretrain(train, val, group_model_root(config), settings.pretrain_config(config.random_seed, config.device, config.precision), init_from=config.init_model,
                      resume=True, progress=True, on_step=PretrainingClock(config.train_steps, config.device),
                      spans=(split.train_spans, split.val_spans) if split.mode == WINDOWS else None)
    if result.rank != 0:
        return None
    LOGGER.info("model written to %s (final training loss %.4f)", result.checkpoint_dir,
                result.train_losses[-1] if result.train_losses else float("nan"))
    source = ModelSource(path=result.checkpoint_dir, label=config.model_label,
                         sha256=weights_sha256(result.checkpoint_dir / "model.safetensors"), published=False)
    def embed(recording: Recording) -> RecordingOutcome:
        written = write_embeddings(recording, paths[recording]["data"], config, source)
        return RecordingOutcome(recording.relative_path, "written", "", [str(p) for p in written])

    return [per_recording(recording, config.output_dir, config.work_dir, lambda: embed(recording))
            for recording in recordings]
