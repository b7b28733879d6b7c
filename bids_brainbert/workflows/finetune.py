"""Group level ``--analysis finetune`` (not part of ``all``: it trains the encoder once per electrode, target,
fold and permutation): supervised fine-tuning (:mod:`bids_brainbert.analyses.finetune`) of the group model (or
``--model``) per electrode, and once more per subject over all its chosen electrodes together (the population
variant), on the event windows of its spectrogram derivative, inside the probes' outer folds.

The rows join ``<task>_desc-decoding_scores.tsv`` / ``_summary.tsv`` as feature ``<label>Finetuned`` (probe
``electrode``, and probe ``population`` for the population variant), with the refitted permutation null of
``--finetune-permutations`` in the chance columns. Rerunning replaces those rows only.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..analyses.finetune import finetune_decode
from ..bids import derivatives as deriv
from ..config import RunConfig
from ..frozen_embeddings import event_window_starts, window_frames
from ..model.checkpoints import load_checkpoint
from ..reports.html import Section, paragraph, table
from . import analyses as group
from .embeddings import find_model, read_events
from .participant import spectrogram_paths_for
from .population import _merge_into_decoding_tables

LOGGER = logging.getLogger("bids_brainbert")


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
        names = group.read_channels_derivative(paths["channels"])["name"].astype(str).tolist()
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
    params = config.finetune_settings().finetune_params(config.embedding_settings(),
                                                        config.decoding_permutation_scheme)
    feature = f"{source.label}Finetuned"
    info = {feature: {"Kind": "finetuned", "ModelLabel": source.label, "ModelSha256": source.sha256,
                      "FineTuning": params.to_dict(), "WindowS": config.decoding_window_s,
                      "Readout": "encoder (top FineTuning.top_layers layers, or all) and a linear head trained per "
                                 "electrode and outer fold (fresh copy of the model each fold), early stopping on "
                                 "the inner-validation AUC; probe population: one encoder over all the subject's "
                                 "fine-tuned electrodes and one head on their pooled states side by side",
                      "PermutationNull": f"{params.n_permutations} permutation(s) ({params.permutation} within each "
                                         "run), every fold's fine-tuning refitted for each; smallest attainable p "
                                         f"{1 / (1 + params.n_permutations):.3g}" if params.n_permutations else
                                         "none (--finetune-permutations 0)"}}
    written: list[Path] = []
    for task, task_recordings in group.by_task(recordings).items():
        tables = {group.events_path(r): e for r in task_recordings if (e := read_events(r)) is not None}
        if not tables:
            continue
        targets = group.decoding_targets(config.decoding_settings(), tables)
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
                # every chosen electrode alone, then (two or more) all of them together
                inputs = [(name, windows[name][mask]) for name in chosen]
                if len(chosen) >= 2:
                    inputs.append((None, np.stack([windows[name][mask] for name in chosen], axis=1)))
                for name, x in inputs:
                    result = finetune_decode(x, y, starts[mask], stops[mask], runs[mask],
                                             lambda: load_checkpoint(source.path)[0], params,
                                             n_folds=config.decoding_folds, seed=config.random_seed)
                    if not result.folds:
                        continue
                    ident = {"subject": subject, "target": target, "positive_class": positive, "feature": feature,
                             "feature_kind": "finetuned", "in_pretraining": "n/a",
                             "probe": "electrode" if name else "population", "electrode": name or "n/a",
                             "region": "n/a"}
                    for fold in result.folds:
                        score_rows.append({**ident, "fold": fold.fold, "cv_scheme": result.scheme,
                                           "n_train": len(fold.train) + len(fold.validation),
                                           "n_test": len(fold.test), "regularization_c": float("nan"),
                                           "auc": round(fold.auc, 6)})
                    summary_rows.append({**ident, "cv_scheme": result.scheme, "n_folds": len(result.folds),
                                         "n_examples": int(mask.sum()), "auc_mean": result.auc_mean,
                                         "auc_sd": result.auc_sd, "chance_auc": result.chance_mean,
                                         "chance_low": result.chance_low, "chance_high": result.chance_high,
                                         "p_value": result.p_value})
                    LOGGER.info("sub-%s %s %s fine-tuned: AUC %.3f (permutation p %.3g)", subject, target,
                                name or f"all {len(chosen)} electrodes", result.auc_mean, result.p_value)
        if summary_rows:
            written += _merge_into_decoding_tables(config, task, score_rows, summary_rows, info)
    return written


def report_section(config: RunConfig, task: str):
    """The group report's section on fine-tuning: AUC, chance band and permutation p per electrode and per
    subject (population variant) beside the frozen probe of the same model; None when it has not run for ``task``."""
    summary = group._read_tsv(group.root_path(config.output_dir, f"task-{task}_desc-decoding_summary.tsv"))
    if summary is None:
        return None
    summary = summary.assign(electrode=summary["electrode"].fillna("n/a"))      # population rows: n/a
    mine = summary[summary["feature_kind"].astype(str) == "finetuned"]
    if mine.empty:
        return None
    features = deriv.read_json(group.root_path(config.output_dir, f"task-{task}_desc-decoding_summary.json")).get("Features", {})
    notes = []
    rows = []
    for feature, own in mine.groupby("feature", sort=False):
        details = features.get(feature, {})
        label = details.get("ModelLabel")
        notes.append(f"{feature}: {details.get('PermutationNull', 'permutation null not recorded')}.")
        frozen = summary[summary["feature"] == label].set_index(["subject", "target", "probe", "electrode"])
        for _, row in own.iterrows():
            key = (row["subject"], row["target"], row["probe"], row["electrode"])
            rows.append({"subject": row["subject"], "target": row["target"], "probe": row["probe"],
                         "electrode": row["electrode"], "feature": feature, "auc_mean": row["auc_mean"],
                         "chance_high": row["chance_high"], "p_value": row["p_value"],
                         f"frozen AUC ({label})": frozen["auc_mean"].get(key, float("nan"))})
    body = paragraph(
        "Supervised fine-tuning of the encoder with a linear head inside the probes' outer folds (a fresh copy of "
        "the model per fold; early stopping on an inner split; no test window is ever trained on). Probe "
        "population: one encoder over all of the subject's fine-tuned electrodes, one head on their states side by "
        "side. Chance: refitted permutation null (labels permuted within runs, every fold's fine-tuning refitted "
        "per permutation). " + " ".join(notes), "note")
    body += table(pd.DataFrame(rows).sort_values(["subject", "target", "probe", "electrode"]))
    return Section(f"Fine-tuning, task {task}", body)      # render() escapes titles, table() cells
