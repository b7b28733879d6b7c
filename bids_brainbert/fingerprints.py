"""Fingerprints: what a derivative was computed from, so that a re-run can tell a finished one from a stale one.

A fingerprint (recorded in the sidecar as ``Fingerprint``) holds the step's name, the version of its numerics
(``NUMERICS``: bumped when the same settings start giving different numbers, not with every release), the
parameters that shape the derivative (:meth:`bids_brainbert.params._Options.shaping`, so batch sizes, devices,
``--nprocs`` or ``-v`` never count) and the sha256 of its inputs (raw files and sidecars, a model's weights, the
spectrogram it was cut from), plus the sha256 of all that. A derivative is complete when its data matches its
``DataSha256`` and its recorded fingerprint equals the one this run would write; otherwise it is recomputed and
:func:`stale_reason` says why in one line. Outputs of versions before fingerprints have none: recomputed once.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from .bids.discovery import Recording
from .io.loading import find_electrodes_file, find_sidecar

# Version of each step's numerics. Spectrogram 2: --superlet-definition brainbert (BrainBERT's wavelet set)
# replaced Moca's as the default; earlier spectrograms were computed with the other set.
NUMERICS = {"spectrogram": 2, "embeddings": 1}
# JSON of numbers and strings only, keys sorted: the same inputs give the same digest on any machine
_CANONICAL = {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": True}


def fingerprint(step: str, parameters: dict[str, Any], inputs: dict[str, str]) -> dict[str, Any]:
    """The fingerprint record of one derivative of ``step``: parameters and input hashes, and their sha256."""
    record = {"Step": step, "NumericsVersion": NUMERICS[step], "Parameters": _plain(parameters),
              "Inputs": dict(sorted(inputs.items()))}
    return {**record, "Sha256": hashlib.sha256(json.dumps(record, **_CANONICAL).encode()).hexdigest()}


def _plain(value: Any) -> Any:
    """Tuples as lists and numpy scalars as Python numbers, as JSON writes them back."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def stale_reason(recorded: Any, expected: dict[str, Any]) -> str | None:
    """None when the sidecar's recorded fingerprint equals ``expected``; else why not, in a few words."""
    if not isinstance(recorded, dict) or "Sha256" not in recorded:
        return "no fingerprint in its sidecar (written by an earlier version): recomputed once"
    if recorded.get("Sha256") == expected["Sha256"]:
        return None
    changes = _differences(recorded, expected)
    shown = "; ".join(changes[:3]) + (f" (and {len(changes) - 3} more)" if len(changes) > 3 else "")
    return f"computed with other settings or inputs: {shown or 'fingerprint differs'}"


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            if key == "Sha256" and not where:
                continue
            found += _differences(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
        return found
    if old == new:
        return []
    name = where.removeprefix("Parameters.").removeprefix("Inputs.")
    if where.startswith("Inputs."):
        return [f"{name} {'changed' if old and new else 'added' if new else 'removed'}"]
    return [f"{name} {_short(old)} -> {_short(new)}"]


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def file_sha256(path: Path, chunk_bytes: int = 1 << 22) -> str:
    """sha256 of a regular file's bytes; a FIFO, device or socket is never opened (it could block), it is
    hashed by its kind only (loading then refuses it with its own message)."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        return f"not-a-regular-file:{stat.S_IFMT(mode):o}"
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder (a MEF3 ``.mefd`` session) as every file's relative name and hash in
    sorted order; links to folders are not followed (the loader does not follow them out either)."""
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for folder, subfolders, names in os.walk(path):
        subfolders.sort()
        for name in sorted(names):
            member = Path(folder, name)
            digest.update(f"{member.relative_to(path).as_posix()}\0{file_sha256(member)}\n".encode())
    return digest.hexdigest()


def recording_inputs(recording: Recording) -> dict[str, str]:
    """Hash of every input file a recording's spectrogram is computed from, by name: its data (every
    ``<entities>_ieeg.*``: a BrainVision header with its data and marker files, a ``.mefd`` folder) and the
    sidecars the loader reads (channels.tsv, ieeg.json, electrodes.tsv and its coordsystem.json)."""
    folder = recording.path.parent
    files = sorted(folder.glob(f"{glob.escape(recording.stem_entities)}_ieeg.*"))
    files += [p for p in (find_sidecar(recording, "channels.tsv"), find_sidecar(recording, "ieeg.json"))
              if p is not None and p not in files]
    electrodes = find_electrodes_file(recording)
    if electrodes is not None:
        coordsystem = electrodes.with_name(electrodes.name.replace("_electrodes.tsv", "_coordsystem.json"))
        files += [electrodes] + ([coordsystem] if coordsystem.exists() else [])
    return {path.name: tree_sha256(path) for path in files}
