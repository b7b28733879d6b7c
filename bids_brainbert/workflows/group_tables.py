"""Shared by the group analyses and reports: tasks, the group tables and their sidecars, the decoding targets, event
embedding files and channel tables of the derivative dataset."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..bids import derivatives as deriv
from ..bids import names as naming
from ..bids.discovery import Recording
from ..params import DecodingSettings
from ..errors import RecordingError, UsageError
from ..training import latest_checkpoint


# ------------------------------------------------------------------------------------------------ helpers

def task_of(recording: Recording) -> str:
    return recording.entities.get("task", "none")


def by_task(recordings: list[Recording]) -> dict[str, list[Recording]]:
    out: dict[str, list[Recording]] = defaultdict(list)
    for recording in recordings:
        out[task_of(recording)].append(recording)
    return dict(sorted(out.items()))


def root_path(output_dir: Path, name: str) -> Path:
    return deriv.ensure_inside(output_dir, output_dir / name)


def provenance(random_seed: int) -> dict:
    return {"GeneratedBy": [deriv.generated_by()], "SoftwareVersion": __version__, "RandomSeed": random_seed}


def write_table(output_dir: Path, name: str, table: pd.DataFrame, sidecar: dict) -> Path:
    path = root_path(output_dir, name)
    deriv.atomic_write_tsv(path, table)
    deriv.atomic_write_json(path.with_suffix(".json"), sidecar)
    return path


def events_path(recording: Recording) -> Path:
    return recording.path.with_name(f"{recording.stem_entities}_events.tsv")


def decoding_targets(settings: DecodingSettings, tables: dict[Path, pd.DataFrame]
                     ) -> list[tuple[str, str, str | None]]:
    """(name, positive value, negative value or None = rest) for each target; bad column/values -> UsageError."""
    column = settings.column
    values: set[str] = set()
    for path, table in tables.items():
        if column not in table.columns:
            raise UsageError(f"{path}: no column {column!r} to decode (columns: {', '.join(map(str, table.columns))};"
                             f" see --decoding-column)")
        values |= {str(v) for v in table[column].dropna().tolist()}
    first = next(iter(tables))
    targets = []
    if settings.contrast:
        for contrast in settings.contrast:
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


def model_training_subjects(output_dir: Path, label: str) -> dict[str, str] | None:
    """What pretraining the group model ``label`` did with each subject it saw: 'trained' (a recording in the
    training set) or 'validation only'; None when the model is not in OUTPUT_DIR/models."""
    checkpoint = latest_checkpoint(output_dir / naming.model_dir(label))
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


def read_channels_derivative(path: Path) -> pd.DataFrame:
    """A ``_channels.tsv`` derivative (the rows of a spectrogram or embedding array), not the signals:
    :func:`bids_brainbert.io.loading.read_channel_data` reads those."""
    try:
        return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False, dtype={"name": str})
    except (OSError, pd.errors.ParserError) as exc:
        raise RecordingError(f"{path}: unreadable channels table ({exc})") from None


def _read_tsv(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                       dtype={"subject": str, "electrode": str})
