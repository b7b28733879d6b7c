"""Write a recording as MEF3 or NWB with those formats' own writers (mef3io, pynwb), and a BIDS dataset's twin in
either format: every recording rewritten, every sidecar kept. The tests and ``benchmarks/loading.py`` compare a
dataset with its twins, so that each format is checked against the same samples and sidecars.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import mne
import numpy as np
import pandas as pd

# MEF3 stores int32 counts of 10**-precision units: the finest precision (in µV) that keeps the channel in range.
_MEF3_MAX_PRECISION = 6
_INT32_LIMIT = 2**31 - 1


def _precision(channel_uv: np.ndarray) -> int:
    peak = float(np.nanmax(np.abs(channel_uv))) if channel_uv.size else 0.0
    precision = _MEF3_MAX_PRECISION
    while precision > -6 and peak * 10.0 ** precision >= _INT32_LIMIT:
        precision -= 1
    return precision


def _start_uutc(raw: mne.io.BaseRaw) -> int:
    date = raw.info["meas_date"] or datetime(2000, 1, 1, tzinfo=timezone.utc)
    return int(round(date.timestamp() * 1e6))


def write_mef3(raw: mne.io.BaseRaw, path: Path, passwords: tuple[str, str] = ("", ""),
               chunk_samples: int | None = None, precision: int | None = None) -> Path:
    """``raw`` as a MEF3 session folder ``path`` (``.mefd``), in µV; ``passwords`` (level 1, level 2) encrypt it.
    ``chunk_samples`` writes the recording a block of samples at a time, all channels (appending each channel's
    segment): long recordings in bounded memory. ``precision``: counts of 10**-precision µV (an ADC's step, e.g.
    1 for 0.1 µV); by default each channel keeps the finest precision its first block allows."""
    import mef3io

    path = Path(path)
    start = _start_uutc(raw)
    sfreq = float(raw.info["sfreq"])
    step = chunk_samples or raw.n_times
    precisions: list[int] = []
    with mef3io.Writer(str(path), overwrite=True, units="uV", password1=passwords[0],
                       password2=passwords[1]) as writer:
        for begin in range(0, raw.n_times, step):
            end = min(raw.n_times, begin + step)
            block = raw.get_data(start=begin, stop=end, verbose="error") * 1e6
            if not precisions and precision is not None:
                precisions = [precision] * len(block)
            elif not precisions:  # headroom for later blocks: a tenth of the int32 range
                precisions = [_precision(10 * row) if step < raw.n_times else _precision(row) for row in block]
            for name, row, digits in zip(raw.ch_names, block, precisions):
                writer.write(name, row, start + int(round(begin * 1e6 / sfreq)), fs=sfreq, precision=digits)
            del block
    return path


def write_nwb(raw: mne.io.BaseRaw, path: Path, labels: bool = True, chunk_samples: int | None = None) -> Path:
    """``raw`` as an NWB file: one ElectricalSeries (float32 µV, ``conversion`` 1e-6) over an electrodes table
    whose ``label`` column names the channels (``labels=False`` leaves the names to channels.tsv)."""
    import pynwb
    from hdmf.data_utils import GenericDataChunkIterator
    from pynwb.ecephys import ElectricalSeries

    start = raw.info["meas_date"] or datetime(2000, 1, 1, tzinfo=timezone.utc)
    nwbfile = pynwb.NWBFile(session_description="bids-brainbert", identifier=str(uuid.uuid4()),
                            session_start_time=start)
    device = nwbfile.create_device(name="amplifier")
    group = nwbfile.create_electrode_group(name="electrodes", description="all contacts", location="n/a",
                                           device=device)
    if labels:
        nwbfile.add_electrode_column(name="label", description="channel name")
    for name in raw.ch_names:
        nwbfile.add_electrode(group=group, location="n/a", **({"label": name} if labels else {}))
    region = nwbfile.create_electrode_table_region(list(range(len(raw.ch_names))), "recorded channels")

    class _Chunks(GenericDataChunkIterator):
        """The signal (time x channels, float32 µV) a block of samples at a time."""

        def _get_data(self, selection):
            rows, columns = selection
            block = raw.get_data(start=rows.start or 0, stop=rows.stop, verbose="error")
            return (block.T * 1e6).astype(np.float32)[:, columns]

        def _get_maxshape(self):
            return (raw.n_times, len(raw.ch_names))

        def _get_dtype(self):
            return np.dtype(np.float32)

    samples = chunk_samples or raw.n_times
    # HDF5 chunks of one channel: a batch of channels is read without decoding the others
    data = _Chunks(buffer_shape=(min(samples, raw.n_times), len(raw.ch_names)),
                   chunk_shape=(min(raw.n_times, 2**16), 1), display_progress=False)
    nwbfile.add_acquisition(ElectricalSeries(name="ieeg", data=data, electrodes=region,
                                             rate=float(raw.info["sfreq"]), starting_time=0.0, conversion=1e-6))
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return Path(path)


def twin_dataset(source: Path, target: Path, fmt: str, block_bytes: int = 64 * 2**20, **options) -> Path:
    """A copy of the BIDS dataset ``source`` at ``target`` whose recordings are rewritten as ``fmt`` ("MEF3" or
    "NWB"), ``block_bytes`` of float64 samples at a time, with the writer's ``options``; sidecars are kept,
    scans.tsv names the new files."""
    writers = {"MEF3": (".mefd", write_mef3), "NWB": (".nwb", write_nwb)}
    extension, writer = writers[fmt]
    source, target = Path(source), Path(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*_ieeg.eeg", "*_ieeg.fdt"))  # read in source
    renamed: dict[str, str] = {}
    for recording in sorted(target.rglob("*_ieeg.*")):
        if recording.suffix not in (".vhdr", ".edf", ".bdf", ".set"):
            continue
        raw = mne.io.read_raw(source / recording.relative_to(target), preload=False, verbose="error")
        destination = recording.with_suffix(extension)
        writer(raw, destination, chunk_samples=max(1, block_bytes // (8 * len(raw.ch_names))), **options)
        partners = {".vhdr": (".vmrk",), ".set": (".fdt",)}.get(recording.suffix, ())
        for partner in (recording, *(recording.with_suffix(s) for s in partners)):
            partner.unlink(missing_ok=True)
        renamed[recording.name] = destination.name
    for scans in target.rglob("*_scans.tsv"):
        table = pd.read_csv(scans, sep="\t", dtype=str, keep_default_na=False)
        table["filename"] = [
            str(Path(name).with_name(renamed.get(Path(name).name, Path(name).name))) for name in table["filename"]]
        table.to_csv(scans, sep="\t", index=False)
    return target
