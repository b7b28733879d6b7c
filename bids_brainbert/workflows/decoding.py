"""Group level ``--analysis decoding``: every subject's events decoded from the baselines (voltage, superlet, STFT,
Laplacian) and the embeddings, into ``task-<task>_desc-decoding_*`` tables and figures; the arithmetic lives in
:mod:`bids_brainbert.analyses.decoding`."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..analyses.decoding import DecodingParams, data_efficiency, data_efficiency_sizes, decode
from ..analyses.features import (FeatureSet, event_windows, spectrogram_features, spectrogram_features_at_offsets,
                                 voltage_features)
from ..analyses.regions import Atlas, assign_regions, region_column
from ..analyses.verdict import VERDICT_COLUMNS, verdict
from .. import seeds
from ..bids import derivatives as deriv
from ..bids import names as naming
from ..bids.discovery import Recording
from ..config import RunConfig, replace
from ..errors import RecordingError, UsageError
from ..io.loading import find_electrodes_file, load_recording
from ..params import DECODING_FEATURES
from ..transforms.spectrogram import spectrogram_front_end
from .embeddings import read_events
from .participant import preprocess, spectrogram_paths_for
from .group_tables import (by_task, decoding_targets, embedding_event_files, events_path, match_onsets,
                           model_training_subjects, provenance, read_channels_derivative, root_path, write_table)

LOGGER = logging.getLogger("bids_brainbert")

BASELINES = ("voltage", "superlet", "stft", "laplacian")
FEATURE_CHOICES = DECODING_FEATURES   # the baselines, the model's embeddings and its random-weights control
# readout offsets (s after the onset) at which the best electrodes' spectrogram baseline is re-scored for the report
READOUT_OFFSETS_S = (-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
OFFSET_CURVE_ELECTRODES = 3

SCORE_COLUMNS = {
    "subject": "Subject label (without 'sub-')",
    "target": "Decoded contrast: '<a>Vs<b>' (value a = positive class against b) or '<a>VsRest' (one against all "
              "other values) of the events.tsv column given in the sidecar",
    "positive_class": "Value of the decoded column that is the positive class (AUC > 0.5: its events score higher)",
    "feature": "Feature: voltage (mean voltage in 100 ms bins of the unreferenced window), superlet / stft "
               "(log10 magnitude of the unreferenced signal averaged over the middle frames), laplacian<Kind> (the "
               "same on the Laplacian-referenced signal), an embedding model label, or <label>Random (the same "
               "architecture with untrained random weights)",
    "feature_kind": "baseline, embedding or random-weights",
    "probe": "electrode (one probe per electrode) or population (all electrodes' features side by side)",
    "electrode": "Electrode (row name of the derivative's channels table); n/a for the population probe",
    "region": "Brain region of the electrode (see the dimensionality sidecar for the source); n/a for population",
    "fold": "Outer cross-validation fold (0-based)",
    "cv_scheme": "run: whole runs held out; block: contiguous time blocks, training windows overlapping the test "
                 "block removed",
    "n_train": "Training examples in this fold (after removing windows overlapping the test block)",
    "n_test": "Test examples in this fold",
    "regularization_c": "Inverse L2 strength C chosen by the inner (nested) cross-validation of this fold",
    "auc": "ROC-AUC of the probe's held-out scores",
    "in_pretraining": "Embeddings only: what the model's pretraining did with this subject's recordings: trained "
                      "(at least one recording in the training set), validation only (all in the validation "
                      "split: never a gradient step, but seen for model selection) or held out (unseen: "
                      "generalization); n/a for baselines, random weights or models without a training record",
}
SUMMARY_COLUMNS = {
    **{k: v for k, v in SCORE_COLUMNS.items() if k not in ("fold", "n_train", "n_test", "regularization_c", "auc")},
    "n_folds": "Folds scored",
    "n_examples": "Examples (events) used",
    "auc_mean": "Mean ROC-AUC over folds",
    "auc_sd": "Standard deviation of ROC-AUC over folds",
    "chance_auc": "Mean of the permutation null of the fold-mean AUC",
    "chance_low": "2.5th percentile of the permutation null",
    "chance_high": "97.5th percentile of the permutation null",
    "p_value": "Permutation p-value of the fold-mean AUC: (1 + #null >= observed) / (1 + permutations)",
}


@dataclass
class SubjectExamples:
    """Everything decoding needs for one subject and task."""

    subject: str
    values: list = field(default_factory=list)          # target-column value per example
    starts: list = field(default_factory=list)          # window start (s) within its recording
    stops: list = field(default_factory=list)
    runs: list = field(default_factory=list)            # recording index
    features: dict[str, FeatureSet] = field(default_factory=dict)
    channel_tables: dict[str, pd.DataFrame] = field(default_factory=dict)   # feature -> channels of 1st recording
    feature_info: dict[str, dict] = field(default_factory=dict)
    # one spectrogram baseline read out at READOUT_OFFSETS_S (index into it -> features)
    offset_features: dict[int, FeatureSet] = field(default_factory=dict)
    offset_feature: str | None = None                   # the baseline those are of


# ------------------------------------------------------------------------------------------------ decoding inputs

def readout_offsets(window_s: float, middle_frames: int, frame_rate_hz: float) -> tuple[float, ...]:
    """The offsets of READOUT_OFFSETS_S whose readout (``middle_frames``) stays inside the decoding window."""
    half = window_s / 2 - middle_frames / frame_rate_hz / 2
    return tuple(o for o in READOUT_OFFSETS_S if abs(o) <= half + 1e-9)


def baseline_blocks(config: RunConfig, recording: Recording, loaded, onsets: np.ndarray, wanted: set[str],
                    info: dict[str, dict], offset_blocks: dict | None = None):
    """Yield (feature name, (n_channels, n_events, n_features) array, channel names, channel table) for the
    baselines in ``wanted``, each event window centred on ``onsets`` (seconds), the spectrogram readout centred on
    ``onsets + --decoding-offset-s``. ``offset_blocks`` (an empty dict) receives, for the first spectrogram
    baseline computed (unreferenced before Laplacian), its readout at each of :func:`readout_offsets`
    ({feature: {index into READOUT_OFFSETS_S: (array, channel names)}}) for the report's offset curve."""
    window = config.decoding_window_s
    for scheme, names in (("none", ("voltage", "superlet", "stft")), ("laplacian", ("laplacian",))):
        if not wanted & set(names):
            continue
        try:
            signal, sfreq, channels, _ = preprocess(loaded, replace(config.preprocessing_params(), reference=scheme),
                                                    recording)
        except RecordingError as exc:          # e.g. no shaft with neighbours for the Laplacian
            LOGGER.warning("%s", exc)
            continue
        ch_names = channels["name"].astype(str).tolist()
        for name in names:
            if name not in wanted:
                continue
            if name == "voltage":
                info.setdefault("voltage", {"Kind": "baseline", "Reference": "none",
                                            "Readout": "mean voltage (V) in consecutive 100 ms bins of the window"})
                yield "voltage", voltage_features(signal, sfreq, onsets - window / 2, window), ch_names, channels
                continue
            kind = config.spectrogram if name == "laplacian" else name
            front_end = spectrogram_front_end(replace(config.spectrogram_params(), kind=kind), sfreq,
                                              str(recording.path))
            feature = f"laplacian{kind.capitalize()}" if name == "laplacian" else kind
            info.setdefault(feature, {
                "Kind": "baseline", "Reference": scheme, "Transform": {"Kind": kind, **front_end.params},
                "ReadoutOffsetS": config.decoding_offset_s,
                "Readout": f"log10 magnitude averaged over the {config.embedding_middle_frames} frames centred "
                           f"{config.decoding_offset_s:g} s after the onset, in the window centred on the onset; "
                           "only the union of the event windows is transformed"})
            if offset_blocks is not None and not offset_blocks:    # the first spectrogram baseline computed
                offsets = readout_offsets(window, config.embedding_middle_frames, front_end.frame_rate_hz)
                grid = spectrogram_features_at_offsets(signal, front_end, onsets, window,
                                                       config.embedding_middle_frames,
                                                       offsets + (config.decoding_offset_s,),
                                                       config.channel_batch_size)
                offset_blocks[feature] = {READOUT_OFFSETS_S.index(o): (grid[k], ch_names)
                                          for k, o in enumerate(offsets)}
                yield feature, grid[-1], ch_names, channels
                continue
            try:
                block = spectrogram_features(signal, front_end, onsets, window, config.embedding_middle_frames,
                                             config.channel_batch_size, config.decoding_offset_s)
            except ValueError as exc:      # the readout would leave the window
                raise UsageError(f"--decoding-offset-s / --embedding-middle-frames: {exc}") from None
            yield feature, block, ch_names, channels


def gather_subject(config: RunConfig, subject: str, recordings: list[Recording], wanted_features: set[str]
                   ) -> SubjectExamples:
    """Event windows and their features for every recording of one subject (one task)."""
    found = SubjectExamples(subject)
    window = config.decoding_window_s
    for run_index, recording in enumerate(recordings):
        events = read_events(recording)
        if events is None:
            LOGGER.info("%s: no events.tsv, not decoded", recording.relative_path)
            continue
        values = events[config.decoding_column]
        onsets = pd.to_numeric(events["onset"], errors="coerce").to_numpy(dtype=float)
        keep = values.notna().to_numpy() & np.isfinite(onsets)
        blocks: dict[str, tuple[np.ndarray, list[str], np.ndarray | None, pd.DataFrame]] = {}
        if wanted_features & {"embeddings", "random"}:
            data_path = spectrogram_paths_for(config, recording)["data"]
            for label, files in embedding_event_files(data_path).items():
                sidecar = deriv.read_json(files["sidecar"])
                kind = "random-weights" if sidecar["Model"].get("Format") == "random-weights" else "embedding"
                if ("random" if kind == "random-weights" else "embeddings") not in wanted_features:
                    continue
                offset = float(sidecar.get("ReadoutOffsetS", 0.0))
                if abs(offset - config.decoding_offset_s) > 1e-6:
                    LOGGER.warning("%s: %s embeddings are read out %.3g s after the onset, decoding asks for %.3g s: "
                                   "not used (embed again with --decoding-offset-s %.3g --overwrite)",
                                   recording.relative_path, label, offset, config.decoding_offset_s,
                                   config.decoding_offset_s)
                    continue
                if abs(float(sidecar.get("WindowS", window)) - window) > 1e-6:
                    LOGGER.warning("%s: %s embeddings use %.3g s windows, decoding uses %.3g s: not used (embed "
                                   "with --embedding-window-s %.3g)", recording.relative_path, label,
                                   float(sidecar["WindowS"]), window, window)
                    continue
                table = pd.read_csv(files["table"], sep="\t", na_values=["n/a"], keep_default_na=False)
                rows = match_onsets(onsets, pd.to_numeric(table["onset"], errors="coerce").to_numpy(dtype=float))
                keep &= rows >= 0          # events whose embedding window left the recording are absent
                channels = read_channels_derivative(data_path.with_name(sidecar["ChannelsFile"]))
                blocks[label] = (np.load(files["data"], mmap_mode="r"), channels["name"].tolist(), rows, channels)
                info = found.feature_info.setdefault(label, {
                    "Kind": kind, "ModelLabel": label, "ModelSha256": sidecar["Model"]["Sha256"],
                    "Layer": sidecar["Layer"], "Pooling": sidecar["Pooling"],
                    "MiddleFrames": sidecar.get("MiddleFrames"), "WindowS": sidecar["WindowS"],
                    "ReadoutOffsetS": offset, "Sources": []})
                if kind == "random-weights":
                    info.setdefault("RandomWeights", sidecar["Model"].get("RandomWeights"))
                info["Sources"].append(f"bids::{files['data'].relative_to(config.output_dir).as_posix()}")
        needs_signal = wanted_features & set(BASELINES)
        loaded = None
        if needs_signal:
            loaded = load_recording(recording, include_dbs=config.include_dbs)
            keep &= event_windows(onsets, window, loaded.data.shape[1] / loaded.sfreq)[2]
        idx = np.flatnonzero(keep)
        offset_blocks: dict = {}
        if loaded is not None and len(idx):
            for feature, block, ch_names, channels in baseline_blocks(config, recording, loaded, onsets[idx],
                                                                      needs_signal, found.feature_info, offset_blocks):
                blocks[feature] = (block, ch_names, None, channels)
        del loaded
        if not len(idx) or not blocks:
            LOGGER.info("%s: no event window to decode", recording.relative_path)
            continue
        # baselines first, then the models, then their random-weights controls: the order of every table and figure
        rank = {"baseline": 0, "embedding": 1, "random-weights": 2}
        ordered = sorted(blocks.items(), key=lambda kv: rank.get(found.feature_info[kv[0]]["Kind"], 3))
        for feature, (block, ch_names, rows, channels) in ordered:
            # baselines were computed for the kept events only; embeddings are rows of their derivative
            selected = np.arange(len(idx)) if rows is None else rows[idx]
            found.features.setdefault(feature, FeatureSet(feature)).add(block, ch_names, selected)
            found.channel_tables.setdefault(feature, channels)
        for feature, grid in offset_blocks.items():
            found.offset_feature = feature
            for k, (block, ch_names) in grid.items():
                found.offset_features.setdefault(k, FeatureSet(f"offset{k}")).add(block, ch_names,
                                                                                  np.arange(len(idx)))
        found.values += [str(v) for v in values.to_numpy()[idx]]
        # embedding windows are centred on onset + offset: the leakage guard sees the union of both windows
        found.starts += list(onsets[idx] - window / 2 + min(0.0, config.decoding_offset_s))
        found.stops += list(onsets[idx] + window / 2 + max(0.0, config.decoding_offset_s))
        found.runs += [run_index] * len(idx)
    # a feature missing from some recording cannot be decoded over the subject's examples
    n_recordings = len(set(found.runs))
    found.features = {k: v for k, v in found.features.items() if len(v.blocks) == n_recordings}
    found.offset_features = {k: v for k, v in found.offset_features.items() if len(v.blocks) == n_recordings}
    return found


# ------------------------------------------------------------------------------------------------ decoding

def region_lookup(subject_channels: pd.DataFrame, recording: Recording | None,
                  atlas: Atlas | None) -> dict[str, tuple[str, str]]:
    """electrode -> (region, source)."""
    table = subject_channels.copy()
    units = None
    if recording is not None:
        electrodes_file = find_electrodes_file(recording)
        if electrodes_file is not None:
            coordsystem = electrodes_file.with_name(electrodes_file.name.replace("_electrodes.tsv",
                                                                                  "_coordsystem.json"))
            if coordsystem.exists():
                units = deriv.read_json(coordsystem).get("iEEGCoordinateUnits")
            if "region" not in table.columns:
                raw = pd.read_csv(electrodes_file, sep="\t", na_values=["n/a"], keep_default_na=False,
                                  dtype={"name": str}).set_index("name", drop=False)
                column = region_column(raw)
                if column is not None and "sources" in table.columns:
                    first = table["sources"].astype(str).str.split(",").str[0]
                    table["region"] = [raw[column].get(s) if s in raw.index else None for s in first]
    try:
        regions, sources = assign_regions(table, atlas, units)
    except ValueError as exc:
        where = find_electrodes_file(recording) if recording is not None else "electrodes"
        raise UsageError(f"{where}: {exc}") from None
    return dict(zip(table["name"].astype(str), zip(regions, sources)))


def run_decoding(config: RunConfig, recordings: list[Recording], atlas: Atlas | None = None) -> list[Path]:
    """Decode every target for every subject and task; writes the score tables, sidecars and figures."""
    from ..reports import figures  # deferred: matplotlib, loaded only when a figure is drawn

    params = config.decoding_settings().probe_params()
    if abs(config.decoding_offset_s) >= config.decoding_window_s / 2:
        raise UsageError(f"--decoding-offset-s {config.decoding_offset_s:g}: the readout must stay inside the "
                         f"{config.decoding_window_s:g} s window (|offset| < {config.decoding_window_s / 2:g} s)")
    rng = np.random.default_rng([config.random_seed, seeds.DECODING])
    offset_rng = np.random.default_rng([config.random_seed, seeds.OFFSET_CURVE])   # leaves the main draws alone
    wanted = set(config.decoding_features)
    written: list[Path] = []
    for task, task_recordings in by_task(recordings).items():
        tables = {}
        for recording in task_recordings:
            events = read_events(recording)
            if events is not None:
                tables[events_path(recording)] = events
        if not tables:
            LOGGER.warning("task %s: no events.tsv in any selected recording, nothing to decode", task)
            continue
        targets = decoding_targets(config.decoding_settings(), tables)
        subjects = defaultdict(list)
        for recording in task_recordings:
            subjects[recording.subject].append(recording)
        score_rows, summary_rows, efficiency_rows, offset_rows, feature_info = [], [], [], [], {}
        sizes_used: dict[str, list[int]] = {}
        for subject, subject_recordings in sorted(subjects.items()):
            LOGGER.info("decoding sub-%s task-%s: %d recording(s)", subject, task, len(subject_recordings))
            examples = gather_subject(config, subject, subject_recordings, wanted)
            if not examples.features:
                LOGGER.warning("sub-%s task-%s: no features to decode", subject, task)
                continue
            for feature, info in examples.feature_info.items():
                merged = feature_info.setdefault(feature, {**info, "Sources": []})
                merged["Sources"] += [s for s in info.get("Sources", []) if s not in merged["Sources"]]
            values = np.asarray(examples.values)
            starts, stops, runs = (np.asarray(v) for v in (examples.starts, examples.stops, examples.runs))
            regions = region_lookup(next(iter(examples.channel_tables.values())), subject_recordings[0],
                                    atlas)
            for feature, channels in examples.channel_tables.items():
                for name, region in region_lookup(channels, subject_recordings[0], atlas).items():
                    regions.setdefault(name, region)
            for target, positive, negative in targets:
                mask = np.ones(len(values), dtype=bool) if negative is None else np.isin(values, [positive, negative])
                y = (values[mask] == positive).astype(int)
                if len(np.unique(y)) < 2:
                    LOGGER.warning("sub-%s task-%s: target %s has one class only here, skipped", subject, task,
                                   target)
                    continue
                for feature, feature_set in examples.features.items():
                    info = examples.feature_info[feature]
                    in_pretraining = "n/a"
                    if info["Kind"] == "embedding":
                        roles = model_training_subjects(config.output_dir, feature)
                        in_pretraining = "n/a" if roles is None else roles.get(subject, "held out")
                    common = {"subject": subject, "target": target, "positive_class": positive, "feature": feature,
                              "feature_kind": info["Kind"], "in_pretraining": in_pretraining}
                    probes = [(name, feature_set.electrode(name)) for name in feature_set.electrodes()]
                    probes.append(("population", None))
                    for name, x in probes:
                        if x is None:
                            x = feature_set.population()
                        result = decode(x[mask], y, starts[mask], stops[mask], runs[mask], params, rng)
                        if not result.folds:
                            continue
                        is_pop = name == "population"
                        ident = {**common, "probe": "population" if is_pop else "electrode",
                                 "electrode": "n/a" if is_pop else name,
                                 "region": "n/a" if is_pop else regions.get(name, ("unknown", "none"))[0]}
                        for fold in result.folds:
                            score_rows.append({**ident, "fold": fold.fold, "cv_scheme": result.scheme,
                                               "n_train": fold.n_train, "n_test": fold.n_test,
                                               "regularization_c": fold.c, "auc": round(fold.auc, 6)})
                        summary_rows.append({**ident, "cv_scheme": result.scheme, "n_folds": len(result.folds),
                                             "n_examples": int(mask.sum()), "auc_mean": result.auc_mean,
                                             "auc_sd": result.auc_sd, "chance_auc": result.chance_mean,
                                             "chance_low": result.chance_low, "chance_high": result.chance_high,
                                             "p_value": result.p_value})
                        if is_pop and config.data_efficiency_draws > 0 and info["Kind"] != "random-weights":
                            n_available = min(f.n_train for f in result.folds)
                            sizes = data_efficiency_sizes(config.data_efficiency_sizes, n_available)
                            sizes_used[f"sub-{subject}"] = sizes
                            for row in data_efficiency(x[mask], y, result, sizes, config.data_efficiency_draws,
                                                       rng):
                                efficiency_rows.append({"subject": subject, "target": target, "feature": feature,
                                                        "feature_kind": info["Kind"],
                                                        "in_pretraining": in_pretraining, **row})
                if examples.offset_features:
                    offset_rows += offset_curve(examples, summary_rows, subject, target, mask, y,
                                                (starts[mask], stops[mask], runs[mask]), params, offset_rng)
        if not score_rows:
            LOGGER.warning("task %s: nothing could be decoded", task)
            continue
        base = {**provenance(config.random_seed), "Task": task, "DecodingColumn": config.decoding_column,
                "Targets": {t: {"Positive": p, "Negative": n if n is not None else "all other values"}
                            for t, p, n in targets},
                "WindowS": config.decoding_window_s, "WindowAlignment": "centred on the events.tsv onset",
                "ReadoutOffsetS": config.decoding_offset_s,
                "CrossValidation": params.to_dict(), "Features": feature_info,
                "Sources": [f"bids:raw:{r.relative_path}" for r in task_recordings]
                + [src for info in feature_info.values() for src in info.get("Sources", [])]}
        scores = pd.DataFrame(score_rows, columns=list(SCORE_COLUMNS))
        written.append(write_table(config.output_dir, naming.group_table(task, "decoding", "scores"), scores, {
            **base, "Description": "Cross-validated ROC-AUC of linear probes, one row per fold",
            **{c: {"Description": d} for c, d in SCORE_COLUMNS.items()}}))
        summary = pd.DataFrame(summary_rows, columns=list(SUMMARY_COLUMNS))
        written.append(write_table(config.output_dir, naming.group_table(task, "decoding", "summary"), summary, {
            **base, "Description": "Per-probe mean ROC-AUC over folds with permutation chance level and p-value",
            **{c: {"Description": d} for c, d in SUMMARY_COLUMNS.items()}}))
        if efficiency_rows:
            efficiency = pd.DataFrame(efficiency_rows)
            written.append(write_table(config.output_dir, naming.group_table(task, "dataefficiency", "scores"), efficiency, {
                **base, "Description": "Population-probe ROC-AUC against the number of training examples "
                                       "(stratified random subsets of each training fold, the fold's C)",
                "RequestedSizes": list(config.data_efficiency_sizes), "SizesUsed": sizes_used,
                "SizesFitted": "per subject (SizesUsed), the requested sizes its smallest training fold holds; "
                               "when it holds none of them, up to four sizes spaced geometrically from 6 to the "
                               "fold size",
                "Draws": config.data_efficiency_draws,
                "n_train": {"Description": "Training examples drawn"},
                "draw": {"Description": "Repetition of the random draw"},
                "fold": {"Description": "Outer fold"}, "auc": {"Description": "Held-out ROC-AUC"}}))
        generalization = generalization_summary(summary)
        if len(generalization):
            written.append(write_table(config.output_dir, naming.group_table(task, "generalization", "summary"), generalization, {
                **base, "Description": "Mean electrode AUC of embedding features by whether the subject was in the "
                                       "model's pretraining data (false: held out, i.e. cross-subject generalization)",
                "auc_electrode_mean": {"Description": "Mean over electrodes of the fold-mean AUC"},
                "n_electrodes": {"Description": "Electrodes averaged"}}))
        written += write_verdict_table(config, task, summary, base)
        if offset_rows:
            written.append(write_table(config.output_dir, naming.group_table(task, "readoutoffset", "summary"),
                                       pd.DataFrame(offset_rows), {
                **base, "Description": "Spectrogram baseline AUC of each subject's best electrodes (highest AUC "
                                       "at --decoding-offset-s) re-scored with the readout centred at other offsets "
                                       "from the onset (no permutations)",
                "offset_s": {"Description": "Readout centre relative to the onset (s)"},
                "auc_mean": {"Description": "Mean ROC-AUC over folds"}}))
        efficiency_frame = pd.DataFrame(efficiency_rows) if efficiency_rows else None
        figure_pngs = figures.decoding_figures(summary, efficiency_frame)
        if offset_rows:
            figure_pngs["readoutOffset"] = figures.auc_by_offset(pd.DataFrame(offset_rows),
                                                                 config.decoding_offset_s)
        for name, png in figure_pngs.items():
            path = root_path(config.output_dir, naming.figure(task, name))
            deriv.atomic_write_bytes(path, png)
            written.append(path)
    return written


def offset_curve(examples: SubjectExamples, summary_rows: list[dict], subject: str, target: str, mask: np.ndarray,
                 y: np.ndarray, windows: tuple, params: DecodingParams, rng) -> list[dict]:
    """AUC of the subject's best spectrogram-baseline electrodes with the readout at each READOUT_OFFSETS_S."""
    feature = examples.offset_feature
    if feature is None or feature not in examples.features:
        return []
    scored = [r for r in summary_rows if r["subject"] == subject and r["target"] == target
              and r["feature"] == feature and r["probe"] == "electrode"]
    best = [r["electrode"] for r in sorted(scored, key=lambda r: -r["auc_mean"])[:OFFSET_CURVE_ELECTRODES]]
    quick = DecodingParams(n_folds=params.n_folds, inner_folds=params.inner_folds, gap_s=params.gap_s,
                           cs=params.cs, n_permutations=0, permutation=params.permutation)
    rows = []
    for k, feature_set in sorted(examples.offset_features.items()):
        for name in best:
            if name not in feature_set.electrodes():
                continue
            result = decode(feature_set.electrode(name)[mask], y, *windows, quick, rng)
            if result.folds:
                rows.append({"subject": subject, "target": target, "feature": feature, "electrode": name,
                             "offset_s": READOUT_OFFSETS_S[k], "auc_mean": result.auc_mean})
    return rows


def generalization_summary(summary: pd.DataFrame) -> pd.DataFrame:
    emb = summary[(summary["feature_kind"] == "embedding") & (summary["probe"] == "electrode")]
    if emb.empty:
        return pd.DataFrame()
    grouped = emb.groupby(["subject", "target", "feature", "in_pretraining"])["auc_mean"]
    return grouped.agg(auc_electrode_mean="mean", n_electrodes="count").reset_index()


def write_verdict_table(config: RunConfig, task: str, summary: pd.DataFrame, base: dict) -> list[Path]:
    """``task-<task>_desc-verdict_summary.tsv`` from the decoding summary (rewritten whenever rows join it)."""
    verdict_table = verdict(summary)
    if not len(verdict_table):
        return []
    return [write_table(config.output_dir, naming.group_table(task, "verdict", "summary"), verdict_table, {
        **base, "Description": "Per target, feature and level: median AUC over electrodes (electrode rows) or over "
                               "subjects (population rows); for each embedding or fine-tuned feature the paired "
                               "difference to the Laplacian baseline and to its random-weights control at the same "
                               "level, and for population rows to each subject's best and median single electrode "
                               "(Wilcoxon signed-rank tests; n = electrodes or subjects)",
        **{c: {"Description": d} for c, d in VERDICT_COLUMNS.items()}})]
