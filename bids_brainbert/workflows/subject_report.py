"""The per-subject HTML report (``sub-<label>.html``), written at both levels."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..bids import derivatives as deriv
from ..bids import names as naming
from ..bids.discovery import Recording
from ..config import RunConfig
from .embeddings import read_events
from .participant import spectrogram_paths_for
from .group_tables import _read_tsv, embedding_event_files, read_channels_derivative, root_path, task_of
from ..reports.html import Section, heading, image, paragraph, render, table

LOGGER = logging.getLogger("bids_brainbert")


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
    from ..reports import figures  # deferred: matplotlib, loaded only when a figure is drawn

    sections: list[Section] = []
    summary_rows, channel_blocks, spectrogram_imgs, embedding_imgs = [], [], [], []
    ranking = responsive_channels(config, subject, recordings)
    for recording in recordings:
        paths = spectrogram_paths_for(config, recording)
        if not deriv.is_complete(paths):
            summary_rows.append({"recording": recording.relative_path, "status": "no complete derivative"})
            continue
        sidecar = deriv.read_json(paths["sidecar"])
        channels = read_channels_derivative(paths["channels"])
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
                channel_table = read_channels_derivative(paths["data"].with_name(emb_sidecar["ChannelsFile"]))
                names = channel_table["name"].astype(str).tolist()
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
        summary = _read_tsv(root_path(config.output_dir, naming.group_table(task, "decoding", "summary")))
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
        electrodes = _read_tsv(root_path(config.output_dir, naming.group_table(task, "dimensionality", "electrodes")))
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
        summary = _read_tsv(root_path(config.output_dir, naming.group_table(task, "decoding", "summary")))
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
        path = root_path(config.output_dir, naming.subject_report(subject))
        deriv.atomic_write_bytes(path, subject_report(config, subject, subject_recordings).encode("utf-8"))
        written.append(path)
    return written
