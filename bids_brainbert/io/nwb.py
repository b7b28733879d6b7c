"""NWB files (``*_ieeg.nwb``) as a lazily read :class:`mne.io.BaseRaw`, through pynwb.

The signal is the file's ``ElectricalSeries`` in ``acquisition`` (several are joined as one recording when they
share rate, start and length), in volts as NWB defines them (``data * conversion * channel_conversion +
offset``). Channel names come from the electrodes table's ``label`` (or ``name``) column, else from channels.tsv
in its row order; channel types, status and PowerLineFrequency come from the BIDS sidecars, as for every format.
Reads go straight to the HDF5 dataset, a bounded block of time at a time, so a batch of channels costs memory
for that batch alone.

What is refused, with one line naming the file: data in other files (external links, virtual or external
datasets: the input dataset is all we read), series at different rates, starts or lengths (one rate per
recording: resample or split it) and timestamps with gaps or jitter beyond half a sample period (a gap's
spectrogram is not a measurement: split the file at its gaps, one BIDS run each).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np

from ..errors import RecordingError

# Bytes of one read from the HDF5 dataset (time rows x the channel range wanted).
_READ_BYTES = 64 * 2**20


@dataclass
class _Series:
    """One ElectricalSeries: where its samples are and how they become volts."""

    name: str
    dataset: str                        # HDF5 path of its data
    gain: np.ndarray                    # conversion x channel_conversion, per column
    offset: float


def _electrode_names(series, fallback: list[str] | None, path: Path) -> list[str]:
    table = series.electrodes.table
    rows = series.electrodes.data[:]
    for column in ("label", "name"):
        if column in table.colnames:
            return [str(table[column][int(row)]) for row in rows]
    if fallback is not None and len(fallback) >= len(rows):
        return list(fallback[:len(rows)])
    raise RecordingError(f"{path}: ElectricalSeries {series.name}: its electrodes table has no label or name column "
                         "and channels.tsv lists fewer channels than it records")


def _sampling(series, path: Path) -> tuple[float, float, int]:
    """(rate in Hz, first sample time in s, number of samples), with the timestamps checked for gaps."""
    n_samples = int(series.data.shape[0])
    if series.rate is not None:
        return float(series.rate), float(series.starting_time or 0.0), n_samples
    times = np.asarray(series.timestamps[:], dtype=np.float64)
    if times.size < 2:
        raise RecordingError(f"{path}: ElectricalSeries {series.name} has fewer than two timestamps")
    steps = np.diff(times)
    period = float(np.median(steps))
    irregular = np.flatnonzero(np.abs(steps - period) > 0.5 * period)
    if period <= 0 or irregular.size:
        at = int(irregular[0]) if irregular.size else 0
        raise RecordingError(
            f"{path}: ElectricalSeries {series.name}: discontinuous timestamps ({irregular.size} step(s) off the "
            f"{period:g} s sample period, the first at {times[at] - times[0]:.3f} s, {steps[at]:g} s long); only "
            "continuous recordings are analysed: split the file at its gaps, one BIDS run each")
    return (n_samples - 1) / float(times[-1] - times[0]), float(times[0]), n_samples


def refuse_outside_references(path: Path) -> None:
    """An HDF5 file can point at other files (external links, virtual or external datasets): reading through
    them would read outside the input dataset, so such a file is refused before anything is read."""
    import h5py

    found: list[str] = []

    def check(name, link):
        if isinstance(link, h5py.ExternalLink):
            found.append(f"{name} (external link to {link.filename})")
        elif isinstance(link, h5py.HardLink):
            item = handle.get(name)
            if isinstance(item, h5py.Dataset) and (item.is_virtual or item.external):
                found.append(f"{name} ({'virtual' if item.is_virtual else 'external'} dataset)")

    with h5py.File(path, "r") as handle:
        handle.visititems_links(check)
    if found:
        raise RecordingError(f"{path}: refers to data in other files ({', '.join(found[:3])}); an NWB recording "
                             "must hold its own data")


class RawNWB(mne.io.BaseRaw):
    """The ElectricalSeries of an NWB file, read on demand. ``fallback_names``: channels.tsv names, used when the
    electrodes table names no channel."""

    def __init__(self, path: Path, fallback_names: list[str] | None = None):
        import pynwb
        from pynwb.ecephys import ElectricalSeries

        path = Path(path)
        refuse_outside_references(path)
        with pynwb.NWBHDF5IO(str(path), "r", load_namespaces=True) as io:
            nwbfile = io.read()
            found = [s for s in nwbfile.acquisition.values() if isinstance(s, ElectricalSeries)]
            if not found:
                raise RecordingError(f"{path}: no ElectricalSeries in the NWB file's acquisition")
            names: list[str] = []
            parts: list[_Series] = []
            timing = {}
            for series in found:
                timing[series.name] = _sampling(series, path)
                channels = _electrode_names(series, None if len(found) > 1 else fallback_names, path)
                if series.data.ndim == 1:
                    channels = channels[:1]
                gain = np.full(len(channels), float(series.conversion))
                if series.channel_conversion is not None:
                    gain = gain * np.asarray(series.channel_conversion[:], dtype=np.float64)
                names += channels
                parts.append(_Series(series.name, series.data.name, gain, float(series.offset or 0.0)))
            session_start = nwbfile.session_start_time
        if len({(round(rate, 6), round(start, 6), n) for rate, start, n in timing.values()}) > 1:
            shown = "; ".join(f"{name}: {rate:g} Hz from {start:g} s, {n} samples"
                              for name, (rate, start, n) in timing.items())
            raise RecordingError(f"{path}: ElectricalSeries at different rates, starts or lengths ({shown}); one rate "
                                 "per recording is analysed: resample the file or split it into recordings")
        sfreq, first_time, n_samples = next(iter(timing.values()))
        info = mne.create_info(names, sfreq, ch_types="misc")
        if session_start is not None:
            start = session_start + dt.timedelta(seconds=first_time)
            with info._unlock():
                info["meas_date"] = start.astimezone(dt.timezone.utc)
        super().__init__(info, last_samps=[n_samples - 1], filenames=[str(path)], preload=False,
                         raw_extras=[{"series": parts}], orig_units={name: "V" for name in names}, verbose="error")

    def _read_segment_file(self, data, idx, fi, start, stop, cals, mult):
        import h5py

        if mult is not None:  # projectors or compensation: never set on iEEG raws read here
            raise ValueError("projection matrices are not supported by this reader")
        series: list[_Series] = self._raw_extras[fi]["series"]
        owner = [(k, column) for k, part in enumerate(series) for column in range(len(part.gain))]
        picks = list(range(*idx.indices(len(owner)))) if isinstance(idx, slice) else [int(i) for i in idx]
        with h5py.File(self._filenames[fi], "r") as handle:
            for k, part in enumerate(series):
                rows = [row for row, pick in enumerate(picks) if owner[pick][0] == k]
                if not rows:
                    continue
                columns = np.array([owner[picks[row]][1] for row in rows])
                dataset = handle[part.dataset]
                low, high = int(columns.min()), int(columns.max()) + 1
                step = max(1, _READ_BYTES // (8 * (high - low)))
                for begin in range(start, stop, step):
                    end = min(stop, begin + step)
                    block = dataset[begin:end] if dataset.ndim == 1 else dataset[begin:end, low:high]
                    block = np.asarray(block, dtype=np.float64).reshape(end - begin, -1)
                    volts = block[:, columns - low].T * part.gain[columns, None] + part.offset
                    data[rows, begin - start:end - start] = volts * cals[rows]
