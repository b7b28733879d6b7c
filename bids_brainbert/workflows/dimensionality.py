"""Group level ``--analysis dimensionality``: intrinsic dimensionality of the embeddings (and spectrograms) by
electrode and region, into ``task-<task>_desc-dimensionality_*`` tables and a figure."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from .. import seeds
from ..analyses.dimensionality import MIN_EXAMPLES, draw_examples, intrinsic_dimension
from ..analyses.regions import Atlas
from ..bids import derivatives as deriv
from ..bids import names as naming
from ..bids.discovery import Recording
from ..config import RunConfig
from .participant import spectrogram_paths_for
from .decoding import region_lookup
from .group_tables import by_task, provenance, read_channels_derivative, root_path, write_table

LOGGER = logging.getLogger("bids_brainbert")


# ------------------------------------------------------------------------------------------------ dimensionality

def run_dimensionality(config: RunConfig, recordings: list[Recording], atlas: Atlas | None = None) -> list[Path]:
    """Intrinsic dimensionality per electrode of each embedding model's sliding-window embeddings, and of the
    spectrogram (log10 magnitude averaged over the same windows) as control, summarised by region."""
    from ..reports import figures  # deferred: matplotlib, loaded only when a figure is drawn

    rng = np.random.default_rng([config.random_seed, seeds.DIMENSIONALITY])
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
                channels = read_channels_derivative(paths["channels"])
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
                    names = read_channels_derivative(paths["data"].with_name(sidecar["ChannelsFile"]))["name"].tolist()
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
            regions = region_lookup(channels_table, subject_recordings[0], atlas)
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
        base = {**provenance(config.random_seed), "Task": task, "Threshold": config.dimensionality_threshold,
                "MaxExamples": config.dimensionality_examples, "Features": info,
                "RegionSources": "region column of electrodes.tsv (via the channels table) when present, else "
                                 f"the atlas {atlas.source if atlas else '(none given)'}, else unknown"}
        written.append(write_table(config.output_dir, naming.group_table(task, "dimensionality", "electrodes"), electrodes, {
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
        written.append(write_table(config.output_dir, naming.group_table(task, "dimensionality", "regions"), regions_table, {
            **base, "Description": "Intrinsic dimensionality summarised by brain region and feature",
            "max_dimension_mean": {"Description": "Mean ceiling min(n_examples - 1, n_features) of the electrodes"},
            "n_at_ceiling": {"Description": "Electrodes whose dimension equals their ceiling (a lower bound)"}}))
        png = figures.dimensionality_by_region(regions_table)
        path = root_path(config.output_dir, naming.figure(task, "dimensionality"))
        deriv.atomic_write_bytes(path, png)
        written.append(path)
    return written
