"""Read one iEEG recording with mne-bids and pick the channels we analyse.

Only SEEG and ECOG channels are analysed (DBS when asked for); channels marked ``status=bad`` in channels.tsv are
dropped. The electrodes table (coordinates, region, group) is carried along so outputs can keep it.

Before mne-bids reads a recording its BIDS tables are checked (UTF-8, one field per header column, required
columns, unique channel names that match the file, a complete EDF/BDF/BrainVision data file), so that a
malformed input fails with one line naming the offending file instead of a reader's traceback. After reading,
channels that carry no usable signal (non-finite samples, a constant value, amplifier saturation) are left out
like ``status=bad`` ones, with the reason recorded; a recording with no usable channel left fails.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import stat
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import mne
import mne_bids
import numpy as np
import pandas as pd

from ..bids.containment import check_brainvision_references, warn_about_links_leaving
from ..bids.discovery import COMPANION_OF, UNREADABLE_EXTENSIONS, Recording
from ..errors import RecordingError
from ..params import SpectrogramParams
from . import formats

LOGGER = logging.getLogger("bids_brainbert")
ANALYSED_TYPES = ("seeg", "ecog")


def _channel_groups(electrodes: pd.DataFrame | None, ch_names: list[str]) -> dict[str, str]:
    """Electrode group per channel (electrodes.tsv ``group`` column), for per-grid common averages."""
    if electrodes is None or "group" not in electrodes.columns:
        return {}
    col = electrodes["group"]
    return {name: str(col[name]) for name in ch_names if name in col.index and pd.notna(col[name])}


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
    def n_samples(self) -> int:
        return int(self.data.shape[1])

    @property
    def groups(self) -> dict[str, str]:
        """Electrode group per channel (electrodes.tsv ``group`` column), for per-grid common averages."""
        return _channel_groups(self.electrodes, self.ch_names)


@dataclass
class OpenedRecording:
    """The analysed channels of one recording with the signal left on disk: :meth:`read` gets a few channels at
    a time, so that memory does not grow with channels x samples (an hour of 128 channels is 7.5 GB in float64).
    Fields as in :class:`LoadedRecording`."""

    raw: mne.io.BaseRaw                 # not preloaded
    sfreq: float
    n_samples: int
    ch_names: list[str]
    ch_types: list[str]
    line_freq: float | None
    dropped: dict[str, str] = field(default_factory=dict)
    electrodes: pd.DataFrame | None = None
    electrodes_file: Path | None = None
    coordsystem: dict | None = None
    events: pd.DataFrame | None = None

    @property
    def groups(self) -> dict[str, str]:
        return _channel_groups(self.electrodes, self.ch_names)

    def read(self, indices: list[int]) -> np.ndarray:
        """Channels ``indices`` (into ``ch_names``) as (len(indices), n_samples) float64 volts."""
        return read_channel_data(self.raw, [self.ch_names[i] for i in indices])

    def load(self) -> LoadedRecording:
        """Every channel in memory."""
        return LoadedRecording(
            data=self.read(list(range(len(self.ch_names)))), sfreq=self.sfreq, ch_names=list(self.ch_names),
            ch_types=list(self.ch_types), line_freq=self.line_freq, dropped=dict(self.dropped),
            electrodes=self.electrodes, electrodes_file=self.electrodes_file, coordsystem=self.coordsystem,
            events=self.events)


# Signal read at once (float64): about 4 channels of an hour at 2048 Hz. Filtering and resampling make a few
# copies of a channel on top, so a recording is processed in well under a gigabyte whatever its size.
BATCH_BYTES = 256 * 2**20
# Channels between two wanted ones that are read anyway: readers are fast on contiguous channels (one pass over
# the file) and slow on scattered ones.
_READ_GAP = 8


def channels_per_batch(n_samples: int, batch_bytes: int | None = None) -> int:
    """How many float64 channels of ``n_samples`` fit in ``batch_bytes`` (default :data:`BATCH_BYTES`; at least
    one)."""
    return max(1, (batch_bytes or BATCH_BYTES) // max(1, 8 * n_samples))


def read_channel_data(raw: mne.io.BaseRaw, names: list[str]) -> np.ndarray:
    """``names`` from a raw that need not be preloaded, as (len(names), n_times) float64 volts (SI units, as MNE
    stores them). Neighbouring channels are read as one contiguous block."""
    index = {name: i for i, name in enumerate(raw.ch_names)}
    wanted = [index[name] for name in names]
    out = np.empty((len(wanted), raw.n_times), dtype=np.float64)
    if not wanted:
        return out
    order = sorted(range(len(wanted)), key=wanted.__getitem__)
    run: list[int] = []
    for position in order + [None]:
        if position is not None and (not run or wanted[position] - wanted[run[-1]] <= _READ_GAP):
            run.append(position)
            continue
        first = wanted[run[0]]
        block = raw.get_data(picks=list(range(first, wanted[run[-1]] + 1)), verbose="error")
        for p in run:
            out[p] = block[wanted[p] - first]
        del block
        run = [position] if position is not None else []
    return out


def find_electrodes_file(recording: Recording) -> Path | None:
    """The electrodes.tsv that applies to this recording (same subject/session; any space, first sorted)."""
    ent = recording.entities
    prefix = f"sub-{ent['subject']}" + (f"_ses-{ent['session']}" if "session" in ent else "")
    candidates = sorted(recording.path.parent.glob(f"{prefix}*_electrodes.tsv"))
    return candidates[0] if candidates else None


def find_sidecar(recording: Recording, suffix: str) -> Path | None:
    """The ``*_<suffix>`` file that applies to ``recording`` by the BIDS inheritance principle, within its folder:
    the one whose entities are a subset of the recording's and the most specific of those (as mne-bids does)."""
    own = set(recording.stem_entities.split("_"))
    best: tuple[int, Path] | None = None
    for candidate in recording.path.parent.glob(f"*_{suffix}"):
        entities = candidate.name[: -len(suffix) - 1].split("_")
        if set(entities) <= own and (best is None or len(entities) > best[0]):
            best = (len(entities), candidate)
    return best[1] if best else None


def require_regular_file(path: Path) -> None:
    """Refuse a FIFO, device, socket or folder where a file is expected, without opening it: reading a FIFO
    blocks until someone writes to it (a hang), a device may never end."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise RecordingError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a plain file")
        raise RecordingError(f"{path}: not a regular file ({kind}); refused without reading it")


def _read_bytes(path: Path) -> bytes:
    require_regular_file(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RecordingError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_json_object(path: Path) -> dict:
    """A BIDS JSON sidecar, which must hold one JSON object."""
    content = _read_bytes(path)
    try:
        value = json.loads(content.decode("utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise RecordingError(f"{path}: not valid JSON for a sidecar (nested too deeply)") from None
    if not isinstance(value, dict):
        raise RecordingError(f"{path}: must hold a JSON object (found a JSON {type(value).__name__})")
    return value


def read_bids_tsv(path: Path, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """A BIDS TSV as strings ("n/a" kept), after checking what pandas or mne-bids would silently accept or
    report without naming the file: UTF-8, a header, the same number of fields on every line, required columns."""
    content = _read_bytes(path)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecordingError(f"{path}: not UTF-8 (byte 0x{content[exc.start]:02x} at offset {exc.start}); BIDS "
                             "text files must be UTF-8 encoded") from None
    lines = [line.rstrip("\r") for line in text.rstrip("\r\n").split("\n")]
    if not lines[0].strip():
        raise RecordingError(f"{path}: empty table (no header line)")
    header = lines[0].split("\t")
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(header):
            raise RecordingError(f"{path}: line {number} has {len(fields)} tab-separated fields but the header has "
                                 f"{len(header)} (ragged table)")
    missing = [column for column in required if column not in header]
    if missing:
        raise RecordingError(f"{path}: missing required column(s) {', '.join(missing)}")
    return pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)


def _duplicates(names: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({name for name in names if name in seen or seen.add(name)})


def read_channels_table(recording: Recording) -> tuple[Path, pd.DataFrame]:
    path = find_sidecar(recording, "channels.tsv")
    if path is None:
        raise RecordingError(f"{recording.path}: no channels.tsv for this recording (required for iEEG: it gives "
                             "the channel types)")
    table = read_bids_tsv(path, ("name", "type"))
    duplicated = _duplicates(table["name"].tolist())
    if duplicated:
        raise RecordingError(f"{path}: duplicate channel name(s) {', '.join(duplicated[:5])}")
    return path, table


def read_events_table(recording: Recording) -> tuple[Path, pd.DataFrame] | None:
    """events.tsv of the recording, with numeric onsets checked (None when there is none)."""
    path = find_sidecar(recording, "events.tsv")
    if path is None:
        return None
    table = read_bids_tsv(path, ("onset", "duration"))
    onsets = pd.to_numeric(table["onset"], errors="coerce")
    if onsets.isna().any():
        row = int(np.flatnonzero(onsets.isna().to_numpy())[0])
        raise RecordingError(f"{path}: onset {table['onset'].iloc[row]!r} on line {row + 2} is not a number")
    if not np.isfinite(onsets.to_numpy(dtype=float)).all():
        row = int(np.flatnonzero(~np.isfinite(onsets.to_numpy(dtype=float)))[0])
        raise RecordingError(f"{path}: onset {table['onset'].iloc[row]!r} on line {row + 2} is not a finite number")
    given = table["duration"] != "n/a"          # BIDS allows n/a for an unknown duration
    durations = pd.to_numeric(table["duration"].where(given, "0"), errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(durations) | (durations < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise RecordingError(f"{path}: duration {table['duration'].iloc[row]!r} on line {row + 2} is not a "
                             "non-negative finite number of seconds (or n/a)")
    return path, table


def check_events_inside(path: Path, table: pd.DataFrame, duration_s: float) -> None:
    """Every event onset must lie within the recording: events.tsv of another run is a classic mix-up. A duration
    far beyond the recording's length is refused too (the reader turns durations into sample counts; a last
    event running past the end, or a rounded block length, is fine)."""
    onsets = pd.to_numeric(table["onset"]).to_numpy(dtype=float)
    outside = (onsets < 0) | (onsets > duration_s)
    if outside.any():
        first = float(onsets[outside][0])
        raise RecordingError(f"{path}: {int(outside.sum())} event onset(s) outside the recording (e.g. {first:g} s; "
                             f"the recording lasts {duration_s:.3f} s): events of another run?")
    given = table["duration"] != "n/a"
    durations = pd.to_numeric(table["duration"].where(given, "0"), errors="coerce").to_numpy(dtype=float)
    too_long = durations > 2 * duration_s + 1.0
    if too_long.any():
        row = int(np.flatnonzero(too_long)[0])
        raise RecordingError(f"{path}: duration {table['duration'].iloc[row]!r} on line {row + 2} is far longer than "
                             f"the recording ({duration_s:.3f} s)")


def _check_data_file_complete(recording: Recording) -> None:
    """A truncated EDF/BDF (fewer data records than its header declares) or BrainVision file (a partial
    sample) is read by MNE without complaint, silently shorter: refuse it."""
    path = recording.path
    if recording.extension == ".mefd":   # a MEF3 session is a folder; its reader checks the files inside
        if not path.is_dir():
            raise RecordingError(f"{path}: a MEF3 session must be a folder of channel folders, not a file")
        return
    require_regular_file(path)
    if recording.extension in (".edf", ".bdf"):
        with open(path, "rb") as fh:
            header = fh.read(256)
            try:
                header_bytes, n_records, n_signals = int(header[184:192]), int(header[236:244]), int(header[252:256])
                record_s = float(header[244:252])
                fh.seek(256 + n_signals * 216)
                samples = [int(fh.read(8)) for _ in range(n_signals)]
            except ValueError:
                raise RecordingError(f"{path}: cannot be read (malformed {recording.extension[1:].upper()} "
                                     "header)") from None
        if not (math.isfinite(record_s) and record_s > 0):
            raise RecordingError(f"{path}: data record duration {header[244:252].decode('ascii', 'replace').strip()!r}"
                                 " s in the header must be a positive number (the sampling rate is undefined)")
        if n_records < 0:  # -1: unknown (recording not closed); the reader infers it from the size
            return
        sample_bytes = 3 if recording.extension == ".bdf" else 2
        expected = header_bytes + n_records * sum(samples) * sample_bytes
        size = path.stat().st_size
        if size < expected:
            record_bytes = max(sum(samples) * sample_bytes, 1)
            raise RecordingError(f"{path}: truncated: its header declares {n_records} data records but the file "
                                 f"holds {max(size - header_bytes, 0) // record_bytes} ({size} of {expected} bytes)")
    elif recording.extension == ".vhdr":
        text = path.read_text(encoding="utf-8", errors="replace")
        found = {key: re.search(rf"^{key}\s*=\s*(.+?)\s*$", text, re.MULTILINE)
                 for key in ("DataFile", "NumberOfChannels", "BinaryFormat", "DataFormat")}
        if found["DataFile"] is None:
            raise RecordingError(f"{path}: cannot be read (no DataFile in the BrainVision header)")
        data_file = path.parent / found["DataFile"].group(1)
        if not data_file.exists():
            raise RecordingError(f"{path}: cannot be read: its data file {data_file.name} (DataFile in the header) "
                                 "does not exist")
        require_regular_file(data_file)
        interval = re.search(r"^SamplingInterval\s*=\s*(.+?)\s*$", text, re.MULTILINE)
        try:
            interval_us = float(interval.group(1)) if interval else None
        except ValueError:
            interval_us = math.nan
        if interval_us is not None and not (math.isfinite(interval_us) and interval_us > 0):
            raise RecordingError(f"{path}: SamplingInterval {interval.group(1)!r} (microseconds) must be a positive "
                                 "number (the sampling rate is undefined)")
        marker = re.search(r"^MarkerFile\s*=\s*(.+?)\s*$", text, re.MULTILINE)
        if marker is not None and (path.parent / marker.group(1)).exists():
            check_brainvision_markers(path.parent / marker.group(1))
        if found["DataFormat"] and found["DataFormat"].group(1).upper() != "BINARY":
            return
        width = {"INT_16": 2, "INT_32": 4, "IEEE_FLOAT_32": 4}.get(
            found["BinaryFormat"].group(1).upper() if found["BinaryFormat"] else "", 0)
        count = found["NumberOfChannels"].group(1) if found["NumberOfChannels"] else ""
        n_channels = int(count) if count.isdigit() else 0  # a malformed count is left to the reader to report
        if width and n_channels and data_file.stat().st_size % (width * n_channels):
            raise RecordingError(f"{data_file}: truncated: {data_file.stat().st_size} bytes is not a whole number of "
                                 f"samples of {n_channels} channels x {width} bytes")


_MARKER = re.compile(r"^Mk\d+=[^,]*,[^,]*,\s*\d+\s*,\s*-?\d+\s*,\s*-?\d+\s*(,.*)?$")


def check_brainvision_markers(path: Path) -> None:
    """A BrainVision marker file (.vmrk) the reader would choke on, or read as nonsense, is named: it must be
    text with the marker header, and each ``Mk<n>=type,description,position,size,channel`` line whole."""
    content = _read_bytes(path)
    text = content.decode("utf-8", errors="replace") if b"\0" not in content else ""
    lines = [line.strip() for line in text.replace("\r", "").split("\n")]
    if not lines or "Marker File" not in lines[0]:
        raise RecordingError(f"{path}: not a BrainVision marker file (no 'Brain Vision Data Exchange Marker File' "
                             "header line)")
    for number, line in enumerate(lines, start=1):
        if line.startswith("Mk") and not _MARKER.match(line):
            raise RecordingError(f"{path}: line {number} is not a marker "
                                 "(Mk<n>=type,description,position,size,channel)")


def check_electrodes_table(path: Path) -> None:
    """electrodes.tsv: unique names, and coordinates that are numbers (or n/a)."""
    table = read_bids_tsv(path, ("name",))
    duplicated = _duplicates(table["name"].tolist())
    if duplicated:
        raise RecordingError(f"{path}: duplicate electrode name(s) {', '.join(duplicated[:5])}")
    for column in ("x", "y", "z"):
        if column not in table.columns:
            continue
        given = table[column] != "n/a"
        values = pd.to_numeric(table[column].where(given, "0"), errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise RecordingError(f"{path}: {column} coordinate {table[column].iloc[row]!r} on line {row + 2} is not "
                                 "a number (or n/a)")


def _file_channel_names(recording: Recording) -> tuple[list[str], float]:
    """Channel names in the data file's own header (the reader renames duplicates: those are refused), and the
    recording's duration in seconds."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = formats.read_raw_file(recording.path)
    for warning in caught:
        if "not unique" in str(warning.message) or "duplicate" in str(warning.message).lower():
            names = re.search(r"\{(.+?)\}", str(warning.message))
            raise RecordingError(f"{recording.path}: duplicate channel name(s) in the file header "
                                 f"{names.group(1) if names else ''}".rstrip())
    return list(raw.ch_names), raw.n_times / raw.info["sfreq"]


def check_bids_files(recording: Recording) -> tuple[Path, pd.DataFrame] | None:
    """Check the recording's sidecars and data file before mne-bids reads them; returns its events table."""
    warn_about_links_leaving(_root_of(recording), recording.path, recording.subject)
    if recording.extension == ".vhdr":
        check_brainvision_references(recording.path)
    read_line_frequency(recording)   # the sidecar is an object and its PowerLineFrequency usable
    channels_path, channels = read_channels_table(recording)
    events = read_events_table(recording)
    electrodes = find_electrodes_file(recording)  # mne-bids reads it (and its coordsystem.json) for the montage
    if electrodes is not None:
        check_electrodes_table(electrodes)
        coordsystem = electrodes.with_name(electrodes.name.replace("_electrodes.tsv", "_coordsystem.json"))
        if coordsystem.exists():
            read_json_object(coordsystem)
    participants = _root_of(recording) / "participants.tsv"   # mne-bids reads the subject's row
    if participants.exists():
        read_bids_tsv(participants, ("participant_id",))
    _check_data_file_complete(recording)
    try:
        in_file, duration_s = _file_channel_names(recording)
    except RecordingError:
        raise
    except Exception as exc:  # readers raise many types; the user needs the file and the reason
        raise RecordingError(f"{recording.path}: cannot be read ({_first_line(exc)})") from exc
    in_table = channels["name"].tolist()
    if in_file != in_table and set(in_file) != set(in_table):
        only_table = [n for n in in_table if n not in set(in_file)]
        only_file = [n for n in in_file if n not in set(in_table)]
        raise RecordingError(f"{channels_path}: channel names do not match {recording.path.name} (only in "
                             f"channels.tsv: {', '.join(only_table[:5]) or '-'}; only in the file: "
                             f"{', '.join(only_file[:5]) or '-'})")
    if events is not None:   # before mne-bids reads them: it converts onsets and durations to sample numbers
        check_events_inside(*events, duration_s=duration_s)
    return events


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_line_frequency(recording: Recording) -> float | None:
    """PowerLineFrequency (Hz) from the recording's ``*_ieeg.json``; None when it has none or says "n/a" (BIDS:
    unknown; no notch, with a warning). Anything else that is not a positive finite number is refused, naming
    the sidecar."""
    sidecar = find_sidecar(recording, "ieeg.json")
    if sidecar is None:
        return None
    value = read_json_object(sidecar).get("PowerLineFrequency")
    if value is None or value == "n/a":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise RecordingError(f"{sidecar}: PowerLineFrequency {json.dumps(value)[:40]} must be a positive "
                             "frequency in Hz (50 or 60) or \"n/a\"")
    return float(value)


@contextmanager
def _without_sidecar_locks() -> Iterator[None]:
    """Let mne-bids read without its file locks.

    Recent mne-bids (0.20 here) locks every sidecar it opens, even to read, by creating ``<file>.lock`` beside
    it: that writes into the input dataset (which must only be read), and a run killed meanwhile leaves the lock
    file there. We only read, and never concurrently with a writer, so reads go unlocked. This uses mne-bids' private
    ``_fileio._get_lock_context``; ``tests/test_resume.py`` proves no file under the input is opened for writing,
    so a change there is caught."""
    try:
        from mne_bids import _fileio
    except ImportError:  # an mne-bids without locking
        yield
        return
    locked = getattr(_fileio, "_get_lock_context", None)
    if locked is None:
        yield
        return

    def unlocked(path, *, timeout=None, lock=True):
        return locked(path, timeout=timeout, lock=False)

    _fileio._get_lock_context = unlocked
    try:
        yield
    finally:
        _fileio._get_lock_context = locked


def refuse_unreadable(recording: Recording) -> None:
    """A format we cannot read, or a data file without its header (BrainVision .eeg/.vmrk, EEGLAB .fdt)."""
    if recording.extension in UNREADABLE_EXTENSIONS:
        raise RecordingError(f"{recording.path}: {recording.extension} recordings cannot be read (supported: "
                             "EDF, BDF, BrainVision, EEGLAB, MEF3, NWB)")
    if recording.extension in COMPANION_OF:
        header = recording.path.name[: -len(recording.extension)] + COMPANION_OF[recording.extension]
        raise RecordingError(f"{recording.path}: data file without its header {header} (the recording cannot be "
                             "read without it)")


def read_raw(recording: Recording, checked: bool = False, preload: bool = True) -> mne.io.BaseRaw:
    """mne-bids read of the recording; any reader failure becomes a one-line RecordingError.

    ``checked``: :func:`check_bids_files` was already run. ``preload=False`` leaves the signal on disk."""
    refuse_unreadable(recording)
    if not checked:
        check_bids_files(recording)
    bids_path = mne_bids.get_bids_path_from_fname(recording.path, check=False)
    bids_path.update(root=_root_of(recording), datatype="ieeg")
    try:
        with warnings.catch_warnings(), _without_sidecar_locks(), formats.extra_readers():
            warnings.simplefilter("ignore")
            raw = mne_bids.read_raw_bids(bids_path, verbose="error")
            if preload:
                raw.load_data(verbose="error")
    except Exception as exc:  # readers raise many types; the user needs the file and the reason
        raise RecordingError(f"{recording.path}: cannot be read ({_first_line(exc)})") from exc
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
    read_bids_tsv(path, ("name",))  # UTF-8, rectangular, a name column (checked before mne-bids reads it too)
    table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False, dtype={"name": str})
    return table.set_index("name", drop=False)


def events_from_raw(raw: mne.io.BaseRaw) -> pd.DataFrame:
    ann = raw.annotations
    return pd.DataFrame({"onset": np.asarray(ann.onset, float) - raw.first_time,
                         "duration": np.asarray(ann.duration, float),
                         "trial_type": list(ann.description)})


# iEEG lives in microvolts to a few millivolts; a median channel deviation above this means wrong units.
IMPLAUSIBLE_AMPLITUDE_V = 0.01


def channel_deviation(data: np.ndarray) -> np.ndarray:
    """Robust standard deviation (1.4826 x median absolute deviation) of each row, one row at a time (the
    medians copy their input: a whole batch would be copied three times)."""
    return np.array([1.4826 * np.median(np.abs(row - np.median(row))) for row in data], dtype=np.float64)


def warn_if_implausible_amplitude(recording: Recording, data: np.ndarray | None = None,
                                  deviation: np.ndarray | None = None) -> float:
    """Median over channels of the robust standard deviation (volts); warns when it cannot be iEEG in volts.
    Give the signal ``data`` or its per-channel ``deviation`` (:func:`channel_deviation`)."""
    if deviation is None:
        deviation = channel_deviation(data)
    typical = float(np.median(deviation)) if deviation.size else 0.0
    if typical > IMPLAUSIBLE_AMPLITUDE_V:
        LOGGER.warning("%s: median channel amplitude %.3g V is implausible for iEEG (expected microvolts to "
                       "millivolts): check the units in channels.tsv and the file header", recording.path, typical)
    return typical


def check_fits_analysis(recording: Recording, loaded: LoadedRecording, spectrogram: SpectrogramParams,
                        sampling_rate: float, window_s: float) -> None:
    """The recording must hold one analysis window of ``window_s`` seconds (BrainBERT's input,
    ``--embedding-window-s``) and its own sampling rate must resolve the highest analysed frequency: resampling
    to ``sampling_rate`` Hz (0: its own) adds no content above the recording's Nyquist frequency, so a
    spectrogram there would be empty, not measured."""
    duration = loaded.n_samples / loaded.sfreq
    if duration < window_s:
        raise RecordingError(f"{recording.path}: recording is {duration:.3g} s long, shorter than one "
                             f"{window_s:g} s analysis window (--embedding-window-s)")
    if spectrogram.kind == "stft":
        rate = sampling_rate or loaded.sfreq
        highest, option = (spectrogram.stft.n_bins - 1) * rate / spectrogram.stft.nperseg, "--stft-n-bins"
    else:
        highest, option = spectrogram.superlet.freq_max, "--superlet-freq-max"
    nyquist = loaded.sfreq / 2
    if highest >= nyquist:
        raise RecordingError(f"{recording.path}: sampling rate {loaded.sfreq:g} Hz (Nyquist {nyquist:g} Hz) cannot "
                             f"resolve the highest {spectrogram.kind} frequency {highest:g} Hz (lower {option})")


# A channel is saturated (clipped) when more than this fraction of its samples sit exactly on its minimum or
# maximum value: a continuous signal touches its extremes at a handful of samples, an amplifier at its rails
# stays there for whole stretches.
CLIPPED_FRACTION = 0.01


def unusable_channels(names: list[str], data: np.ndarray) -> dict[str, str]:
    """Channels without a usable signal, and why: any non-finite sample (the transform would spread it over the
    whole channel), a constant value (disconnected, or zeroed by the acquisition software) or saturation."""
    reasons: dict[str, str] = {}
    for name, row in zip(names, data):
        finite = np.isfinite(row)
        if not finite.all():
            reasons[name] = f"{int((~finite).sum())} of {row.size} samples are NaN or infinite"
            continue
        low, high = row.min(), row.max()
        if low == high:
            reasons[name] = "flat (constant signal)"
            continue
        at_limits = int(np.count_nonzero((row == low) | (row == high)))
        if at_limits > CLIPPED_FRACTION * row.size:
            reasons[name] = (f"clipped ({100 * at_limits / row.size:.1f}% of samples at its minimum or maximum: "
                             "amplifier saturation)")
    return reasons


def open_recording(recording: Recording, include_dbs: bool = False,
                   batch_channels: int | None = None) -> OpenedRecording:
    """Check a recording and find its usable analysed channels, reading the signal ``batch_channels`` channels at
    a time (default: :func:`channels_per_batch`); the signal stays on disk. Raises RecordingError with a one-line
    reason."""
    refuse_unreadable(recording)   # before its sidecars matter
    events_table = check_bids_files(recording)
    raw = read_raw(recording, checked=True, preload=False)
    if events_table is not None:
        check_events_inside(*events_table, duration_s=raw.n_times / raw.info["sfreq"])
    keep, dropped = select_channels(raw, include_dbs)
    kinds = "SEEG/ECOG" + ("/DBS" if include_dbs else "")
    if not keep:
        raise RecordingError(f"{recording.path}: no usable {kinds} channel (all other types or marked bad)")
    batch = batch_channels or channels_per_batch(raw.n_times)
    unusable: dict[str, str] = {}
    deviation = []
    for start in range(0, len(keep), batch):
        names = keep[start:start + batch]
        data = read_channel_data(raw, names)
        found = unusable_channels(names, data)
        unusable.update(found)
        deviation.append(channel_deviation(data[[i for i, name in enumerate(names) if name not in found]]))
        del data
    if unusable:
        if len(unusable) == len(keep):
            shown = "; ".join(f"{name}: {reason}" for name, reason in list(unusable.items())[:3])
            more = f" and {len(unusable) - 3} more" if len(unusable) > 3 else ""
            raise RecordingError(f"{recording.path}: no usable {kinds} channel ({shown}{more})")
        LOGGER.warning("%s: %d channel(s) without a usable signal left out: %s", recording.path, len(unusable),
                       "; ".join(f"{name}: {reason}" for name, reason in unusable.items()))
        dropped.update(unusable)
    warn_if_implausible_amplitude(recording, deviation=np.concatenate(deviation))
    usable = [name for name in keep if name not in unusable]
    types = dict(zip(raw.ch_names, raw.get_channel_types()))
    electrodes_file = find_electrodes_file(recording)
    coordsystem = None
    if electrodes_file is not None:
        candidate = electrodes_file.with_name(electrodes_file.name.replace("_electrodes.tsv", "_coordsystem.json"))
        if candidate.exists():  # valid JSON: check_bids_files made sure
            coordsystem = read_json_object(candidate)
    return OpenedRecording(
        raw=raw,
        sfreq=float(raw.info["sfreq"]),
        n_samples=int(raw.n_times),
        ch_names=usable,
        ch_types=[types[name] for name in usable],
        line_freq=read_line_frequency(recording),
        dropped=dropped,
        electrodes=read_electrodes(electrodes_file),
        electrodes_file=electrodes_file,
        coordsystem=coordsystem,
        events=events_from_raw(raw),
    )


def load_recording(recording: Recording, include_dbs: bool = False) -> LoadedRecording:
    """Load the analysed channels of a recording into memory. Raises RecordingError with a one-line reason."""
    return open_recording(recording, include_dbs=include_dbs).load()
