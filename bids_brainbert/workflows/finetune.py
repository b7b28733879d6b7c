"""Group level ``--analysis finetune`` (not part of ``all``: it trains the encoder once per electrode, target and
fold): supervised fine-tuning (:mod:`bids_brainbert.analyses.finetune`) of the group model (or ``--model``) per
electrode, on the event windows of its spectrogram derivative, inside the probes' outer folds.

The rows join ``<task>_desc-decoding_scores.tsv`` / ``_summary.tsv`` as feature ``<label>Finetuned`` (probe
``electrode``); their chance columns are n/a (no permutation null: see the analysis module). Rerunning replaces
those rows only.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..analyses.finetune import FinetuneParams, finetune_decode
from ..bids import derivatives as deriv
from ..config import RunConfig
from ..embedding import event_window_starts, window_frames
from ..model.checkpoints import load_checkpoint
from . import analyses as group
from .embeddings import find_model, read_events
from .participant import spectrogram_paths_for
from .population import _merge_into_decoding_tables

LOGGER = logging.getLogger("bids_brainbert")


def finetune_params(config: RunConfig) -> FinetuneParams:
    return FinetuneParams(top_layers=config.finetune_layers or None, max_epochs=config.finetune_epochs,
                          layer=config.embedding_layer, pooling=config.embedding_pooling,
                          middle_frames=config.embedding_middle_frames)


def subject_windows(config: RunConfig, recordings) -> tuple[dict[str, np.ndarray], list, list, list, list]:
    """Event windows (spectrogram frames) per electrode over the subject's recordings, with their values, start and
    stop times (s) and recording index: ({name: (n, frames, freqs)}, values, starts, stops, runs)."""
    per_electrode: dict[str, list[np.ndarray]] = defaultdict(list)
    values, starts, stops, runs, names_per_run = [], [], [], [], []
    window = config.decoding_window_s
    for run_index, recording in enumerate(recordings):
        events = read_events(recording)
        paths = spectrogram_paths_for(config, recording)
        if events is None or not deriv.is_complete(paths):
            continue
        sidecar = deriv.read_json(paths["sidecar"])
        spectrogram = np.load(paths["data"], mmap_mode="r")
        rate, start = float(sidecar["SamplingFrequency"]), float(sidecar.get("StartTime", 0.0))
        onsets = pd.to_numeric(events["onset"], errors="coerce").to_numpy(dtype=float)
        length = window_frames(rate, window)
        first, valid = event_window_starts(np.nan_to_num(onsets, nan=-1e9), spectrogram.shape[1], rate, length, start)
        keep = np.flatnonzero(valid & events[config.decoding_column].notna().to_numpy())
        if not len(keep):
            continue
        names = group.read_channels(paths["channels"])["name"].astype(str).tolist()
        names_per_run.append(names)
        for row, name in enumerate(names):
            rows = np.asarray(spectrogram[row])
            per_electrode[name].append(np.stack([rows[f:f + length] for f in first[keep]]))
        values += [str(v) for v in events[config.decoding_column].to_numpy()[keep]]
        starts += list(onsets[keep] - window / 2)
        stops += list(onsets[keep] + window / 2)
        runs += [run_index] * len(keep)
    common = [n for n in (names_per_run[0] if names_per_run else []) if all(n in r for r in names_per_run)]
    return ({n: np.concatenate(per_electrode[n]) for n in common}, values, starts, stops, runs)


def run_finetune(config: RunConfig, recordings) -> list[Path]:
    source = find_model(config)
    if source is None:
        LOGGER.warning("no model to fine-tune: pretrain one (--analysis pretrain) or give --model")
        return []
    params = finetune_params(config)
    feature = f"{source.label}Finetuned"
    info = {feature: {"Kind": "finetuned", "ModelLabel": source.label, "ModelSha256": source.sha256,
                      "FineTuning": params.to_dict(), "WindowS": config.decoding_window_s,
                      "Readout": "encoder (top FineTuning.top_layers layers, or all) and a linear head trained per "
                                 "electrode and outer fold (fresh copy of the model each fold), early stopping on "
                                 "the inner-validation AUC; no permutation null"}}
    written: list[Path] = []
    for task, task_recordings in group.by_task(recordings).items():
        tables = {group.events_path(r): e for r in task_recordings if (e := read_events(r)) is not None}
        if not tables:
            continue
        targets = group.decoding_targets(config, tables)
        subjects = defaultdict(list)
        for recording in task_recordings:
            subjects[recording.subject].append(recording)
        score_rows, summary_rows = [], []
        for subject, subject_recordings in sorted(subjects.items()):
            windows, values, starts, stops, runs = subject_windows(config, subject_recordings)
            values, starts, stops, runs = (np.asarray(v) for v in (values, starts, stops, runs))
            chosen = [n for n in windows if not config.finetune_electrodes or n in config.finetune_electrodes]
            for target, positive, negative in targets:
                mask = np.ones(len(values), dtype=bool) if negative is None else np.isin(values, [positive, negative])
                y = (values[mask] == positive).astype(int)
                if len(np.unique(y)) < 2:
                    continue
                for name in chosen:
                    result = finetune_decode(windows[name][mask], y, starts[mask], stops[mask], runs[mask],
                                             lambda: load_checkpoint(source.path)[0], params,
                                             n_folds=config.decoding_folds, seed=config.random_seed)
                    if not result.folds:
                        continue
                    ident = {"subject": subject, "target": target, "positive_class": positive, "feature": feature,
                             "feature_kind": "finetuned",
                             "in_pretraining": "n/a", "probe": "electrode", "electrode": name, "region": "n/a"}
                    for fold in result.folds:
                        score_rows.append({**ident, "fold": fold.fold, "cv_scheme": result.scheme,
                                           "n_train": len(fold.train) + len(fold.validation),
                                           "n_test": len(fold.test), "regularization_c": float("nan"),
                                           "auc": round(fold.auc, 6)})
                    summary_rows.append({**ident, "cv_scheme": result.scheme, "n_folds": len(result.folds),
                                         "n_examples": int(mask.sum()), "auc_mean": result.auc_mean,
                                         "auc_sd": result.auc_sd, "chance_auc": float("nan"),
                                         "chance_low": float("nan"), "chance_high": float("nan"),
                                         "p_value": float("nan")})
                    LOGGER.info("sub-%s %s %s fine-tuned: AUC %.3f", subject, target, name, result.auc_mean)
        if summary_rows:
            written += _merge_into_decoding_tables(config, task, score_rows, summary_rows, info)
    return written
