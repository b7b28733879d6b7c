"""A record of what this Python process writes under a folder (an audit hook), and a snapshot of a folder's
files: together they prove an input dataset is only read."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_MUTATING_EVENTS = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.utime",
                    "os.truncate", "os.link", "os.symlink", "shutil.rmtree", "shutil.move", "shutil.copyfile"}
# what is watched now: (root, a folder under it where writing is allowed or None, the events seen)
_WATCHED: list[tuple[str, str | None, list]] = []


def _audit(event: str, args: tuple) -> None:
    if not _WATCHED or (event != "open" and event not in _MUTATING_EVENTS):
        return
    root, allowed, events = _WATCHED[-1]
    if event == "open":
        path, mode, flags = args
        writing = (mode is not None and any(c in str(mode) for c in "wax+")) or bool((flags or 0) & _WRITE_FLAGS)
        candidates = [path] if writing else []
    else:
        candidates = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
    for candidate in candidates:
        if isinstance(candidate, int):
            continue
        absolute = os.path.abspath(os.fsdecode(candidate))
        inside = absolute == root or absolute.startswith(root + os.sep)
        if inside and not (allowed and absolute.startswith(allowed + os.sep)):
            events.append((event, absolute))
            return


sys.addaudithook(_audit)   # an audit hook cannot be removed: it does nothing while nothing is watched


@contextmanager
def writes_under(root: Path, allowed: Path | None = None) -> Iterator[list[tuple[str, str]]]:
    """The (event, path) of every write, creation, rename, removal or mode change under ``root`` (except under
    ``allowed``) while the block runs, in this process."""
    events: list[tuple[str, str]] = []
    _WATCHED.append((str(root.resolve()), str(allowed.resolve()) if allowed else None, events))
    try:
        yield events
    finally:
        _WATCHED.pop()


def snapshot(root: Path, exclude: str | None = None) -> dict[str, tuple]:
    """Mode, size, modification time and content hash of every file and folder under ``root`` (but the folder
    ``exclude``, relative to it, and what it holds)."""
    state = {}
    for path in [root, *sorted(root.rglob("*"))]:
        relative = path.relative_to(root).as_posix()
        if exclude and (relative == exclude or relative.startswith(exclude + "/")):
            continue
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        state[relative] = (stat.S_IMODE(info.st_mode), info.st_size, info.st_mtime_ns, digest)
    return state
