"""Read one iEEG recording with mne-bids and pick the channels we analyse.

Only SEEG and ECOG channels are analysed (DBS when asked for); channels marked ``status=bad`` in channels.tsv are
dropped. The electrodes table (coordinates, region, group) is carried along so outputs can keep it.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import mne
import mne_bids
import numpy as np
import pandas as pd

from ..bids.discovery import UNREADABLE_EXTENSIONS, Recording
from ..errors import RecordingError

LOGGER = logging.getLogger("bids_brainbert")
ANALYSED_TYPES = ("seeg", "ecog")


@dataclass
class LoadedRecording:
    """The analysed channels of one recording, in volts."""

    data: np.ndarray                    # (n_channels, n_samples) float64, volts
    sfreq: float                        # Hz
    ch_names: list[str]
    ch_types: list[str]                 # "seeg" | "ecog" | "dbs"
    line_freq: float | None             # Hz, from *_ieeg.json PowerLineFrequency
    dropped: dict[str, str] = field(default_factory=dict)   # channel -> why it is not analysed
    electrodes: pd.DataFrame | None = None                    # electrodes.tsv rows, indexed by name
    electrodes_file: Path | None = None
    coordsystem: dict | None = None                           # coordsystem.json content
    events: pd.DataFrame | None = None                        # onset (s), duration (s), trial_type

    @property
    def groups(self) -> dict[str, str]:
        """Electrode group per channel (electrodes.tsv ``group`` column), for per-grid common averages."""
        if self.electrodes is None or "group" not in self.electrodes.columns:
            return {}
        col = self.electrodes["group"]
        return {name: str(col[name]) for name in self.ch_names if name in col.index and pd.notna(col[name])}


def _sidecar_path(recording: Recording, suffix: str) -> Path:
    return recording.path.with_name(f"{recording.stem_entities}_{suffix}")


def find_electrodes_file(recording: Recording) -> Path | None:
    """The electrodes.tsv that applies to this recording (same subject/session; any space, first sorted)."""
    ent = recording.entities
    prefix = f"sub-{ent['subject']}" + (f"_ses-{ent['session']}" if "session" in ent else "")
    candidates = sorted(recording.path.parent.glob(f"{prefix}*_electrodes.tsv"))
    return candidates[0] if candidates else None


def read_line_frequency(recording: Recording) -> float | None:
    sidecar = _sidecar_path(recording, "ieeg.json")
    if not sidecar.exists():
        return None
    try:
        value = json.loads(sidecar.read_text(encoding="utf-8")).get("PowerLineFrequency")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{sidecar}: not valid JSON ({exc})") from None
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    return None


def read_raw(recording: Recording) -> mne.io.BaseRaw:
    """mne-bids read of the recording; any reader failure becomes a one-line RecordingError."""
    if recording.extension in UNREADABLE_EXTENSIONS:
        raise RecordingError(f"{recording.path}: {recording.extension} recordings cannot be read (supported: "
                             "EDF, BDF, BrainVision, EEGLAB)")
    bids_path = mne_bids.get_bids_path_from_fname(recording.path, check=False)
    bids_path.update(root=_root_of(recording), datatype="ieeg")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = mne_bids.read_raw_bids(bids_path, verbose="error")
            raw.load_data(verbose="error")
    except Exception as exc:  # readers raise many types; the user needs the file and the reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecordingError(f"{recording.path}: cannot be read ({reason})") from exc
    return raw


def _root_of(recording: Recording) -> Path:
    parts = recording.path.parts
    idx = max(i for i, p in enumerate(parts) if p == f"sub-{recording.subject}")
    return Path(*parts[:idx])


def select_channels(raw: mne.io.BaseRaw, include_dbs: bool) -> tuple[list[str], dict[str, str]]:
    """Names of the channels to analyse, and why each other channel is left out."""
    wanted = ANALYSED_TYPES + (("dbs",) if include_dbs else ())
    types = raw.get_channel_types()
    keep, dropped = [], {}
    for name, ch_type in zip(raw.ch_names, types):
        if name in raw.info["bads"]:
            dropped[name] = "marked bad in channels.tsv"
        elif ch_type not in wanted:
            hint = " (use --include-dbs)" if ch_type == "dbs" else ""
            dropped[name] = f"channel type {ch_type} not analysed{hint}"
        else:
            keep.append(name)
    return keep, dropped


def read_electrodes(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False, dtype={"name": str})
    if "name" not in table.columns:
        raise RecordingError(f"{path}: electrodes.tsv has no 'name' column")
    return table.set_index("name", drop=False)


def events_from_raw(raw: mne.io.BaseRaw) -> pd.DataFrame:
    ann = raw.annotations
    return pd.DataFrame({"onset": np.asarray(ann.onset, float) - raw.first_time,
                         "duration": np.asarray(ann.duration, float),
                         "trial_type": list(ann.description)})


# iEEG lives in microvolts to a few millivolts; a median channel deviation above this means wrong units.
IMPLAUSIBLE_AMPLITUDE_V = 0.01


def warn_if_implausible_amplitude(recording: Recording, data: np.ndarray) -> float:
    """Median over channels of the robust standard deviation (volts); warns when it cannot be iEEG in volts."""
    deviation = 1.4826 * np.median(np.abs(data - np.median(data, axis=1, keepdims=True)), axis=1)
    typical = float(np.median(deviation)) if deviation.size else 0.0
    if typical > IMPLAUSIBLE_AMPLITUDE_V:
        LOGGER.warning("%s: median channel amplitude %.3g V is implausible for iEEG (expected microvolts to "
                       "millivolts): check the units in channels.tsv and the file header", recording.path, typical)
    return typical


def load_recording(recording: Recording, include_dbs: bool = False) -> LoadedRecording:
    """Load the analysed channels of a recording. Raises RecordingError with a one-line reason."""
    raw = read_raw(recording)
    keep, dropped = select_channels(raw, include_dbs)
    if not keep:
        kinds = "SEEG/ECOG" + ("/DBS" if include_dbs else "")
        raise RecordingError(f"{recording.path}: no usable {kinds} channel (all other types or marked bad)")
    picked = raw.copy().pick(keep)
    data = picked.get_data().astype(np.float64, copy=False)  # MNE stores SI units: volts
    warn_if_implausible_amplitude(recording, data)
    electrodes_file = find_electrodes_file(recording)
    coordsystem = None
    if electrodes_file is not None:
        candidate = electrodes_file.with_name(electrodes_file.name.replace("_electrodes.tsv", "_coordsystem.json"))
        if candidate.exists():
            try:
                coordsystem = json.loads(candidate.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                LOGGER.warning("%s: not valid JSON, coordinate system not recorded", candidate)
    return LoadedRecording(
        data=data,
        sfreq=float(raw.info["sfreq"]),
        ch_names=list(picked.ch_names),
        ch_types=list(picked.get_channel_types()),
        line_freq=read_line_frequency(recording),
        dropped=dropped,
        electrodes=read_electrodes(electrodes_file),
        electrodes_file=electrodes_file,
        coordsystem=coordsystem,
        events=events_from_raw(raw),
    )
