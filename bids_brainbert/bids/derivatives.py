"""The derivative dataset we write: file names, atomic writes, sidecars, dataset_description and .bidsignore.

Layout (the output directory is the derivative dataset root, as fMRIPrep >= 21 does)::

    OUTPUT_DIR/dataset_description.json, .bidsignore
    OUTPUT_DIR/sub-<label>/[ses-<label>/]ieeg/<entities>_desc-<kind>_spectrogram.npy (+ .json)
    OUTPUT_DIR/sub-<label>/[ses-<label>/]ieeg/<entities>_desc-<kind>_channels.tsv
    OUTPUT_DIR/sub-<label>/log/<run id>/bids-brainbert.{toml,log}

Every file is written under a temporary name in its final folder and renamed into place, so a reader (or an
interrupted run) never sees a partial file.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import RecordingError, UsageError
from . import names
from .discovery import Recording

APP_NAME = "bids-brainbert"
CODE_URL = "https://github.com/bids-brainbert/bids-brainbert"
BIDS_VERSION = "1.10.0"
# BIDS has no suffix for these: the validator is told to ignore them.
# (directory patterns without a trailing slash: the validator does not match "dir/")
BIDSIGNORE_PATTERNS = ("*_spectrogram.npy", "*_spectrogram.json", "*_embeddings.npy", "*_embeddings.json",
                       "*_embeddings.tsv", "sub-*/log", "*.html", "models", "figures", "logs", "task-*_desc-*")
TMP_MARK = ".tmp-"


def spectrogram_paths(output_dir: Path, recording: Recording, kind: str) -> dict[str, Path]:
    """Output paths of a recording's spectrogram derivative (data, sidecar, channel table)."""
    folder = output_dir / recording.path.parent.relative_to(_dataset_root_of(recording))
    return {role: folder / name for role, name in names.spectrogram_files(recording.stem_entities, kind).items()}


def _dataset_root_of(recording: Recording) -> Path:
    parts = recording.path.parts
    idx = max(i for i, p in enumerate(parts) if p == f"sub-{recording.subject}")
    return Path(*parts[:idx])


def ensure_inside(root: Path, path: Path) -> Path:
    """Refuse to write anywhere but inside the output directory (labels come from untrusted input)."""
    resolved_root = root.resolve()
    resolved = path.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise UsageError(f"{path}: refusing to write outside the output directory {root}")
    return path


def is_inside(root: Path, path: Path) -> bool:
    """Whether ``path`` (itself not followed: removing a link removes the link) lies in the output directory
    ``root`` once the folders leading to it are resolved. Clean-up checks this before it deletes anything, as
    writing does through :func:`ensure_inside`: a folder inside the output that is a symbolic link to somewhere
    else must not make us delete files there."""
    resolved_root = root.resolve()
    parent = path.parent.resolve()
    return parent == resolved_root or resolved_root in parent.parents


def refuse_symlink(path: Path) -> Path:
    """A file we read and update in place (dataset_description.json, .bidsignore) must not be a symbolic link:
    reading through it would copy its target's content into the output. Refused, not replaced, since the link
    is someone's deliberate set-up."""
    if path.is_symlink():
        raise UsageError(f"{path}: is a symbolic link (to {os.readlink(path)}); bids-brainbert never reads or "
                         "writes through a link inside the output directory: replace it by a regular file or "
                         "remove it")
    if path.exists() and not path.is_file():   # a folder, a FIFO (reading it would block), a device
        raise UsageError(f"{path}: not a regular file; remove it")
    return path


def _try_lock(fd: int) -> bool | None:
    """Exclusive ``flock`` without waiting: True taken, False held by another process, None not supported."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        return False if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on error removed.

    The temporary file is locked (``flock``) for as long as it is being written: a concurrent run on the same
    recording (a resubmitted array task) sees it is alive and leaves it alone, while the temporary file of a killed
    run, whose lock the kernel dropped, is removed (:func:`remove_stale_temporaries`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent)
        if _try_lock(fd) is not False:
            break
        os.close(fd)   # a cleaner took it in the instant between creating and locking: it removes it, take another
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    finally:
        os.close(fd)   # the lock goes with it, once the name is gone


def atomic_write_bytes(path: Path, content: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)


def atomic_write_json(path: Path, content: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(content, indent=2, sort_keys=False, default=_json_default) + "\n").encode())


def atomic_write_tsv(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="n/a")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def sha256_of_file(path: Path, chunk_bytes: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def container_info() -> dict[str, str] | None:
    """The container we run in, if any (for GeneratedBy.Container).

    Apptainer is checked first: a SIF converted from the Docker image still carries the image's
    BIDS_BRAINBERT_CONTAINER_TYPE=docker, but Apptainer sets APPTAINER_CONTAINER at run time. Then our image's
    environment, then the marker file our image carries (IMAGE_MARKER); nothing else counts as our container.
    """
    if os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER"):
        image = os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER", "")
        return {"Type": "singularity", "Tag": os.path.basename(image)}
    if os.environ.get("BIDS_BRAINBERT_CONTAINER_TYPE"):
        return {"Type": os.environ["BIDS_BRAINBERT_CONTAINER_TYPE"],
                "Tag": os.environ.get("BIDS_BRAINBERT_CONTAINER_TAG", f"bids-brainbert:{__version__}")}
    return image_marker()


# Written by our Dockerfile (and singularity.def): the image is ours. Any other container (a CI runner, a
# development container with /.dockerenv) running a plain pip install is not recorded as our image.
IMAGE_MARKER = Path("/etc/bids-brainbert/container.json")


def image_marker() -> dict[str, str] | None:
    try:
        marker = json.loads(IMAGE_MARKER.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(marker, dict) and isinstance(marker.get("Type"), str) and isinstance(marker.get("Tag"), str)):
        return None
    return {"Type": marker["Type"], "Tag": marker["Tag"]}


def generated_by() -> dict[str, Any]:
    entry: dict[str, Any] = {"Name": APP_NAME, "Version": __version__, "CodeURL": CODE_URL}
    container = container_info()
    if container:
        entry["Container"] = container
    return entry


def dataset_description(bids_dir: Path, source_description: dict[str, Any]) -> dict[str, Any]:
    source: dict[str, Any] = {"URL": bids_dir.resolve().as_uri()}
    if "DatasetDOI" in source_description:
        source["DOI"] = source_description["DatasetDOI"]
    return {
        "Name": f"{APP_NAME} derivatives of {source_description.get('Name', bids_dir.name)}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by()],
        "SourceDatasets": [source],
        "DatasetLinks": {"raw": bids_dir.resolve().as_uri()},
    }


def write_dataset_files(output_dir: Path, bids_dir: Path, source_description: dict[str, Any]) -> None:
    """Root dataset_description.json and .bidsignore; written only when missing or different, atomically,
    so that concurrent array tasks writing into one output folder cannot clobber each other."""
    description = dataset_description(bids_dir, source_description)
    desc_path = refuse_symlink(output_dir / "dataset_description.json")
    ignore_path = refuse_symlink(output_dir / ".bidsignore")
    if not desc_path.exists() or _read_json_or_none(desc_path) != json.loads(json.dumps(description)):
        atomic_write_json(desc_path, description)
    existing = ignore_path.read_text().splitlines() if ignore_path.exists() else []
    missing = [p for p in BIDSIGNORE_PATTERNS if p not in existing]
    if missing:
        atomic_write_bytes(ignore_path, ("\n".join(existing + missing) + "\n").encode())


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordingError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: not valid JSON ({exc})") from None


def _read_json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def bids_uri(recording: Recording, dataset_name: str = "raw") -> str:
    return f"bids:{dataset_name}:{recording.relative_path}"


def remove_stale_temporaries(folder: Path, stem: str) -> list[Path]:
    """Delete the temporary files a killed run left for the outputs named ``<stem>_desc-*`` in ``folder``.

    A process killed between creating a temporary file and renaming it cannot clean up; the next run for the same
    recording does. Only that recording's files are touched, so runs on other recordings (other processes, other
    array tasks) sharing the folder are unaffected."""
    removed = []
    if folder.is_dir():
        for stale in folder.glob(f".{glob.escape(stem)}_desc-*{TMP_MARK}*"):
            if _abandoned_temporary(stale):
                removed.append(stale)
    return removed


def _abandoned_temporary(path: Path) -> bool:
    """Remove ``path`` unless a live writer holds its lock (see :func:`atomic_path`); True when removed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        fd = None   # a link or something we cannot open: not a live writer's file
    try:
        if fd is not None and _try_lock(fd) is False:
            return False   # being written by a concurrent run
        path.unlink(missing_ok=True)   # unlinked while we hold its lock: a writer cannot take it meanwhile
        return True
    finally:
        if fd is not None:
            os.close(fd)


def is_complete(paths: dict[str, Path]) -> bool:
    """A derivative is complete when all its files exist and the data matches the hash in its sidecar; a file that
    is a symbolic link is never trusted (the derivative is recomputed and the link replaced by a regular file)."""
    try:
        if not all(p.exists() and not p.is_symlink() for p in paths.values()):
            return False
    except OSError:   # a name the file system cannot hold (too long): never written
        return False
    sidecar = _read_json_or_none(paths["sidecar"])
    if not isinstance(sidecar, dict) or "DataSha256" not in sidecar:
        return False
    return sha256_of_file(paths["data"]) == sidecar["DataSha256"]


def open_spectrogram(path: Path, channel: str | int | None = None, mmap: bool = True) -> np.ndarray:
    """Read a spectrogram derivative, memory-mapped; ``channel`` (name or row) reads one electrode only.

    Returns (n_channels, n_frames, n_freqs) or (n_frames, n_freqs) for one channel.
    """
    array = np.load(path, mmap_mode="r" if mmap else None)
    if channel is None:
        return array
    if isinstance(channel, str):
        channel_names = pd.read_csv(path.with_name(names.channels_of(path.name)), sep="\t")["name"].tolist()
        channel = channel_names.index(channel)
    return np.asarray(array[channel])
