"""Paths of a recording that lead out of the input dataset.

Policy (README, "Security"): a symbolic link inside the dataset (a subject or session folder, the ieeg folder, a
data file or a sidecar) whose target lies outside the dataset is followed, since labs keep bulk data on other
storage and link it in, but never silently: each such link is logged as a warning naming the link and its
target, once per run. Nothing is ever written through it. A BrainVision header whose ``DataFile=`` or
``MarkerFile=`` is an absolute path or leaves the header's folder is refused (the recording fails): the
format names files beside the header, and a header is the one place where a dataset could point a reader at
any file on the system.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path, PureWindowsPath

from ..errors import RecordingError

LOGGER = logging.getLogger("bids_brainbert")
_warned: set[tuple[str, str]] = set()


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def links_leaving(root: Path, paths: list[Path]) -> list[tuple[Path, Path]]:
    """(link, resolved target) for the first symbolic link on the way to each of ``paths`` whose target lies
    outside ``root`` (resolved)."""
    resolved_root = root.resolve()
    found: dict[Path, Path] = {}
    for path in paths:
        relative = path.relative_to(root) if path.is_relative_to(root) else None
        if relative is None:
            continue
        current = root
        for part in relative.parts:
            current = current / part
            if current.is_symlink():
                target = current.resolve()
                if not _inside(resolved_root, target):
                    found.setdefault(current, target)
                break
    return sorted(found.items())


def recording_files(recording_path: Path, subject: str) -> list[Path]:
    """The recording and every file beside it that mne-bids may read for it (sidecars of the same subject)."""
    folder = recording_path.parent
    try:
        names = os.listdir(folder)
    except OSError:
        return [recording_path]
    return [recording_path] + sorted(folder / n for n in names if n.startswith(f"sub-{subject}_")
                                     and folder / n != recording_path)


def warn_about_links_leaving(root: Path, recording_path: Path, subject: str) -> None:
    """Log (once per link and run) every link of this recording's files leading outside the dataset."""
    for link, target in links_leaving(root, recording_files(recording_path, subject)):
        key = (str(link), str(target))
        if key not in _warned:
            _warned.add(key)
            LOGGER.warning("%s: symbolic link to %s, outside the dataset %s: read from there", link, target, root)


_REFERENCE = re.compile(r"^(DataFile|MarkerFile)\s*=\s*(.*?)\s*$", re.MULTILINE)


def check_brainvision_references(vhdr: Path) -> None:
    """``DataFile=``/``MarkerFile=`` of a BrainVision header must name files in the header's own folder."""
    try:
        text = vhdr.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return   # the reader reports an unreadable header
    for key, value in _REFERENCE.findall(text):
        if not value:
            continue
        leaves = (os.path.isabs(value) or PureWindowsPath(value).is_absolute() or "/" in value or "\\" in value
                  or value in (".", ".."))
        if leaves:
            raise RecordingError(f"{vhdr}: {key}= must name a file beside the header, not a path ({value[:80]!r}); "
                                 "a header may not point the reader anywhere else")
