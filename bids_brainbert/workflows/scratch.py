"""Scratch folders for the staged signal of one recording, and the removal of those a killed run left behind.

A run killed with ``kill -9`` (or by the out-of-memory killer) cannot remove its scratch folder, which holds a
float32 copy of a whole recording (gigabytes for long ones). Each folder is named
``bids-brainbert-scratch.<pid>@<host>.<recording>.<random>`` and locked (``flock``) by its process for as long as
it is in use; the kernel drops the lock when the process dies, however it dies. The next run removes our folders
that nobody holds. Where the file system cannot lock, a folder counts as abandoned when it was made on this host
by a process that no longer exists.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOGGER = logging.getLogger("bids_brainbert")
PREFIX = "bids-brainbert-scratch."
_NAME = re.compile(rf"^{re.escape(PREFIX)}(?P<pid>\d+)@(?P<host>[^.]*)\.")


def scratch_parent(work_dir: Path | None) -> Path:
    """Where scratch folders go: ``--work-dir``, else the system's temporary folder."""
    return Path(work_dir) if work_dir else Path(tempfile.gettempdir())


def _host() -> str:
    return socket.gethostname().split(".")[0].replace("@", "_")


def _lock(fd: int) -> bool | None:
    """Take the exclusive lock without waiting: True taken, False held by someone else, None not supported."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        return None


@contextmanager
def scratch_dir(work_dir: Path | None, name: str) -> Iterator[Path]:
    """A new locked scratch folder for recording ``name``, removed on exit."""
    parent = scratch_parent(work_dir)
    parent.mkdir(parents=True, exist_ok=True)
    # made under a name the cleaner ignores, locked, then renamed: it never shows up unlocked under our prefix
    making = Path(tempfile.mkdtemp(prefix=f".{PREFIX}", dir=parent))
    fd = os.open(making, os.O_RDONLY)
    try:
        _lock(fd)
        # the recording's name is only a hint for people looking at the folder: cut so the name always fits
        path = parent / f"{PREFIX}{os.getpid()}@{_host()}.{name[:80]}.{making.name.rsplit('.', 1)[-1]}"
        os.rename(making, path)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
    finally:
        os.close(fd)
        shutil.rmtree(making, ignore_errors=True)


def _abandoned(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        locked = _lock(fd)   # released again when fd is closed
    finally:
        os.close(fd)
    if locked is not None:
        return locked
    match = _NAME.match(path.name)
    if match is None or match["host"] != _host():
        return False
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except OSError:   # exists, owned by someone else
        return False
    return False


def remove_abandoned_scratch(work_dir: Path | None) -> list[Path]:
    """Remove the scratch folders of killed runs in the scratch parent; returns those removed."""
    parent = scratch_parent(work_dir)
    removed = []
    if parent.is_dir():
        for path in sorted(parent.glob(f"{PREFIX}*")):
            if path.is_dir() and _abandoned(path):
                shutil.rmtree(path, ignore_errors=True)
                if not path.exists():
                    removed.append(path)
                    LOGGER.info("removed %s left by an interrupted run", path)
    return removed
