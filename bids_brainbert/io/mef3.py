"""MEF3 sessions (``*_ieeg.mefd`` folders) as a lazily read :class:`mne.io.BaseRaw`, through mef3io.

mef3io is the maintained MEF 3.0 implementation (Apache-2.0, compiled wheels for Linux, macOS and Windows, numpy
its only dependency); it decodes the RED-compressed blocks itself and reads only the blocks a request needs, so
a batch of channels costs memory for that batch alone.

What is refused, with one line naming the session: channels stored at different sampling rates or over different
time spans (BIDS iEEG has one rate per recording: resample or split it), discontinuities (a gap between or
inside segments: the spectrogram of a gap is not a measurement; cut the session at its gaps, one BIDS run each)
symbolic links out of the session folder, and encrypted sessions without their password (environment variable
``BIDS_BRAINBERT_MEF3_PASSWORD``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import mne
import numpy as np

from ..errors import RecordingError

# MEF3's units_description strings and their size in volts; MEF3 writers spell micro in several ways.
UNIT_SCALES = {"v": 1.0, "volt": 1.0, "volts": 1.0, "mv": 1e-3, "uv": 1e-6, "µv": 1e-6, "μv": 1e-6,
               "microvolt": 1e-6, "microvolts": 1e-6, "nv": 1e-9}


def unit_scale(units: str | None) -> float | None:
    """Volts per unit of a units label (``uV`` -> 1e-6), None when the label is empty or unknown."""
    if not units:
        return None
    return UNIT_SCALES.get(units.strip().lower())


def refuse_outside_links(path: Path) -> None:
    """A symbolic link inside the session folder that leads out of it would make us read outside the input."""
    inside = path.resolve()
    for entry in path.rglob("*"):
        if entry.is_symlink() and not entry.resolve().is_relative_to(inside):
            raise RecordingError(f"{path}: {entry.relative_to(path)} is a symbolic link out of the session folder "
                                 f"(to {entry.resolve()}); a MEF3 session must hold its own files")


def _open(path: Path, password: str):
    import mef3io

    try:
        return mef3io.Reader(str(path), password=password or "")
    except mef3io.PasswordError:
        raise RecordingError(f"{path}: encrypted MEF3 session: " + (
            "the password in BIDS_BRAINBERT_MEF3_PASSWORD does not open it" if password else
            "set its password in the environment variable BIDS_BRAINBERT_MEF3_PASSWORD")) from None


def _file_order(names: list[str], infos: dict[str, dict], table_order: list[str]) -> list[str]:
    """Channel order of the session. MEF3 keeps channels as folders, listed by name: the order is channels.tsv's
    when it names the same channels, else the acquisition channel numbers when they are distinct."""
    if sorted(table_order) == sorted(names):
        return list(table_order)
    numbers = [infos[name].get("acquisition_channel_number") for name in names]
    if None not in numbers and len(set(numbers)) == len(numbers):
        return [name for _, name in sorted(zip(numbers, names))]
    return names


class RawMEF3(mne.io.BaseRaw):
    """A MEF3 session's channels on one sampling grid, read on demand (``get_data`` of a few channels decodes only
    those channels). ``fallback_units``: volts-per-unit labels by channel (channels.tsv ``units``) for channels
    whose session stores no units description."""

    def __init__(self, path: Path, password: str = "", fallback_units: dict[str, str] | None = None):
        path = Path(path)
        refuse_outside_links(path)
        with _open(path, password) as reader:
            names = list(reader.channels)
            if not names:
                raise RecordingError(f"{path}: MEF3 session holds no time-series channel")
            infos = {name: reader.info(name) for name in names}
        names = _file_order(names, infos, list(fallback_units or {}))
        rates = {name: float(info["sampling_frequency"]) for name, info in infos.items()}
        if len(set(rates.values())) > 1:
            by_rate: dict[float, list[str]] = {}
            for name, rate in rates.items():
                by_rate.setdefault(rate, []).append(name)
            shown = "; ".join(f"{rate:g} Hz: {', '.join(chs[:3])}{' ...' if len(chs) > 3 else ''}"
                              for rate, chs in sorted(by_rate.items()))
            raise RecordingError(f"{path}: channels stored at different sampling rates ({shown}); one rate per "
                                 "recording is analysed: resample the session or split it into recordings by rate")
        sfreq = rates[names[0]]
        spans = {(info["start_time"], info["end_time"]) for info in infos.values()}
        if len(spans) > 1:
            raise RecordingError(f"{path}: channels cover different time spans (first samples "
                                 f"{sorted({s for s, _ in spans})[:3]} uUTC); one span per recording is analysed")
        start, end = spans.pop()
        n_samples = int(round((end - start) * sfreq / 1e6))
        for name, info in infos.items():
            if int(info["number_of_samples"]) != n_samples:
                missing = (n_samples - int(info["number_of_samples"])) / sfreq
                raise RecordingError(
                    f"{path}: discontinuous MEF3 recording (channel {name}: {missing:.3f} s missing in "
                    f"{info['n_segments']} segment(s) over {n_samples / sfreq:.3f} s); only continuous recordings "
                    "are analysed: cut the session at its gaps, one BIDS run each")
        scales = []
        for name in names:
            label = infos[name].get("units_description") or (fallback_units or {}).get(name, "")
            scale = unit_scale(label)
            if scale is None:
                raise RecordingError(f"{path}: channel {name}: unknown units {label!r} (neither the session nor "
                                     "channels.tsv gives V, mV, uV or nV)")
            scales.append(scale)
        info = mne.create_info(names, sfreq, ch_types="misc")
        for ch, scale in zip(info["chs"], scales):
            ch["cal"] = scale
        with info._unlock():
            info["meas_date"] = dt.datetime.fromtimestamp(start / 1e6, tz=dt.timezone.utc)
        super().__init__(info, last_samps=[n_samples - 1], filenames=[str(path)], preload=False,
                         raw_extras=[{"names": names, "start": start, "password": password, "sfreq": sfreq}],
                         orig_units={name: "V" for name in names}, verbose="error")

    def _read_segment_file(self, data, idx, fi, start, stop, cals, mult):
        extras = self._raw_extras[fi]
        names = extras["names"]
        picks = range(*idx.indices(len(names))) if isinstance(idx, slice) else idx
        wanted = [names[i] for i in picks]
        sfreq = extras["sfreq"]
        t0 = extras["start"] + start * 1e6 / sfreq
        t1 = extras["start"] + stop * 1e6 / sfreq
        with _open(Path(self._filenames[fi]), extras["password"]) as reader:
            block = reader.read(wanted, t0, t1)
        block = np.atleast_2d(block)
        if block.shape[1] != stop - start:
            raise RecordingError(f"{self._filenames[fi]}: MEF3 read of samples {start}-{stop} returned "
                                 f"{block.shape[1]} samples")
        scale_into(data, block, cals, mult)


def scale_into(data: np.ndarray, block: np.ndarray, cals: np.ndarray, mult) -> None:
    """``block`` (the wanted channels in file units) times their calibrations, into MNE's output view. Only the
    wanted channels are decoded: no block of every channel is built (an hour of 128 channels is 7.5 GB)."""
    if mult is not None:  # projectors or compensation: never set on iEEG raws read here
        raise ValueError("projection matrices are not supported by this reader")
    np.multiply(block, cals, out=data, casting="unsafe")
