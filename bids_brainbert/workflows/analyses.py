"""Group analyses wired to the derivative dataset: decoding (baselines and embeddings), intrinsic dimensionality
by region, and the HTML reports. Reads inputs and writes outputs; the arithmetic lives in
:mod:`bids_brainbert.analyses` and the drawing in :mod:`bids_brainbert.reports`.

Outputs at the output root (``<task>`` = ``task-<label>``)::

    <task>_desc-decoding_scores.tsv        one row per subject x target x electrode (or population) x feature x fold
    <task>_desc-decoding_summary.tsv       one row per subject x target x electrode x feature (mean, sd, chance, p)
    <task>_desc-dataefficiency_scores.tsv  population-probe AUC per training-set size, draw and fold
    <task>_desc-generalization_summary.tsv embedding AUC on subjects in / held out of the model's pretraining
    <task>_desc-dimensionality_electrodes.tsv, <task>_desc-dimensionality_regions.tsv
    (+ a JSON sidecar each), figures/<task>_desc-*.png, sub-<label>.html, group_ieeg.html, logs/CITATION.md
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..analyses.decoding import (BRAINBERT_SIZES, DecodingParams, data_efficiency, data_efficiency_sizes,
                                 decode)
from ..analyses.dimensionality import MIN_EXAMPLES, draw_examples, intrinsic_dimension
from ..analyses.features import (FeatureSet, event_windows, spectrogram_features, spectrogram_features_at_offsets,
                                 voltage_features)
from ..analyses.regions import Atlas, assign_regions
from ..analyses.verdict import VERDICT_COLUMNS, verdict
from ..bids import derivatives as deriv
from ..bids import names as naming
from ..bids.discovery import Recording
from ..config import RunConfig, replace
from ..errors import BidsBrainbertError, RecordingError, UsageError
from ..io.loading import find_electrodes_file, load_recording
from ..transforms.spectrogram import spectrogram_front_end
from ..bids.names import GROUP_REPORT, MODELS_DIR
from .embeddings import read_events
from .steps import ANALYSES, runs  # noqa: F401 (ANALYSES re-exported)
from .participant import preprocess, spectrogram_paths_for

LOGGER = logging.getLogger("bids_brainbert")

BASELINES = ("voltage", "superlet", "stft", "laplacian")
FEATURE_CHOICES = BASELINES + ("embeddings", "random")
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


# ------------------------------------------------------------------------------------------------ helpers

def task_of(recording: Recording) -> str:
    return recording.entities.get("task", "none")


def by_task(recordings: list[Recording]) -> dict[str, list[Recording]]:
    out: dict[str, list[Recording]] = defaultdict(list)
    for recording in recordings:
        out[task_of(recording)].append(recording)
    return dict(sorted(out.items()))


def root_path(config: RunConfig, name: str) -> Path:
    return deriv.ensure_inside(config.output_dir, config.output_dir / name)


def provenance(config: RunConfig) -> dict:
    return {"GeneratedBy": [deriv.generated_by()], "SoftwareVersion": __version__,
            "RandomSeed": config.random_seed}


def write_table(config: RunConfig, name: str, table: pd.DataFrame, sidecar: dict) -> Path:
    path = root_path(config, name)
    deriv.atomic_write_tsv(path, table)
    deriv.atomic_write_json(path.with_suffix(".json"), sidecar)
    return path


def events_path(recording: Recording) -> Path:
    return recording.path.with_name(f"{recording.stem_entities}_events.tsv")


def decoding_targets(config: RunConfig, tables: dict[Path, pd.DataFrame]) -> list[tuple[str, str, str | None]]:
    """(name, positive value, negative value or None = rest) for each target; bad column/values -> UsageError."""
    column = config.decoding_column
    values: set[str] = set()
    for path, table in tables.items():
        if column not in table.columns:
            raise UsageError(f"{path}: no column {column!r} to decode (columns: {', '.join(map(str, table.columns))};"
                             f" see --decoding-column)")
        values |= {str(v) for v in table[column].dropna().tolist()}
    first = next(iter(tables))
    targets = []
    if config.decoding_contrast:
        for contrast in config.decoding_contrast:
            parts = [p.strip() for p in str(contrast).split(",")]
            if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
                raise UsageError(f"--decoding-contrast: {contrast!r} is not two different values 'A,B'")
            for part in parts:
                if part not in values:
                    raise UsageError(f"{first}: value {part!r} of --decoding-contrast {contrast!r} never occurs in "
                                     f"column {column!r} (values: {', '.join(sorted(values))})")
            targets.append((f"{_label(parts[0])}Vs{_label(parts[1]).capitalize()}", parts[0], parts[1]))
        return targets
    ordered = sorted(values)
    if len(ordered) < 2:
        raise UsageError(f"{first}: column {column!r} holds fewer than two values ({', '.join(ordered) or 'none'}): "
                         "nothing to decode")
    if len(ordered) == 2:
        positive, negative = natural_contrast_order(ordered)
        return [(f"{_label(positive)}Vs{_label(negative).capitalize()}", positive, negative)]
    return [(f"{_label(v)}VsRest", v, None) for v in ordered]


CONTROL_VALUES = {"rest", "baseline", "control", "off", "none", "null", "neutral", "false", "0", "no", "noise",
                  "silence", "blank", "fixation", "catch", "other", "nontarget"}


def natural_contrast_order(values: list[str]) -> tuple[str, str]:
    """(positive, negative) of a two-valued column read as a scientist would: a control-like value ('rest',
    'baseline', 'non<x>' next to '<x>', ...) is the negative class; otherwise alphabetical order."""
    a, b = sorted(values)

    def is_control(value: str, other: str) -> bool:
        low, other_low = value.lower(), other.lower()
        stripped = low.replace("-", "").replace("_", "")
        return (low in CONTROL_VALUES or stripped in CONTROL_VALUES
                or any(stripped == prefix + other_low.replace("-", "").replace("_", "")
                       for prefix in ("non", "no", "not", "un")))

    if is_control(a, b) and not is_control(b, a):
        return b, a
    return a, b


def _label(value: str) -> str:
    cleaned = "".join(ch for ch in str(value) if ch.isalnum())
    return cleaned or "value"


def model_training_subjects(config: RunConfig, label: str) -> dict[str, str] | None:
    """What pretraining the group model ``label`` did with each subject it saw: 'trained' (a recording in the
    training set) or 'validation only'; None when the model is not in OUTPUT_DIR/models."""
    from ..training import latest_checkpoint

    checkpoint = latest_checkpoint(config.output_dir / naming.model_dir(label))
    if checkpoint is None:
        return None
    try:
        training = json.loads((checkpoint / "config.json").read_text())["training"]
    except (OSError, KeyError, json.JSONDecodeError):
        return None
    def subject(file: str) -> str:
        return Path(file).name.split("_")[0].removeprefix("sub-")

    roles = {subject(f): "validation only" for f in training.get("val_files", [])}
    roles.update({subject(f): "trained" for f in training.get("train_files", [])})
    return roles


def embedding_event_files(spectrogram_data: Path) -> dict[str, dict[str, Path]]:
    """Event-locked embedding derivatives next to a spectrogram derivative, by model label."""
    stem = naming.recording_stem(spectrogram_data.name)
    out = {}
    for label in naming.embedding_labels(spectrogram_data.parent, stem, events=True):
        files = {role: spectrogram_data.parent / name for role, name in naming.embedding_files(stem, label).items()}
        npy, sidecar, table = files["events"], files["events_sidecar"], files["events_table"]
        if sidecar.exists() and table.exists():
            out[label] = {"data": npy, "sidecar": sidecar, "table": table}
    return out


def match_onsets(wanted: np.ndarray, available: np.ndarray, tolerance_s: float = 1e-3) -> np.ndarray:
    """Index into ``available`` of each wanted onset (-1 when absent)."""
    out = np.full(len(wanted), -1, dtype=int)
    if not len(available):
        return out
    order = np.argsort(available)
    sorted_available = available[order]
    pos = np.clip(np.searchsorted(sorted_available, wanted), 1, len(available)) - 1
    for i, w in enumerate(wanted):
        for p in (pos[i], min(pos[i] + 1, len(available) - 1)):
            if abs(sorted_available[p] - w) <= tolerance_s:
                out[i] = order[p]
                break
    return out


def read_channels(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False, dtype={"name": str})
    except (OSError, pd.errors.ParserError) as exc:
        raise RecordingError(f"{path}: unreadable channels table ({exc})") from None


# ------------------------------------------------------------------------------------------------ decoding inputs

def readout_offsets(config: RunConfig, frame_rate_hz: float) -> tuple[float, ...]:
    """The offsets of READOUT_OFFSETS_S whose readout stays inside the decoding window."""
    half = config.decoding_window_s / 2 - config.embedding_middle_frames / frame_rate_hz / 2
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
                offsets = readout_offsets(config, front_end.frame_rate_hz)
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
                channels = read_channels(data_path.with_name(sidecar["ChannelsFile"]))
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

def region_lookup(config: RunConfig, subject_channels: pd.DataFrame, recording: Recording | None,
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
                from ..analyses.regions import region_column
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
    from ..reports import figures

    params = decoding_params(config)
    if abs(config.decoding_offset_s) >= config.decoding_window_s / 2:
        raise UsageError(f"--decoding-offset-s {config.decoding_offset_s:g}: the readout must stay inside the "
                         f"{config.decoding_window_s:g} s window (|offset| < {config.decoding_window_s / 2:g} s)")
    rng = np.random.default_rng([config.random_seed, 5])
    offset_rng = np.random.default_rng([config.random_seed, 7])   # the offset curve leaves the main draws alone
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
        targets = decoding_targets(config, tables)
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
            regions = region_lookup(config, next(iter(examples.channel_tables.values())), subject_recordings[0],
                                    atlas)
            for feature, channels in examples.channel_tables.items():
                for name, region in region_lookup(config, channels, subject_recordings[0], atlas).items():
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
                        roles = model_training_subjects(config, feature)
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
        base = {**provenance(config), "Task": task, "DecodingColumn": config.decoding_column,
                "Targets": {t: {"Positive": p, "Negative": n if n is not None else "all other values"}
                            for t, p, n in targets},
                "WindowS": config.decoding_window_s, "WindowAlignment": "centred on the events.tsv onset",
                "ReadoutOffsetS": config.decoding_offset_s,
                "CrossValidation": params.to_dict(), "Features": feature_info,
                "Sources": [f"bids:raw:{r.relative_path}" for r in task_recordings]
                + [src for info in feature_info.values() for src in info.get("Sources", [])]}
        scores = pd.DataFrame(score_rows, columns=list(SCORE_COLUMNS))
        written.append(write_table(config, naming.group_table(task, "decoding", "scores"), scores, {
            **base, "Description": "Cross-validated ROC-AUC of linear probes, one row per fold",
            **{c: {"Description": d} for c, d in SCORE_COLUMNS.items()}}))
        summary = pd.DataFrame(summary_rows, columns=list(SUMMARY_COLUMNS))
        written.append(write_table(config, naming.group_table(task, "decoding", "summary"), summary, {
            **base, "Description": "Per-probe mean ROC-AUC over folds with permutation chance level and p-value",
            **{c: {"Description": d} for c, d in SUMMARY_COLUMNS.items()}}))
        if efficiency_rows:
            efficiency = pd.DataFrame(efficiency_rows)
            written.append(write_table(config, naming.group_table(task, "dataefficiency", "scores"), efficiency, {
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
            written.append(write_table(config, naming.group_table(task, "generalization", "summary"), generalization, {
                **base, "Description": "Mean electrode AUC of embedding features by whether the subject was in the "
                                       "model's pretraining data (false: held out, i.e. cross-subject generalization)",
                "auc_electrode_mean": {"Description": "Mean over electrodes of the fold-mean AUC"},
                "n_electrodes": {"Description": "Electrodes averaged"}}))
        verdict_table = verdict(summary)
        if len(verdict_table):
            written.append(write_table(config, naming.group_table(task, "verdict", "summary"), verdict_table, {
                **base, "Description": "Per target and feature: median electrode AUC; for each embedding model the "
                                       "paired difference to the Laplacian baseline and to its random-weights "
                                       "control over the electrodes both scored (Wilcoxon signed-rank test)",
                **{c: {"Description": d} for c, d in VERDICT_COLUMNS.items()}}))
        if offset_rows:
            written.append(write_table(config, naming.group_table(task, "readoutoffset", "summary"),
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
            path = root_path(config, naming.figure(task, name))
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


def decoding_params(config: RunConfig) -> DecodingParams:
    return DecodingParams(n_folds=config.decoding_folds, n_permutations=config.decoding_permutations,
                          permutation=config.decoding_permutation_scheme)


# ------------------------------------------------------------------------------------------------ dimensionality

def run_dimensionality(config: RunConfig, recordings: list[Recording], atlas: Atlas | None = None) -> list[Path]:
    """Intrinsic dimensionality per electrode of each embedding model's sliding-window embeddings, and of the
    spectrogram (log10 magnitude averaged over the same windows) as control, summarised by region."""
    from ..reports import figures

    rng = np.random.default_rng([config.random_seed, 6])
    written: list[Path] = []
    short: dict[str, int] = {}
    for task, task_recordings in by_task(recordings).items():
        rows = []
        subjects = defaultdict(list)
        for recording in task_recordings:
            subjects[recording.subject].append(recording)
        info: dict[str, dict] = {}
        for subject, subject_recordings in sorted(subjects.items()):
            per_feature: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
            channels_table = None
            for recording in subject_recordings:
                paths = spectrogram_paths_for(config, recording)
                if not deriv.is_complete(paths):
                    LOGGER.info("%s: no complete spectrogram derivative, left out of the dimensionality analysis",
                                recording.relative_path)
                    continue
                channels = read_channels(paths["channels"])
                channels_table = channels if channels_table is None else channels_table
                spec_sidecar = deriv.read_json(paths["sidecar"])
                spectrogram = np.load(paths["data"], mmap_mode="r")
                rate, start = float(spec_sidecar["SamplingFrequency"]), float(spec_sidecar.get("StartTime", 0.0))
                stem = naming.recording_stem(paths["data"].name)
                for label in naming.embedding_labels(paths["data"].parent, stem, events=False):
                    npy = paths["data"].parent / naming.embedding_files(stem, label)["windows"]
                    sidecar = deriv.read_json(npy.with_suffix(".json"))
                    embeddings = np.load(npy, mmap_mode="r")
                    centres = np.asarray(sidecar.get("WindowCentresS", []), float)
                    names = read_channels(paths["data"].with_name(sidecar["ChannelsFile"]))["name"].tolist()
                    info.setdefault(label, {"Kind": "embedding", "ModelSha256": sidecar["Model"]["Sha256"],
                                            "Layer": sidecar["Layer"], "Pooling": sidecar["Pooling"],
                                            "WindowS": sidecar["WindowS"], "StrideS": sidecar["StrideS"]})
                    half = int(round(float(sidecar["WindowS"]) * rate)) // 2
                    frames = np.round((centres - start) * rate).astype(int)
                    for row, name in enumerate(names):
                        per_feature[label][name].append(np.asarray(embeddings[row]))
                        if label == next(iter(info)):   # one spectrogram control, on the first model's windows
                            spec_rows = np.log10(np.maximum(np.asarray(spectrogram[row], np.float64), 1e-30))
                            per_feature["spectrogram"][name].append(np.stack(
                                [spec_rows[max(0, f - half):f + half].mean(axis=0) for f in frames])
                                if len(frames) else np.zeros((0, spectrogram.shape[2])))
            if channels_table is None or not per_feature:
                continue
            info.setdefault("spectrogram", {"Kind": "control", "Readout": "log10 magnitude of the spectrogram "
                                            "derivative averaged over all frames of each embedding window"})
            regions = region_lookup(config, channels_table, subject_recordings[0], atlas)
            for feature, electrodes in per_feature.items():
                for name, parts in electrodes.items():
                    x = np.concatenate(parts)
                    n_available = len(x)
                    x = x[draw_examples(len(x), config.dimensionality_examples, rng)]
                    region, source = regions.get(name, ("unknown", "none"))
                    n_features = x.shape[1] if x.ndim == 2 else 0
                    row = {"subject": subject, "electrode": name, "region": region, "region_source": source,
                           "feature": feature, "n_examples": len(x), "n_examples_requested":
                           config.dimensionality_examples, "n_features": n_features, "dimension": "n/a",
                           "max_dimension": max(0, min(len(x) - 1, n_features)), "at_ceiling": "n/a",
                           "threshold": config.dimensionality_threshold}
                    if n_available < config.dimensionality_examples:
                        short[f"sub-{subject} {feature}"] = min(short.get(f"sub-{subject} {feature}", n_available),
                                                                n_available)
                    if len(x) >= MIN_EXAMPLES:
                        result = intrinsic_dimension(x, config.dimensionality_threshold)
                        row.update(dimension=result.dimension, max_dimension=result.max_rank,
                                   at_ceiling=str(result.dimension >= result.max_rank).lower())
                    rows.append(row)
        if not rows:
            LOGGER.warning("task %s: no embeddings or spectrograms for the dimensionality analysis", task)
            continue
        if short:
            per_subject: dict[str, int] = {}
            for what, n in short.items():
                subject_label = what.split(" ")[0]
                per_subject[subject_label] = min(per_subject.get(subject_label, n), n)
            LOGGER.warning("task %s: fewer windows per electrode than --dimensionality-examples %d (%s): each "
                           "dimension is capped at n - 1 (see max_dimension and at_ceiling)", task,
                           config.dimensionality_examples,
                           ", ".join(f"{k} {v}" for k, v in sorted(per_subject.items())))
        short.clear()
        electrodes = pd.DataFrame(rows)
        base = {**provenance(config), "Task": task, "Threshold": config.dimensionality_threshold,
                "MaxExamples": config.dimensionality_examples, "Features": info,
                "RegionSources": "region column of electrodes.tsv (via the channels table) when present, else "
                                 f"the atlas {atlas.source if atlas else '(none given)'}, else unknown"}
        written.append(write_table(config, naming.group_table(task, "dimensionality", "electrodes"), electrodes, {
            **base, "Description": "Intrinsic dimensionality per electrode: fewest principal components explaining "
                                   "more than Threshold of the variance of its window features",
            "dimension": {"Description": "Fewest principal components explaining > Threshold of the variance"},
            "max_dimension": {"Description": "Ceiling: min(n_examples - 1, n_features), the most the data allow"},
            "at_ceiling": {"Description": "true when the dimension equals the ceiling: it is then a lower bound "
                                          "set by the sample count, not a property of the representation"},
            "n_examples": {"Description": "Windows used (drawn at random when more than MaxExamples)"},
            "n_examples_requested": {"Description": "--dimensionality-examples: windows wanted per electrode"},
            "region_source": {"Description": "Where the region came from"}}))
        scored = electrodes[electrodes["dimension"] != "n/a"].copy()
        scored["dimension"] = scored["dimension"].astype(float)
        scored["at_ceiling"] = scored["at_ceiling"] == "true"
        regions_table = (scored.groupby(["region", "feature"])
                         .agg(n_electrodes=("dimension", "count"), dimension_mean=("dimension", "mean"),
                              dimension_sd=("dimension", "std"), dimension_median=("dimension", "median"),
                              max_dimension_mean=("max_dimension", "mean"),
                              n_at_ceiling=("at_ceiling", "sum")).reset_index())
        written.append(write_table(config, naming.group_table(task, "dimensionality", "regions"), regions_table, {
            **base, "Description": "Intrinsic dimensionality summarised by brain region and feature",
            "max_dimension_mean": {"Description": "Mean ceiling min(n_examples - 1, n_features) of the electrodes"},
            "n_at_ceiling": {"Description": "Electrodes whose dimension equals their ceiling (a lower bound)"}}))
        png = figures.dimensionality_by_region(regions_table)
        path = root_path(config, naming.figure(task, "dimensionality"))
        deriv.atomic_write_bytes(path, png)
        written.append(path)
    return written


# ------------------------------------------------------------------------------------------------ atlas

def load_atlas(image: Path | None, labels: Path | None) -> Atlas | None:
    """Read ``--atlas`` (NIfTI label image) and ``--atlas-labels`` (TSV with index and name columns)."""
    if image is None and labels is None:
        return None
    if image is None or labels is None:
        raise UsageError(f"{image or labels}: --atlas and --atlas-labels must be given together")
    import nibabel as nib

    try:
        img = nib.load(str(image))
        data = np.asarray(img.dataobj)
    except FileNotFoundError:
        raise UsageError(f"{image}: atlas image not found") from None
    except Exception as exc:  # nibabel raises several types for a file that is not an image
        raise UsageError(f"{image}: not a readable NIfTI label image ({str(exc).splitlines()[0]})") from None
    if data.ndim < 3 or (data.ndim > 3 and any(s != 1 for s in data.shape[3:])):
        raise UsageError(f"{image}: atlas must be a 3-d label image, got shape {data.shape}")
    data = data.reshape(data.shape[:3])
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.allclose(data, np.round(data)):
            raise UsageError(f"{image}: atlas voxels must hold integer labels")
        data = np.round(data).astype(np.int64)
    try:
        table = pd.read_csv(labels, sep="\t", keep_default_na=False)
    except FileNotFoundError:
        raise UsageError(f"{labels}: atlas label table not found") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise UsageError(f"{labels}: unreadable atlas label table ({str(exc).splitlines()[0]})") from None
    if not {"index", "name"} <= set(table.columns):
        raise UsageError(f"{labels}: atlas label table needs 'index' and 'name' columns (found: "
                         f"{', '.join(map(str, table.columns))})")
    index = pd.to_numeric(table["index"], errors="coerce")
    if index.isna().any() or not np.allclose(index, np.round(index)):
        raise UsageError(f"{labels}: 'index' column must hold integers")
    names = dict(zip(index.astype(int).tolist(), table["name"].astype(str).tolist()))
    return Atlas(data=data, affine=np.asarray(img.affine, float), names=names, source=Path(image).name)


# ------------------------------------------------------------------------------------------------ entry points

def run_group_analyses(config: RunConfig, recordings: list[Recording], analysis: str) -> list[Path]:
    """The steps of ``--analysis analysis`` after pretraining (see :data:`bids_brainbert.workflows.steps.ANALYSES`),
    then the reports."""
    atlas = load_atlas(config.atlas, config.atlas_labels)
    written: list[Path] = []
    if runs(analysis, "decoding"):
        written += run_decoding(config, recordings, atlas)
    if runs(analysis, "population"):          # the population model over coordinates: workflows/population.py
        from .population import run_population  # imports this module
        written += run_population(config, recordings)
    if runs(analysis, "finetune"):            # supervised fine-tuning per electrode: workflows/finetune.py
        from .finetune import run_finetune      # imports this module
        written += run_finetune(config, recordings)
    if runs(analysis, "dimensionality"):
        written += run_dimensionality(config, recordings, atlas)
    written.append(write_citation(config, analysis, recordings))
    written += write_subject_reports(config, recordings)
    LOGGER.info("report: group_ieeg.html")
    written.append(write_group_report(config, recordings))
    LOGGER.info("reports written to %s", config.output_dir)
    return written


# ------------------------------------------------------------------------------------------------ reports

def _read_tsv(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                       dtype={"subject": str, "electrode": str})


def channel_usage(recording: Recording, used: list[str], reference: str) -> pd.DataFrame:
    """Every channel of the recording's channels.tsv: used or not, and why."""
    path = recording.path.with_name(f"{recording.stem_entities}_channels.tsv")
    if not path.exists():
        return pd.DataFrame({"name": used, "type": "", "used": "yes", "reason": ""})
    raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    rows = []
    for _, ch in raw.iterrows():
        name, ch_type = ch.get("name", ""), str(ch.get("type", "")).upper()
        if name in used:
            rows.append({"name": name, "type": ch_type, "used": "yes", "reason": ""})
            continue
        if str(ch.get("status", "")).lower() == "bad":
            detail = ch.get("status_description", "")
            reason = "marked bad in channels.tsv" + (f" ({detail})" if detail and detail != "n/a" else "")
        elif ch_type not in ("SEEG", "ECOG", "DBS"):
            reason = f"channel type {ch_type} not analysed"
        elif ch_type == "DBS":
            reason = "DBS channels are analysed only with --include-dbs"
        else:
            reason = (f"left out by '{reference}' re-referencing (e.g. a shaft end or a contact next to a bad one "
                      "has no two neighbours)")
        rows.append({"name": name, "type": ch_type, "used": "no", "reason": reason})
    return pd.DataFrame(rows)


def subject_report(config: RunConfig, subject: str, recordings: list[Recording]) -> str:
    from ..reports import figures
    from ..reports.html import Section, heading, image, paragraph, render, table

    sections: list[Section] = []
    summary_rows, channel_blocks, spectrogram_imgs, embedding_imgs = [], [], [], []
    ranking = responsive_channels(config, subject, recordings)
    for recording in recordings:
        paths = spectrogram_paths_for(config, recording)
        if not deriv.is_complete(paths):
            summary_rows.append({"recording": recording.relative_path, "status": "no complete derivative"})
            continue
        sidecar = deriv.read_json(paths["sidecar"])
        channels = read_channels(paths["channels"])
        spectrogram = np.load(paths["data"], mmap_mode="r")
        rate = float(sidecar["SamplingFrequency"])
        reference = sidecar.get("Preprocessing", {}).get("Reference", {}).get("scheme", config.reference)
        summary_rows.append({
            "recording": recording.relative_path, "status": "processed",
            "input rate (Hz)": sidecar.get("Preprocessing", {}).get("InputSamplingFrequency"),
            "analysis rate (Hz)": sidecar.get("SignalSamplingFrequency"),
            "duration (s)": round(spectrogram.shape[1] / rate, 1), "channels used": spectrogram.shape[0],
            "spectrogram": f"{sidecar['Transform']['Kind']} {spectrogram.shape[2]} frequencies, {rate:.2f} frames/s",
            "reference": reference})
        usage = channel_usage(recording, channels["name"].astype(str).tolist(), reference)
        channel_blocks.append(heading(recording.relative_path) + table(usage))
        events = read_events(recording)
        if spectrogram.shape[0]:
            names = channels["name"].astype(str).tolist()
            row, why = example_channel(names, ranking)
            spectrogram_imgs.append(image(figures.spectrogram_example(
                spectrogram[row], np.asarray(sidecar["FrequenciesHz"]), rate, float(sidecar.get("StartTime", 0.0)),
                f"{recording.relative_path}, {names[row]} ({why})", events),
                f"spectrogram {recording.stem_entities}"))
        for label, files in embedding_event_files(paths["data"]).items():
            emb_sidecar = deriv.read_json(files["sidecar"])
            emb = np.load(files["data"], mmap_mode="r")
            kept = pd.read_csv(files["table"], sep="\t", na_values=["n/a"], keep_default_na=False)
            column = config.decoding_column if config.decoding_column in kept.columns else None
            if emb.shape[0] and emb.shape[1] >= 3 and column:
                names = read_channels(paths["data"].with_name(emb_sidecar["ChannelsFile"]))["name"].astype(str).tolist()
                row, _ = example_channel(names, ranking)
                embedding_imgs.append(image(figures.embedding_scatter(
                    np.asarray(emb[row]), kept[column].astype(str).tolist(),
                    f"{label} event embeddings, {recording.stem_entities}, {names[row]}"), f"embeddings {label}"))
    sections.append(Section("Data", table(pd.DataFrame(summary_rows))))
    sections.append(Section("Channels used and left out", "".join(channel_blocks) or paragraph("none")))
    sections.append(Section("Spectrogram examples", paragraph(
        "log10 magnitude of the most responsive channel (highest decoding AUC of this subject, when decoding has "
        "run; else the middle channel); vertical lines mark event onsets, one colour per condition (legend).",
        "note") + "".join(spectrogram_imgs)))
    if embedding_imgs:
        sections.append(Section("Embeddings", paragraph("First two principal components of the event-locked "
                                                        "embeddings of the most responsive electrode, by "
                                                        "condition.", "note")
                                + "".join(embedding_imgs)))
    decoding_body = ""
    for task in sorted({task_of(r) for r in recordings}):
        summary = _read_tsv(root_path(config, naming.group_table(task, "decoding", "summary")))
        if summary is None:
            continue
        mine = summary[summary["subject"].astype(str) == subject]
        for target, rows in mine.groupby("target", sort=False):
            positive = rows["positive_class"].iloc[0] if "positive_class" in rows else "n/a"
            decoding_body += image(figures.electrode_auc_map(
                rows, f"sub-{subject} task-{task}: {target} (positive class: {positive})"), f"decoding {target}")
            best = rows.sort_values("auc_mean", ascending=False).head(15)
            decoding_body += table(best[["feature", "probe", "electrode", "region", "auc_mean", "auc_sd",
                                         "chance_high", "p_value"]])
    if decoding_body:
        sections.append(Section("Decoding", decoding_body))
    dim_body = ""
    for task in sorted({task_of(r) for r in recordings}):
        electrodes = _read_tsv(root_path(config, naming.group_table(task, "dimensionality", "electrodes")))
        if electrodes is not None:
            mine = electrodes[electrodes["subject"].astype(str) == subject]
            if len(mine):
                dim_body += table(mine[["electrode", "region", "feature", "n_examples", "dimension"]])
    if dim_body:
        sections.append(Section("Intrinsic dimensionality", dim_body))
    return render(f"bids-brainbert: sub-{subject}", sections,
                  f"bids-brainbert {__version__}, generated from the derivatives in {config.output_dir.name}")


def responsive_channels(config: RunConfig, subject: str, recordings: list[Recording]) -> list[str]:
    """The subject's electrodes by decreasing best electrode-probe AUC over features and targets (empty before
    decoding)."""
    ranked: dict[str, float] = {}
    for task in sorted({task_of(r) for r in recordings}):
        summary = _read_tsv(root_path(config, naming.group_table(task, "decoding", "summary")))
        if summary is None:
            continue
        rows = summary[(summary["subject"].astype(str) == subject) & (summary["probe"] == "electrode")]
        for name, auc in rows.groupby("electrode")["auc_mean"].max().items():
            ranked[str(name)] = max(ranked.get(str(name), 0.0), float(auc))
    return sorted(ranked, key=lambda n: -ranked[n])


def example_channel(names: list[str], ranking: list[str]) -> tuple[int, str]:
    """Row of the most responsive channel present in ``names`` and why it was chosen."""
    for name in ranking:
        if name in names:
            return names.index(name), "most responsive: highest decoding AUC"
    return len(names) // 2, "middle channel"


def write_subject_reports(config: RunConfig, recordings: list[Recording]) -> list[Path]:
    """OUTPUT_DIR/sub-<label>.html for every subject of ``recordings`` (fMRIPrep/MRIQC convention)."""
    subjects: dict[str, list[Recording]] = defaultdict(list)
    for recording in recordings:
        subjects[recording.subject].append(recording)
    written = []
    for number, (subject, subject_recordings) in enumerate(sorted(subjects.items()), start=1):
        LOGGER.info("report %d of %d: sub-%s.html (%d recording(s))", number, len(subjects), subject,
                    len(subject_recordings))   # seconds each: figures for every recording
        path = root_path(config, naming.subject_report(subject))
        deriv.atomic_write_bytes(path, subject_report(config, subject, subject_recordings).encode("utf-8"))
        written.append(path)
    return written


def verdict_section(config: RunConfig, task: str, summary: pd.DataFrame) -> str:
    """The verdict table (from its TSV when written, else from the summary) and its plain-words outcome."""
    from ..analyses.verdict import verdict_sentences
    from ..reports.html import paragraph, table

    stored = _read_tsv(root_path(config, naming.group_table(task, "verdict", "summary")))
    frame = stored if stored is not None else verdict(summary)
    if frame is None or not len(frame):
        return ""
    body = "<h3>Verdict: is pretraining worth it?</h3>"
    body += "".join(paragraph(text) for text in verdict_sentences(frame))
    body += paragraph("Median electrode AUC per feature; for each embedding model the median paired difference to "
                      "the Laplacian baseline and to the same network with random weights, over the electrodes "
                      "both scored (n), with the Wilcoxon signed-rank p-value (all columns in the verdict TSV).",
                      "note")
    return body + table(compact_verdict(frame))


def compact_verdict(frame: pd.DataFrame) -> pd.DataFrame:
    """The verdict as the report shows it: one comparison per cell."""
    def comparison(row, prefix: str) -> str:
        if str(row[f"vs_{prefix}"]) in ("n/a", "nan"):
            return ""
        p = float(row[f"minus_{prefix}_p"])
        return (f"{float(row[f'minus_{prefix}_median']):+.3f} (n = {int(row[f'minus_{prefix}_n'])}, "
                f"p = {p:.2g})" if np.isfinite(p) else f"n = {int(row[f'minus_{prefix}_n'])}: too few")

    return pd.DataFrame({
        "target": frame["target"], "positive class": frame["positive_class"], "feature": frame["feature"],
        "kind": frame["feature_kind"], "electrodes": frame["n_electrodes"], "median AUC": frame["auc_median"],
        "minus Laplacian": [comparison(r, "laplacian") for _, r in frame.iterrows()],
        "minus random weights": [comparison(r, "random") for _, r in frame.iterrows()]})


def data_efficiency_caption(path: Path) -> str:
    from ..reports.html import paragraph

    sidecar_path = path.with_suffix(".json")
    if not sidecar_path.exists():
        return ""
    sidecar = deriv.read_json(sidecar_path)
    used = "; ".join(f"{subject}: {', '.join(map(str, sizes))}" for subject, sizes in
                     sorted(sidecar.get("SizesUsed", {}).items()))
    return paragraph(f"Requested training-set sizes: {', '.join(map(str, sidecar.get('RequestedSizes', [])))}. "
                     f"Sizes that fitted and were used, per subject: {used or 'none'}. One panel per subject: a "
                     "subject's curve stops at its own data.", "note")


def electrode_count_reason(config: RunConfig, task: str, feature: str) -> str:
    """Why a feature scored the number of electrodes it did (from the decoding sidecar's feature record)."""
    path = root_path(config, naming.group_table(task, "decoding", "summary", ".json"))
    info = deriv.read_json(path).get("Features", {}).get(feature, {}) if path.exists() else {}
    kind, reference = info.get("Kind"), info.get("Reference")
    if kind == "baseline" and reference == "none":
        return "all good channels (unreferenced)"
    if kind == "baseline":
        return f"{reference}: contacts lacking neighbours left out"
    if kind in ("embedding", "random-weights"):
        return "the spectrogram derivative's channels (its reference)"
    return "n/a"


def write_group_report(config: RunConfig, recordings: list[Recording]) -> Path:
    from ..reports import figures
    from ..reports.html import Section, heading, image, paragraph, preformatted, render, table

    sections: list[Section] = []
    loss_body = ""
    from ..training import latest_checkpoint

    models_root = config.output_dir / MODELS_DIR
    for model_dir in sorted(models_root.glob("desc-*")) if models_root.is_dir() else []:
        checkpoint = latest_checkpoint(model_dir)
        if checkpoint is not None and (checkpoint / "loss_curve.png").exists():
            loss_body += heading(f"{model_dir.name} ({checkpoint.name})")
            loss_body += image((checkpoint / "loss_curve.png").read_bytes(), f"loss curve {model_dir.name}")
            from .provenance import model_record

            record = model_record(config.output_dir, model_dir.name.removeprefix("desc-"))
            if record is not None:
                training = record["training"]
                share = record["validation_share"]
                loss_body += paragraph(
                    f"{record['steps_trained']} of {training.get('total_steps', 'n/a')} steps, batch "
                    f"{training.get('batch_size', 'n/a')}; {training.get('n_train_windows', 0)} training and "
                    f"{training.get('n_val_windows', 0)} validation windows (validation share "
                    + (f"{100 * share:.0f}%" if share is not None else "n/a") + f" of the windows, "
                    f"{len(training.get('val_files', []))} of "
                    f"{len(training.get('train_files', [])) + len(training.get('val_files', []))} recordings).",
                    "note")
    sections.append(Section("Pretraining", loss_body or paragraph("No model has been pretrained in this output "
                                                                  "directory.", "note")))
    for task in sorted({task_of(r) for r in recordings}):
        summary = _read_tsv(root_path(config, naming.group_table(task, "decoding", "summary")))
        if summary is not None and len(summary):
            if "positive_class" not in summary.columns:      # written by an earlier version
                summary = summary.assign(positive_class="n/a")
            body = verdict_section(config, task, summary)
            efficiency_path = root_path(config, naming.group_table(task, "dataefficiency", "scores"))
            efficiency = _read_tsv(efficiency_path)
            for name, png in figures.decoding_figures(summary, efficiency).items():
                body += image(png, name)
                if name == "dataEfficiency":
                    body += data_efficiency_caption(efficiency_path)
            offsets = _read_tsv(root_path(config, naming.group_table(task, "readoutoffset", "summary")))
            if offsets is not None and len(offsets):
                body += "<h3>Where the information is: readout offset</h3>" + paragraph(
                    f"AUC of the {offsets['feature'].iloc[0]} baseline of each "
                    f"subject's {OFFSET_CURVE_ELECTRODES} best electrodes with the {config.embedding_middle_frames}"
                    "-frame readout centred at other times after the onset (no permutations; the tables above use "
                    "the dotted offset). Choose --decoding-offset-s where the curves peak.", "note")
                used = deriv.read_json(root_path(config, naming.group_table(task, "decoding", "summary", ".json"))).get(
                    "ReadoutOffsetS", 0.0)
                body += image(figures.auc_by_offset(offsets, float(used)), "AUC against readout offset")
            electrodes = summary[summary["probe"] == "electrode"]
            overview = (electrodes.assign(significant=electrodes["p_value"].astype(float) < 0.05)
                        .groupby(["target", "positive_class", "feature"], sort=False)
                        .agg(electrodes=("auc_mean", "count"), auc_mean=("auc_mean", "mean"),
                             auc_max=("auc_mean", "max"), fraction_p_below_005=("significant", "mean"))
                        .reset_index())
            overview["why this many electrodes"] = [electrode_count_reason(config, task, f)
                                                    for f in overview["feature"]]
            body += heading("Electrode probes by feature") + table(overview)
            population = summary[summary["probe"] == "population"]
            body += heading("Population probes") + table(population[["subject", "target", "feature", "auc_mean",
                                                                      "auc_sd", "chance_high", "p_value"]])
            generalization = _read_tsv(root_path(config, naming.group_table(task, "generalization", "summary")))
            # a comparison needs somebody who was not trained on: hidden when every subject was
            if generalization is not None and len(generalization) and set(
                    generalization["in_pretraining"].astype(str)) - {"trained", "true"}:
                body += heading("Generalization to subjects held out of pretraining") + table(generalization)
            sections.append(Section(f"Decoding, task {task}", body))
        from .population import report_section as population_section      # workflows/population.py
        if (population := population_section(config, task)) is not None:
            sections.append(population)
        regions = _read_tsv(root_path(config, naming.group_table(task, "dimensionality", "regions")))
        if regions is not None and len(regions):
            sections.append(Section(f"Intrinsic dimensionality, task {task}",
                                    image(figures.dimensionality_by_region(regions), "dimensionality by region")
                                    + table(regions)))
    citation = root_path(config, CITATION)
    if citation.exists():
        sections.append(Section("Methods", preformatted(citation.read_text())))
    path = root_path(config, GROUP_REPORT)
    deriv.atomic_write_bytes(path, render("bids-brainbert: group report", sections,
                                          f"bids-brainbert {__version__}").encode("utf-8"))
    return path


CITATION = "logs/CITATION.md"


def write_citation(config: RunConfig, analysis: str, recordings: list[Recording] | None = None) -> Path:
    """logs/CITATION.md from what the outputs record (model config.json, sidecars), not the current defaults."""
    from ..reports.boilerplate import methods_text, package_versions
    from .embeddings import find_model
    from .provenance import recorded_settings

    model = None
    try:
        source = find_model(config)
        if source is not None:
            model = {"sha256": source.sha256, "path": str(source.path)}
    except BidsBrainbertError:
        model = None
    recordings = recordings or []
    spectrogram = next((spectrogram_paths_for(config, r)["sidecar"] for r in recordings
                        if spectrogram_paths_for(config, r)["sidecar"].exists()), None)
    recorded = recorded_settings(config, sorted({task_of(r) for r in recordings}), spectrogram,
                                 sorted({r.subject for r in recordings}))
    if recorded.model is not None:
        model = {**recorded.model, **(model or {})}
    path = root_path(config, CITATION)
    text = methods_text(recorded.settings, package_versions(), __version__, analysis, model,
                        sections=recorded.sections if recordings else None, random_control=recorded.random_control,
                        readout_offset_s=recorded.readout_offset_s)
    deriv.atomic_write_bytes(path, text.encode("utf-8"))
    return path


__all__ = ["ANALYSES", "FEATURE_CHOICES", "run_decoding", "run_dimensionality", "load_atlas", "run_group_analyses",
           "BRAINBERT_SIZES", "BidsBrainbertError"]
