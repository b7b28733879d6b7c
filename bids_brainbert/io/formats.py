"""The recording formats mne-bids does not read itself, behind one interface.

BIDS-iEEG allows EDF/BDF, BrainVision, EEGLAB, MEF3 (``*_ieeg.mefd`` folders) and NWB (``*_ieeg.nwb``). mne-bids
reads the first three; for the other two :data:`READERS` maps the extension to a reader that builds a lazily read
:class:`mne.io.BaseRaw` (:mod:`.mef3`, :mod:`.nwb`). :func:`extra_readers` hands these raws to
``mne_bids.read_raw_bids``, which then applies channels.tsv (names, types, status), events.tsv (annotations) and
the other sidecars exactly as for its own formats, so everything downstream sees the same raw whatever the format.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import mne

from ..errors import RecordingError

# Extensions read here rather than by mne-bids.
EXTRA_EXTENSIONS = (".mefd", ".nwb")


# Encrypted MEF3 sessions are opened with the password in this environment variable: an environment variable
# reaches the worker processes and, unlike an option, is neither shown by ps nor saved with the run's configuration.
MEF3_PASSWORD_VARIABLE = "BIDS_BRAINBERT_MEF3_PASSWORD"


def _sidecar_table(path: Path) -> dict[str, str] | None:
    """``name -> units`` of the channels.tsv that applies to a data file (None without one), in its row order."""
    import pandas as pd

    from ..bids.discovery import Recording, parse_entities
    from .loading import find_sidecar

    entities = parse_entities(path.name)
    channels = find_sidecar(Recording(path, entities), "channels.tsv") if entities else None
    if channels is None:
        return None
    table = pd.read_csv(channels, sep="\t", dtype=str, keep_default_na=False)
    if "name" not in table.columns:
        return None
    units = table["units"] if "units" in table.columns else [""] * len(table)
    return dict(zip(table["name"], units))


def _read_mef3(path: Path) -> mne.io.BaseRaw:
    from .mef3 import RawMEF3

    return RawMEF3(path, password=os.environ.get(MEF3_PASSWORD_VARIABLE, ""), fallback_units=_sidecar_table(path))


def _read_nwb(path: Path) -> mne.io.BaseRaw:
    from .nwb import RawNWB

    channels = _sidecar_table(path)
    return RawNWB(path, fallback_names=list(channels) if channels else None)


READERS: dict[str, Callable[[Path], mne.io.BaseRaw]] = {".mefd": _read_mef3, ".nwb": _read_nwb}


def read_raw_file(path: Path) -> mne.io.BaseRaw:
    """The data file alone (no sidecars applied), not preloaded: for a MEF3 or NWB file our reader, for the
    others MNE's."""
    path = Path(path)
    reader = READERS.get(path.suffix)
    if reader is None:
        return mne.io.read_raw(path, preload=False, verbose="warning")
    try:
        return reader(path)
    except RecordingError:
        raise
    except Exception as exc:  # the readers raise many types; the user needs the file and the reason
        text = str(exc).strip()
        raise RecordingError(f"{path}: cannot be read ({text.splitlines()[0] if text else type(exc).__name__})") \
            from exc


@contextmanager
def extra_readers() -> Iterator[None]:
    """Within the block, ``mne_bids.read_raw_bids`` reads MEF3 and NWB through :data:`READERS`.

    mne-bids dispatches on the extension in its private ``read._read_raw``; wrapping it (for these two extensions
    only) keeps every sidecar step of ``read_raw_bids`` as it is. ``tests/test_formats.py`` compares the result
    with the same data written as BrainVision, so a change there is caught."""
    from mne_bids import read as bids_read

    original = bids_read._read_raw

    def dispatch(raw_path, *args, **kwargs):
        reader = READERS.get(Path(raw_path).suffix)
        return reader(Path(raw_path)) if reader is not None else original(raw_path, *args, **kwargs)

    bids_read._read_raw = dispatch
    try:
        yield
    finally:
        bids_read._read_raw = original
