"""Group level ``--analysis population``: the population model (:mod:`bids_brainbert.analyses.population`) over
every embedding model's event embeddings, pretrained across the subjects of a task, read out per decoding target.

Per task and embedding model ``<label>``:

* the frozen event-window embeddings of every subject (the electrodes of the derivative's channels table, their
  x, y, z converted to mm with the coordsystem.json units) pretrain one population model, without labels;
* its checkpoint: ``models/population/task-<task>_desc-<label>/population.safetensors`` + ``population.json``;
* its summary token is read out by the linear probe of the per-electrode analysis (same leakage-free outer folds,
  nested choice of C, refitted permutation null) for every decoding target and subject; the rows join
  ``<task>_desc-decoding_scores.tsv`` / ``_summary.tsv`` as feature ``population<Label>`` (probe ``population``)
  beside the concatenated population probe. Rerunning replaces those rows and leaves all others as they are.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from .. import seeds
from ..analyses.decoding import decode
from ..analyses.population import (PopulationConfig, SubjectWindows, check_coordinates,
                                   pretrain_population, save_population, summary_tokens)
from ..analyses.regions import millimetres
from ..bids import derivatives as deriv
from ..config import RunConfig
from ..io.loading import find_electrodes_file
from ..reports.html import Section, paragraph, table
from . import analyses as group
from ..bids.names import MODELS_DIR, group_table, population_model_dir

LOGGER = logging.getLogger("bids_brainbert")

POPULATION_DIR = "population"
FEATURE_PREFIX = "population"
# small: the model sees tens of electrodes and a few hundred windows per subject; ~0.02 s a step on one core
MODEL_SIZE = {"d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128, "dropout": 0.1}


def feature_name(label: str) -> str:
    return FEATURE_PREFIX + label[:1].upper() + label[1:]


def coordinates_mm(channels: pd.DataFrame, names: list[str], recording) -> np.ndarray:
    """(n, 3) x, y, z in mm of each channel (the derivative's channels table, at the centre of its source
    contacts); NaN rows where unknown (no coordinates, or units that are not m/cm/mm)."""
    table = channels.set_index(channels["name"].astype(str))
    if not {"x", "y", "z"} <= set(table.columns):
        return np.full((len(names), 3), np.nan)
    xyz = np.stack([pd.to_numeric(table.reindex(names)[c], errors="coerce").to_numpy(float) for c in "xyz"], axis=1)
    electrodes_file = find_electrodes_file(recording)
    coordsystem = (electrodes_file.with_name(electrodes_file.name.replace("_electrodes.tsv", "_coordsystem.json"))
                   if electrodes_file is not None else None)
    units = deriv.read_json(coordsystem).get("iEEGCoordinateUnits") if coordsystem and coordsystem.exists() else None
    try:
        return millimetres(xyz, units)
    except ValueError as exc:
        LOGGER.warning("%s: %s; the population model treats its electrodes as without coordinates",
                       coordsystem or recording.relative_path, exc)
        return np.full((len(names), 3), np.nan)


def run_population(config: RunConfig, recordings) -> list[Path]:
    """Pretrain, save and read out the population model of every embedding model and task (see module notes)."""
    params = config.decoding_settings().probe_params()
    written: list[Path] = []
    for task, task_recordings in group.by_task(recordings).items():
        tables = {group.events_path(r): e for r in task_recordings if (e := group.read_events(r)) is not None}
        if not tables:
            LOGGER.warning("task %s: no events.tsv in any selected recording, no population model", task)
            continue
        targets = group.decoding_targets(config.decoding_settings(), tables)
        subjects = defaultdict(list)
        for recording in task_recordings:
            subjects[recording.subject].append(recording)
        gathered = {s: (group.gather_subject(config, s, recs, {"embeddings"}), recs[0])
                    for s, recs in sorted(subjects.items())}
        labels = sorted({label for examples, _ in gathered.values() for label in examples.features})
        score_rows, summary_rows, info = [], [], {}
        for label in labels:
            windows, examples_of = [], {}
            for subject, (examples, first) in gathered.items():
                features = examples.features.get(label)
                names = features.electrodes() if features is not None else []
                if len(names) < 2:
                    continue
                x = np.stack([features.electrode(n) for n in names], axis=1).astype(np.float32)
                data = SubjectWindows(subject, x, coordinates_mm(examples.channel_tables[label], names, first), names)
                check_coordinates(data)
                windows.append(data)
                examples_of[subject] = (examples, data)
            if not windows:
                LOGGER.warning("task %s: no subject with two electrodes of %s embeddings: no population model",
                               task, label)
                continue
            model_config = PopulationConfig(d_in=windows[0].x.shape[2], **MODEL_SIZE)
            pretraining = config.population_settings().pretrain_params()
            model, summary = pretrain_population(windows, model_config, pretraining, seed=config.random_seed)
            directory = deriv.ensure_inside(config.output_dir, config.output_dir / MODELS_DIR / POPULATION_DIR
                                            / population_model_dir(task, label))
            save_population(directory, model, {**summary, "Pretraining": pretraining.to_dict(),
                                               "EmbeddingModel": label, "Task": task,
                                               "Inputs": "event-window embeddings of every subject (labels unused)"})
            written += [directory / "population.safetensors", directory / "population.json"]
            feature = feature_name(label)
            trained = group.model_training_subjects(config.output_dir, label)
            info[feature] = {"Kind": "embedding", "ModelLabel": label, "PopulationModel": model_config.to_dict(),
                             "Pretraining": {**pretraining.to_dict(), **summary},
                             "Checkpoint": str(directory.relative_to(config.output_dir)),
                             "Readout": "summary token of the frozen population model, then the linear probe of "
                                        "the per-electrode analysis (same folds, nested C, refitted null)"}
            rng = np.random.default_rng([config.random_seed, seeds.POPULATION])
            for subject, (examples, data) in examples_of.items():
                tokens = summary_tokens(model, data)
                score_rows, summary_rows = _read_out(subject, examples, tokens, targets, feature, trained, params,
                                                     rng, score_rows, summary_rows)
        if summary_rows:
            written += _merge_into_decoding_tables(config, task, score_rows, summary_rows, info)
    return written


def _read_out(subject, examples, tokens, targets, feature, trained, params, rng, score_rows, summary_rows):
    values = np.asarray(examples.values)
    starts, stops, runs = (np.asarray(v) for v in (examples.starts, examples.stops, examples.runs))
    in_pretraining = "n/a" if trained is None else trained.get(subject, "held out")
    for target, positive, negative in targets:
        mask = np.ones(len(values), dtype=bool) if negative is None else np.isin(values, [positive, negative])
        y = (values[mask] == positive).astype(int)
        if len(np.unique(y)) < 2:
            continue
        result = decode(tokens[mask], y, starts[mask], stops[mask], runs[mask], params, rng)
        if not result.folds:
            continue
        ident = {"subject": subject, "target": target, "positive_class": positive, "feature": feature,
                 "feature_kind": "embedding",
                 "in_pretraining": in_pretraining, "probe": "population", "electrode": "n/a", "region": "n/a"}
        for fold in result.folds:
            score_rows.append({**ident, "fold": fold.fold, "cv_scheme": result.scheme, "n_train": fold.n_train,
                               "n_test": fold.n_test, "regularization_c": fold.c, "auc": round(fold.auc, 6)})
        summary_rows.append({**ident, "cv_scheme": result.scheme, "n_folds": len(result.folds),
                             "n_examples": int(mask.sum()), "auc_mean": result.auc_mean, "auc_sd": result.auc_sd,
                             "chance_auc": result.chance_mean, "chance_low": result.chance_low,
                             "chance_high": result.chance_high, "p_value": result.p_value})
    return score_rows, summary_rows


def _merge_into_decoding_tables(config: RunConfig, task: str, score_rows, summary_rows, info) -> list[Path]:
    """Replace this analysis's rows of the decoding tables (written by ``--analysis decoding`` or not at all);
    also used by ``--analysis finetune``."""
    written = []
    for name, rows, columns in (("scores", score_rows, group.SCORE_COLUMNS),
                                ("summary", summary_rows, group.SUMMARY_COLUMNS)):
        path = group.root_path(config.output_dir, group_table(task, "decoding", name))
        new = pd.DataFrame(rows, columns=list(columns))
        old = group._read_tsv(path)
        if old is not None:
            old = old[~old["feature"].astype(str).isin(set(new["feature"]))]
            new = pd.concat([old, new], ignore_index=True)[list(columns)]
        sidecar = deriv.read_json(path.with_suffix(".json")) if path.with_suffix(".json").exists() else {
            **group.provenance(config.random_seed), "Task": task, "DecodingColumn": config.decoding_column,
            "CrossValidation": config.decoding_settings().probe_params().to_dict(),
            "Description": f"Cross-validated ROC-AUC ({name}) of the population model or fine-tuning",
            **{c: {"Description": d} for c, d in columns.items()}}
        sidecar.setdefault("Features", {}).update(info)
        written.append(group.write_table(config.output_dir, path.name, new, sidecar))
        if name == "summary":      # the verdict reads the summary: rewritten with the rows that joined it
            base = {k: v for k, v in sidecar.items() if k not in columns and k != "Description"}
            written += group.write_verdict_table(config, task, new, base)
    return written


def report_section(config: RunConfig, task: str):
    """The group report's section on the population model (None when it has not run for ``task``)."""
    summary = group._read_tsv(group.root_path(config.output_dir, group_table(task, "decoding", "summary")))
    if summary is None:
        return None
    mine = summary[summary["feature"].astype(str).str.startswith(FEATURE_PREFIX)]
    if mine.empty:
        return None
    sidecar = deriv.read_json(group.root_path(config.output_dir, group_table(task, "decoding", "summary", ".json")))
    body = paragraph(
        "Population model: each window's frozen per-electrode embeddings, placed by their x, y, z (Fourier "
        "features, mm; a learned 'unknown position' for electrodes without coordinates), read out through a "
        "learned summary token. Pretrained without labels across subjects (same-window discrimination of two "
        "halves of the electrode set, replaced-electrode detection); the summary token is decoded by the linear "
        "probe of the per-electrode analysis, with the same folds and refitted permutation null.", "note")
    rows = []
    for feature in sorted(set(mine["feature"])):
        details = sidecar.get("Features", {}).get(feature, {})
        pre = details.get("Pretraining", {})
        rows.append({"feature": feature, "embedding model": details.get("ModelLabel", "?"),
                     "subjects": ", ".join(pre.get("Subjects", [])), "windows": pre.get("Windows"),
                     "steps": pre.get("Steps"), "same-window accuracy": pre.get("FinalSameWindowAccuracy"),
                     "replaced-electrode accuracy": pre.get("FinalReplacedAccuracy"),
                     "checkpoint": details.get("Checkpoint")})
    body += "<h3>Pretraining</h3>" + table(pd.DataFrame(rows))
    # beside it, the concatenated population probe of the same embedding model
    population = summary[summary["probe"] == "population"]
    labels = {f: sidecar.get("Features", {}).get(f, {}).get("ModelLabel") for f in set(mine["feature"])}
    shown = population[population["feature"].isin(set(labels) | set(labels.values()))]
    body += "<h3>Readout AUC beside the concatenated population probe</h3>" + table(
        shown[["subject", "target", "feature", "auc_mean", "auc_sd", "chance_high", "p_value"]]
        .sort_values(["subject", "target", "feature"]))
    return Section(f"Population model, task {task}", body)      # render() escapes titles, table() cells
